package tcp

import (
	"bytes"
	"context"
	"errors"
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
	m.HandleAsync("twice", func(req []byte, reply func([]byte, error)) {
		reply(req, nil)
		reply([]byte("again"), nil) // a handler's bug: ignored
	})
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
	h := recvWithin(t, held, "the hold handler was not called")
	if reply, err := c.Call(ctx, "echo", []byte("meanwhile")); err != nil || string(reply) != "meanwhile" {
		t.Fatalf("echo while a call is held: %q, %v", reply, err)
	}
	go h.reply(h.req, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handler slots to be free", func() bool { return len(srv.callSem) == 0 })

	// A second reply releases nothing more: the held call keeps its slot.
	go func() {
		_, err := c.Call(ctx, "hold", []byte("keep"))
		done <- err
	}()
	h = recvWithin(t, held, "the hold handler was not called")
	for range 3 {
		if reply, err := c.Call(ctx, "twice", []byte("once")); err != nil || string(reply) != "once" {
			t.Fatalf("twice: %q, %v", reply, err)
		}
	}
	waitFor(t, "only the held call's slot to be taken", func() bool { return len(srv.callSem) == 1 })
	h.reply(h.req, nil)
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
	h := recvWithin(t, held, "the hold handler was not called")
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
	// The reply is sent before the slot is released.
	waitFor(t, "the handler slot to be free", func() bool { return len(srv.callSem) == 0 })

	// The caller's connection dies while the call is held.
	c2 := dial(t, newDialer(t, Options{}), srv.Addr())
	go func() {
		_, err := c2.Call(ctx, "hold", []byte("y"))
		done <- err
	}()
	h = recvWithin(t, held, "the hold handler was not called")
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
	h := recvWithin(t, held, "the hold handler was not called")
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
