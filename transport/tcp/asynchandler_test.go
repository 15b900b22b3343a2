package tcp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/synod-go/synod/transport"
)

// heldReply is a call an asynchronous handler has not answered yet.
type heldReply struct {
	req   []byte
	reply func([]byte, error)
}

// asyncMux serves asynchronous handlers: "echo" answers at once on the
// reader, "fail" with an error, "big" with a reply of the request's length
// in kilobytes, and "hold" hands its call to the test on held.
func asyncMux(held chan heldReply) *transport.Mux {
	m := transport.NewMux()
	m.HandleAsync("echo", func(req []byte, reply func([]byte, error)) { reply(req, nil) })
	m.HandleAsync("fail", func(req []byte, reply func([]byte, error)) { reply(nil, &testError{string(req)}) })
	m.HandleAsync("big", func(req []byte, reply func([]byte, error)) {
		reply(bytes.Repeat([]byte{'b'}, len(req)<<10), nil)
	})
	m.HandleAsync("hold", func(req []byte, reply func([]byte, error)) { held <- heldReply{req, reply} })
	return m
}

func TestAsyncHandler(t *testing.T) {
	checkLeaks(t)
	held := make(chan heldReply, 1)
	srv := startServer(t, "tcp", asyncMux(held), Options{MaxFrameSize: 64 << 10})
	c := dial(t, newDialer(t, Options{}), srv.Addr())
	ctx := testCtx(t)

	if reply, err := c.Call(ctx, "echo", []byte("hi")); err != nil || string(reply) != "hi" {
		t.Fatalf("echo: %q, %v", reply, err)
	}
	_, err := c.Call(ctx, "fail", []byte("no such key"))
	var re *transport.RemoteError
	if !errors.As(err, &re) || re.Msg != "no such key" {
		t.Fatalf("fail: %v, want a RemoteError carrying the handler's error", err)
	}
	if _, err := c.Call(ctx, "big", make([]byte, 65)); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("reply over the frame limit: %v, want ErrTooLarge", err)
	}

	// Answered later, from another goroutine, while other calls go on.
	done := make(chan error, 1)
	go func() {
		reply, err := c.Call(ctx, "hold", []byte("later"))
		if err == nil && string(reply) != "later" {
			err = errors.New("hold: reply " + string(reply))
		}
		done <- err
	}()
	h := <-held
	if reply, err := c.Call(ctx, "echo", []byte("meanwhile")); err != nil || string(reply) != "meanwhile" {
		t.Fatalf("echo while a call is held: %q, %v", reply, err)
	}
	go h.reply(h.req, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handler slots to be free", func() bool { return len(srv.callSem) == 0 })
}

// TestAsyncHandlerCallerGone answers calls whose caller gave up, by a
// cancel or with its connection: the late replies are dropped, and the
// call's slot is released (one slot only, so the next call shows it).
func TestAsyncHandlerCallerGone(t *testing.T) {
	checkLeaks(t)
	held := make(chan heldReply, 1)
	srv := startServer(t, "tcp", asyncMux(held), Options{MaxConcurrentCalls: 1})
	ctx := testCtx(t)
	d := newDialer(t, Options{})
	c := dial(t, d, srv.Addr())

	callCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(callCtx, "hold", []byte("x"))
		done <- err
	}()
	h := <-held
	if _, err := c.Call(ctx, "echo", nil); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call over the limit while one is held: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	// The cancel frame may still be on its way: the reply then goes out
	// and the client, which forgot the call, drops it. Either way the
	// slot is free once the reply was made.
	h.reply([]byte("late"), nil)
	waitFor(t, "the handler slot to be free", func() bool { return len(srv.callSem) == 0 })
	if reply, err := c.Call(ctx, "echo", []byte("next")); err != nil || string(reply) != "next" {
		t.Fatalf("call after a dropped reply: %q, %v", reply, err)
	}

	// The caller's connection dies while the call is held.
	c2 := dial(t, newDialer(t, Options{}), srv.Addr())
	go func() {
		_, err := c2.Call(ctx, "hold", []byte("y"))
		done <- err
	}()
	h = <-held
	c2.Close()
	if err := <-done; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("call on a closed conn: %v", err)
	}
	waitFor(t, "the server to see the connection close", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.conns) == 1
	})
	h.reply([]byte("late"), nil)
	waitFor(t, "the handler slot to be free", func() bool { return len(srv.callSem) == 0 })
	if reply, err := c.Call(ctx, "echo", []byte("again")); err != nil || string(reply) != "again" {
		t.Fatalf("call after a reply to a closed connection: %q, %v", reply, err)
	}
}

// TestServerCloseWaitsForAsyncHandlers: Close returns only once every
// asynchronous call has been answered.
func TestServerCloseWaitsForAsyncHandlers(t *testing.T) {
	checkLeaks(t)
	held := make(chan heldReply, 1)
	srv, err := Listen("tcp", "127.0.0.1:0", asyncMux(held), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, newDialer(t, Options{}), srv.Addr())
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(testCtx(t), "hold", nil)
		done <- err
	}()
	h := <-held
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	// The call fails once Close has broken the connection, which it does
	// before it waits for the handlers.
	if err := <-done; !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call when the server closed: %v", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned before the asynchronous handler replied")
	default:
	}
	h.reply(nil, nil)
	<-closed
}

// TestAsyncReplyWouldBlock answers many calls with large replies to a
// client that does not read: the replies that find the send queue full
// wait for room on goroutines of their own, instead of blocking the
// goroutine that replies or growing the queue until the connection is
// dropped. Once the client reads, every reply arrives intact.
func TestAsyncReplyWouldBlock(t *testing.T) {
	checkLeaks(t)
	// Far more than the socket buffers of a peer that does not read hold.
	const calls, size = 200, 60 << 10
	var answered atomic.Int64
	mux := transport.NewMux()
	mux.HandleAsync("big", func(req []byte, reply func([]byte, error)) {
		reply(bytes.Repeat(req[:1], size), nil)
		answered.Add(1)
	})
	srv := startServer(t, "tcp", mux, Options{WriteBuffer: 64 << 10})
	nc := rawConn(t, srv.Addr())
	buf := append([]byte(nil), preamble[:]...)
	for id := range uint64(calls) {
		buf = appendFrame(buf, &frame{typ: frameCall, id: id + 1, route: "big", payload: []byte{byte(id)}})
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every call to be answered", func() bool { return answered.Load() == calls })
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
		if f.typ != frameReply || f.id < 1 || f.id > calls || seen[f.id] {
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
