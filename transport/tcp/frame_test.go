package tcp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleFrames() []frame {
	return []frame{
		{typ: frameCall, id: 1, route: "echo", payload: []byte("req")},
		{typ: frameCall, id: math.MaxUint64, timeout: time.Duration(math.MaxInt64), route: strings.Repeat("r", maxRouteLen)},
		{typ: frameReply, id: 2, payload: []byte("reply")},
		{typ: frameReply, id: 3},
		{typ: frameError, id: 4, code: codeRemote, payload: []byte("boom")},
		{typ: frameStreamOpen, id: 5, timeout: time.Second, window: 1 << 20, route: "observe"},
		{typ: frameStreamMsg, id: 6, payload: []byte{0, 1, 2}},
		{typ: frameStreamClose, id: 7, code: codeOK},
		{typ: frameStreamClose, id: 7, code: codeCancelled, payload: []byte("why")},
		{typ: frameCancel, id: 8},
		{typ: frameWindow, id: 9, window: 12345},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range sampleFrames() {
		b := appendFrame(nil, &f)
		if got := int(binary.BigEndian.Uint32(b)); got != len(b)-lengthSize || got != f.encodedLen() {
			t.Fatalf("%+v: length prefix %d, body %d, encodedLen %d", f, got, len(b)-lengthSize, f.encodedLen())
		}
		body, err := readFrame(bytes.NewReader(b), 1<<20+maxHeaderLen)
		if err != nil {
			t.Fatal(err)
		}
		var g frame
		if err := decodeFrame(body, &g); err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if !reflect.DeepEqual(f, g) {
			t.Fatalf("round trip: got %+v, want %+v", g, f)
		}
		if len(body)-len(f.payload) > maxHeaderLen {
			t.Fatalf("header of %d bytes over maxHeaderLen %d", len(body)-len(f.payload), maxHeaderLen)
		}
	}
	if maxHeaderLen != 1058 {
		t.Fatalf("maxHeaderLen is %d: update the documentation (1,058)", maxHeaderLen)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader and decoder. Any
// input either decodes or fails without panicking or allocating more than
// the input; a frame that decodes re-encodes to the same bytes (each frame
// has one encoding, so nothing is lost or misread).
func FuzzReadFrame(f *testing.F) {
	for _, fr := range sampleFrames() {
		f.Add(appendFrame(nil, &fr))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, frameCall, 0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			body, err := readFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(body) > len(in) {
				t.Fatalf("read a body of %d bytes from %d bytes of input", len(body), len(in))
			}
			var fr frame
			if err := decodeFrame(body, &fr); err != nil {
				continue
			}
			if re := appendFrame(nil, &fr)[lengthSize:]; !bytes.Equal(re, body) {
				t.Fatalf("frame %+v decoded from %x re-encodes as %x", fr, body, re)
			}
		}
	})
}

// FuzzServerConn feeds arbitrary bytes, after a valid preamble, to a
// server's connection loop over net.Pipe. The loop must not panic, must
// answer or drop the connection, and must leave no goroutine behind.
func FuzzServerConn(f *testing.F) {
	var seed []byte
	for _, fr := range sampleFrames() {
		seed = appendFrame(seed, &fr)
	}
	f.Add(seed)
	f.Add(appendFrame(nil, &frame{typ: frameCall, id: 1, route: "echo", payload: []byte("x")}))
	f.Add(appendFrame(nil, &frame{typ: frameStreamOpen, id: 1, window: 100, route: "echo"}))
	f.Add([]byte("garbage"))
	srv, err := Serve(&idleListener{done: make(chan struct{})}, echoMux(), Options{MaxFrameSize: 1 << 12, StreamWindow: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		drained := make(chan struct{})
		go func() {
			io.Copy(io.Discard, client)
			close(drained)
		}()
		served := make(chan struct{})
		go func() {
			newServerConn(srv, server).serve()
			close(served)
		}()
		w := bufio.NewWriter(client)
		w.Write(preamble[:])
		w.Write(in)
		w.Flush()
		client.Close()
		<-served
		<-drained
		waitFor(t, "handlers to return", func() bool { return len(srv.callSem) == 0 && len(srv.streamSem) == 0 })
	})
}

// idleListener accepts nothing until closed.
type idleListener struct{ done chan struct{} }

func (l *idleListener) Accept() (net.Conn, error) { <-l.done; return nil, net.ErrClosed }
func (l *idleListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}
func (l *idleListener) Addr() net.Addr { return &net.TCPAddr{} }
