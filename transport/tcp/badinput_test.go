package tcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/synod-go/synod/transport"
)

// rawConn dials the server without the package's client, to send bytes a
// well-behaved client never would.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc
}

// expectClosed reads from nc until the server closes it; the server may
// first send its preamble and frames.
func expectClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	if _, err := io.ReadAll(nc); err != nil && !isConnReset(err) {
		t.Fatalf("connection not closed by the server: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	checkLeaks(t)
	const max = 4 << 10
	logs := &logBuf{}
	srv := startServer(t, "tcp", echoMux(), Options{MaxFrameSize: max, HandshakeTimeout: 200 * time.Millisecond, Logger: logs.logger()})
	good := dial(t, newDialer(t, Options{MaxFrameSize: max}), srv.Addr())

	withPreamble := func(b ...byte) []byte { return append(append([]byte(nil), preamble[:]...), b...) }
	frameBytes := func(body ...byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	for _, tc := range []struct {
		name  string
		input []byte
		log   string // expected in the server's log
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad client preamble"},
		{"wrong version", []byte("SYNOD\x02"), "bad client preamble"},
		{"huge length prefix", withPreamble(0xff, 0xff, 0xff, 0xff), "over size limit"},
		{"length just over the limit", withPreamble(binary.BigEndian.AppendUint32(nil, max+maxHeaderLen+1)...), "over size limit"},
		{"empty frame", withPreamble(0, 0, 0, 0), "empty frame"},
		{"truncated frame", withPreamble(0, 0, 0, 100, frameCall, 1), "unexpected EOF"},
		{"unknown frame type", withPreamble(frameBytes(99, 1)...), "unknown frame type"},
		{"bad varint", withPreamble(frameBytes(frameCall, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)...), "varint overflows"},
		{"route past the end", withPreamble(frameBytes(frameCall, 1, 0, 50, 'e')...), "need 50 bytes"},
		{"non-minimal varint", withPreamble(frameBytes(frameCancel, 0x81, 0x00)...), "non-minimal varint"},
		{"route over the limit", withPreamble(frameBytes(frameCall, 1, 0, 0x81, 0x08)...), "route length 1025"},
		{"reply from a client", withPreamble(frameBytes(frameReply, 1)...), "unexpected frame type"},
		{"trailing bytes", withPreamble(frameBytes(frameCancel, 1, 0)...), "trailing bytes"},
		{"zero window", withPreamble(frameBytes(frameStreamOpen, 1, 0, 0, 4, 'e', 'c', 'h', 'o')...), "stream window"},
		{"silent", nil, "reading client preamble"},
		{"half a preamble", []byte("SYN"), "reading client preamble"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(logs.String(), tc.log)
			nc := rawConn(t, srv.Addr())
			if len(tc.input) > 0 {
				if _, err := nc.Write(tc.input); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "truncated frame" {
				nc.(*net.TCPConn).CloseWrite()
			}
			expectClosed(t, nc)
			waitFor(t, "log line "+tc.log, func() bool { return strings.Count(logs.String(), tc.log) > before })
			// The server still serves others.
			if reply, err := good.Call(context.Background(), "echo", []byte("ok")); err != nil || string(reply) != "ok" {
				t.Fatalf("server broken for others: %q, %v", reply, err)
			}
		})
	}
}

func TestDuplicateCallID(t *testing.T) {
	checkLeaks(t)
	release := make(chan struct{})
	mux := transport.NewMux()
	mux.Handle("block", func(ctx context.Context, req []byte) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	logs := &logBuf{}
	srv := startServer(t, "tcp", mux, Options{Logger: logs.logger()})
	defer close(release)
	nc := rawConn(t, srv.Addr())
	buf := append([]byte(nil), preamble[:]...)
	buf = appendFrame(buf, &frame{typ: frameCall, id: 5, route: "block"})
	buf = appendFrame(buf, &frame{typ: frameCall, id: 5, route: "block"})
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, nc)
	waitFor(t, "the log line", func() bool { return strings.Contains(logs.String(), "duplicate call id") })
}

func TestUnknownRouteRaw(t *testing.T) {
	checkLeaks(t)
	srv := startServer(t, "tcp", echoMux(), Options{})
	nc := rawConn(t, srv.Addr())
	buf := append([]byte(nil), preamble[:]...)
	buf = appendFrame(buf, &frame{typ: frameCall, id: 3, route: "missing", payload: []byte("x")})
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	var pre [len(preamble)]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil || pre != preamble {
		t.Fatalf("server preamble %q, %v", pre, err)
	}
	body, err := readFrame(br, DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	var f frame
	if err := decodeFrame(body, &f); err != nil {
		t.Fatal(err)
	}
	if f.typ != frameError || f.id != 3 || f.code != codeUnknown {
		t.Fatalf("got frame %+v, want an unknown-route error for id 3", f)
	}
}

// TestBadServer points a Dialer at servers that misbehave: the calls fail
// with ErrUnreachable and nothing panics or hangs.
func TestBadServer(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name  string
		reply []byte
	}{
		{"garbage", []byte("HTTP/1.1 400 Bad Request\r\n\r\n")},
		{"huge frame", append(append([]byte(nil), preamble[:]...), 0xff, 0xff, 0xff, 0xff)},
		{"call from server", appendFrame(append([]byte(nil), preamble[:]...), &frame{typ: frameCall, id: 1, route: "x"})},
		{"bad stream accept", appendFrame(append([]byte(nil), preamble[:]...), &frame{typ: frameReply, id: 1, payload: []byte{0}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			served := make(chan struct{})
			go func() {
				defer close(served)
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				defer nc.Close()
				// Answer once the client's preamble and first frame header are in,
				// so that the reply finds the call or stream open it answers.
				if _, err := io.ReadFull(nc, make([]byte, len(preamble)+lengthSize+2)); err != nil {
					return
				}
				nc.Write(tc.reply)
				io.Copy(io.Discard, nc)
			}()
			d := newDialer(t, Options{})
			c := dial(t, d, ln.Addr().String())
			var err2 error
			if tc.name == "bad stream accept" {
				_, err2 = c.NewStream(testCtx(t), "s")
			} else {
				_, err2 = c.Call(testCtx(t), "x", nil)
			}
			if !errors.Is(err2, transport.ErrUnreachable) {
				t.Fatalf("got %v, want ErrUnreachable", err2)
			}
			d.Close()
			<-served
		})
	}
}

// TestReadFrameNoAlloc checks that a length prefix is not trusted: memory
// grows with the bytes that actually arrive.
func TestReadFrameNoAlloc(t *testing.T) {
	in := binary.BigEndian.AppendUint32(nil, 1<<30)
	in = append(in, bytes.Repeat([]byte{1}, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := readFrame(bytes.NewReader(in), 1<<30); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("allocated %d bytes for a 100-byte truncated frame", grew)
	}
	// Over the limit: nothing read, nothing allocated.
	if _, err := readFrame(bytes.NewReader(in), 1<<20); !errors.Is(err, errFrameTooLarge) {
		t.Fatal(err)
	}
}
