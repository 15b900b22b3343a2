package tcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/synod-go/synod/transport"
)

// asyncResult is what a CallAsync callback received.
type asyncResult struct {
	reply []byte
	err   error
}

// callAsync starts an asynchronous call and returns the channel its
// callback reports on; the test fails if the callback runs twice.
func callAsync(t *testing.T, c transport.Conn, route string, req []byte, timeout time.Duration) (func(), <-chan asyncResult, error) {
	t.Helper()
	ac, ok := c.(transport.AsyncConn)
	if !ok {
		t.Fatal("tcp Conn does not implement transport.AsyncConn")
	}
	res := make(chan asyncResult, 2)
	var once sync.Once
	cancel, err := ac.CallAsync(route, req, timeout, func(reply []byte, err error) {
		called := true
		once.Do(func() { called = false })
		if called {
			t.Error("CallAsync callback called twice")
		}
		res <- asyncResult{reply, err}
	})
	return cancel, res, err
}

// connected makes a synchronous call, so the Conn has a live connection
// (CallAsync never dials).
func connected(t *testing.T, c transport.Conn) {
	t.Helper()
	if _, err := c.Call(testCtx(t), "echo", []byte("up")); err != nil {
		t.Fatal(err)
	}
}

func TestCallAsyncNeedsConnection(t *testing.T) {
	checkLeaks(t)
	srv := startServer(t, "tcp", echoMux(), Options{})
	c := dial(t, newDialer(t, Options{}), srv.Addr())
	if _, _, err := callAsync(t, c, "echo", nil, time.Second); !errors.Is(err, transport.ErrWouldBlock) {
		t.Fatalf("CallAsync before any connection: %v, want ErrWouldBlock", err)
	}
	connected(t, c)
	_, res, err := callAsync(t, c, "echo", []byte("hello"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := recvWithin(t, res, "CallAsync callback not called"); r.err != nil || string(r.reply) != "hello" {
		t.Fatalf("reply %q, %v", r.reply, r.err)
	}
}

func TestCallAsyncErrors(t *testing.T) {
	checkLeaks(t)
	srv := startServer(t, "tcp", echoMux(), Options{MaxFrameSize: 4 << 10})
	c := dial(t, newDialer(t, Options{MaxFrameSize: 4 << 10}), srv.Addr())
	connected(t, c)

	_, res, err := callAsync(t, c, "fail", []byte("boom"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var re *transport.RemoteError
	if r := recvWithin(t, res, "CallAsync callback not called"); !errors.As(r.err, &re) || re.Msg != "boom" {
		t.Fatalf("fail route: %v, want a RemoteError boom", r.err)
	}

	_, res, err = callAsync(t, c, "nowhere", nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := recvWithin(t, res, "CallAsync callback not called"); !errors.Is(r.err, transport.ErrUnknownRoute) {
		t.Fatalf("unknown route: %v", r.err)
	}

	if _, err := c.(transport.AsyncConn).CallAsync("echo", nil, time.Second, nil); err == nil {
		t.Fatal("CallAsync with a nil callback: no error")
	}
	if _, _, err := callAsync(t, c, "echo", make([]byte, 8<<10), time.Second); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("oversized request: %v, want ErrTooLarge", err)
	}
	// The connection is still usable.
	_, res, _ = callAsync(t, c, "echo", []byte("still"), time.Second)
	if r := recvWithin(t, res, "CallAsync callback not called"); r.err != nil || string(r.reply) != "still" {
		t.Fatalf("after ErrTooLarge: %q, %v", r.reply, r.err)
	}
}

func TestCallAsyncCancel(t *testing.T) {
	checkLeaks(t)
	srv := startBlockServer(t)
	c := dial(t, newDialer(t, Options{}), srv.Addr())
	connected(t, c)

	cancel, res, err := callAsync(t, c, "block", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// The timeout reaches the handler as its deadline.
	if left := <-srv.started; left <= 50*time.Second || left > time.Minute {
		t.Fatalf("handler deadline %v away, want about a minute", left)
	}
	cancel()
	if r := recvWithin(t, res, "CallAsync callback not called"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", r.err)
	}
	cancel() // idempotent: the callback is not called again
	wantHandlerCancelled(t, srv.observed)
}

func TestCallAsyncConnClose(t *testing.T) {
	checkLeaks(t)
	srv := startBlockServer(t)
	d := newDialer(t, Options{})
	c := dial(t, d, srv.Addr())
	other := dial(t, d, srv.Addr()) // shares the connection
	connected(t, c)

	_, res, err := callAsync(t, c, "block", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	<-srv.started
	c.Close()
	if r := recvWithin(t, res, "CallAsync callback not called"); !errors.Is(r.err, transport.ErrClosed) {
		t.Fatalf("call on a closed Conn: %v, want ErrClosed", r.err)
	}
	if _, _, err := callAsync(t, c, "echo", nil, time.Second); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("CallAsync after Close: %v, want ErrClosed", err)
	}
	wantHandlerCancelled(t, srv.observed)
	// The other handle, on the same connection, still works.
	_, res, err = callAsync(t, other, "echo", []byte("x"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := recvWithin(t, res, "CallAsync callback not called"); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestCallAsyncPeerGone(t *testing.T) {
	checkLeaks(t)
	srv := startBlockServer(t)
	c := dial(t, newDialer(t, Options{}), srv.Addr())
	connected(t, c)

	_, res, err := callAsync(t, c, "block", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	<-srv.started
	srv.Close()
	if r := recvWithin(t, res, "CallAsync callback not called"); !errors.Is(r.err, transport.ErrUnreachable) {
		t.Fatalf("call to a closed server: %v, want ErrUnreachable", r.err)
	}
}

// TestCallAsyncWouldBlock: a peer that does not read fills the socket and
// then the connection's write buffer; CallAsync then refuses at once
// instead of queueing without bound or blocking.
func TestCallAsyncWouldBlock(t *testing.T) {
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		nc.Write(preamble[:]) // then never reads
		accepted <- nc
	}()
	c := dial(t, newDialer(t, Options{WriteBuffer: 64 << 10}), ln.Addr().String())
	// The first call dials; it cannot be answered, so cut it short.
	ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	_, err = c.Call(ctx, "echo", nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call to a silent peer: %v", err)
	}
	nc := <-accepted
	defer nc.Close()

	payload := make([]byte, 32<<10)
	var cancels []func()
	for n := 0; ; n++ {
		cl, _, err := callAsync(t, c, "echo", payload, time.Second)
		if errors.Is(err, transport.ErrWouldBlock) {
			t.Logf("ErrWouldBlock after %d calls of %d bytes", n, len(payload))
			break
		}
		if err != nil {
			t.Fatalf("call %d: %v", n, err)
		}
		cancels = append(cancels, cl)
		if n > 100000 {
			t.Fatal("CallAsync never refused a peer that does not read")
		}
	}
	for _, cl := range cancels {
		cl()
	}
}

// TestCallAsyncManyLarge sends many concurrent calls of just under the
// direct-write bound, so that direct writes fill the socket, leave the
// rest of their frame to the writer and interleave with its writes; every
// reply must come back intact and to its own caller.
func TestCallAsyncManyLarge(t *testing.T) {
	checkLeaks(t)
	srv := startServer(t, "tcp", echoMux(), Options{})
	c := dial(t, newDialer(t, Options{}), srv.Addr())
	connected(t, c)
	const callers, calls = 16, 40
	var g errgroup.Group
	for k := range callers {
		g.Go(func() error {
			for j := range calls {
				req := bytes.Repeat([]byte{byte(k), byte(j)}, (maxDirect-512)/2)
				var reply []byte
				var err error
				if j%2 == 0 {
					reply, err = c.Call(testCtx(t), "echo", req)
				} else {
					_, res, serr := callAsync(t, c, "echo", req, 10*time.Second)
					for errors.Is(serr, transport.ErrWouldBlock) {
						time.Sleep(time.Millisecond) // the buffer drains as the server reads
						_, res, serr = callAsync(t, c, "echo", req, 10*time.Second)
					}
					if serr != nil {
						return serr
					}
					r := recvWithin(t, res, "CallAsync callback not called")
					reply, err = r.reply, r.err
				}
				if err != nil {
					return err
				}
				if !bytes.Equal(reply, req) {
					return fmt.Errorf("caller %d call %d: reply of %d bytes does not match", k, j, len(reply))
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
