//go:build unix

package tcp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/synod-go/synod/transport"
)

// TestAsyncReplyWouldBlock answers many calls with large replies to a
// client that does not read: the replies that find the send queue full
// wait for room on goroutines of their own, instead of blocking the
// goroutine that replies or growing the queue until the connection is
// dropped. Once the client reads, every reply arrives intact.
func TestAsyncReplyWouldBlock(t *testing.T) {
	checkLeaks(t)
	// Far more than the socket buffers of a peer that does not read hold:
	// the client's receive buffer is made small, the server's send buffer
	// may grow to tcp_wmem's maximum.
	const size = 60 << 10
	sndMax := 4 << 20
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if n, err := strconv.Atoi(f[2]); err == nil {
				sndMax = n
			}
		}
	}
	calls := 3 * (sndMax + 1<<20) / size
	var answered atomic.Int64
	mux := transport.NewMux()
	mux.HandleAsync("big", func(req []byte, reply func([]byte, error)) {
		reply(bytes.Repeat(req[:1], size), nil)
		answered.Add(1)
	})
	// Every call may wait for room at once: none may be refused as
	// overloaded, however large tcp_wmem makes calls.
	srv := startServer(t, "tcp", mux, Options{WriteBuffer: 64 << 10, MaxConcurrentCalls: calls})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	buf := append([]byte(nil), preamble[:]...)
	for id := range uint64(calls) {
		buf = appendFrame(buf, &frame{typ: frameCall, id: id + 1, route: "big", payload: []byte{byte(id)}})
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every call to be answered", func() bool { return answered.Load() == int64(calls) })
	// Replies wait for room, holding their call's slot, rather than
	// having been queued beyond WriteBuffer.
	if n := len(srv.callSem); n == 0 {
		t.Fatalf("no reply waits for room: they were queued beyond WriteBuffer (or the test sent too little)")
	}
	br := bufio.NewReader(nc)
	var pre [len(preamble)]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil || pre != preamble {
		t.Fatalf("server preamble %q, %v", pre, err)
	}
	seen := make(map[uint64]bool)
	for range calls {
		body, err := readFrame(br, DefaultMaxFrameSize+maxHeaderLen)
		if err != nil {
			t.Fatalf("after %d replies: %v", len(seen), err)
		}
		var f frame
		if err := decodeFrame(body, &f); err != nil {
			t.Fatal(err)
		}
		if f.typ != frameReply || f.id < 1 || f.id > uint64(calls) || seen[f.id] {
			t.Fatalf("frame %d (type %d): not a reply to a call sent, or a second one", f.id, f.typ)
		}
		want := bytes.Repeat([]byte{byte(f.id - 1)}, size)
		if !bytes.Equal(f.payload, want) {
			t.Fatalf("reply %d: %d bytes, not the %d it should be", f.id, len(f.payload), size)
		}
		seen[f.id] = true
	}
	waitFor(t, "the handler slots to be free", func() bool { return len(srv.callSem) == 0 })
}
