package tcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/synod-go/synod/transport"
)

func TestRoundTrip(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			checkLeaks(t)
			ctx := testCtx(t)
			srv := startServer(t, network, echoMux(), Options{})
			c := dial(t, newDialer(t, Options{}), srv.Addr())

			reply, err := c.Call(ctx, "echo", []byte("hello"))
			if err != nil || string(reply) != "hello" {
				t.Fatalf("echo: %q, %v", reply, err)
			}
			reply, err = c.Call(ctx, "echo", nil)
			if err != nil || len(reply) != 0 {
				t.Fatalf("empty echo: %q, %v", reply, err)
			}

			_, err = c.Call(ctx, "fail", []byte("boom"))
			var re *transport.RemoteError
			if !errors.As(err, &re) || re.Msg != "boom" || re.Route != "fail" {
				t.Fatalf("fail: got %v, want RemoteError boom", err)
			}

			if _, err := c.Call(ctx, "nope", nil); !errors.Is(err, transport.ErrUnknownRoute) {
				t.Fatalf("unknown route: got %v", err)
			}
			if _, err := c.NewStream(ctx, "nope"); !errors.Is(err, transport.ErrUnknownRoute) {
				t.Fatalf("unknown stream route: got %v", err)
			}

			s, err := c.NewStream(ctx, "echo")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				msg := fmt.Appendf(nil, "msg %d", i)
				if err := s.WriteMsg(msg); err != nil {
					t.Fatal(err)
				}
				got, err := s.ReadMsg()
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("stream echo %d: %q, %v", i, got, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("read after close: %v", err)
			}
			if err := s.WriteMsg(nil); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("write after close: %v", err)
			}
		})
	}
}

func TestConcurrentCallers(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv, err := Serve(cl, echoMux(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	d := newDialer(t, Options{})

	const callers, calls = 64, 100
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			c, err := d.Dial(ctx, srv.Addr()) // one Conn per caller, one connection for all
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range calls {
				req := fmt.Appendf(nil, "caller %d call %d", i, j)
				reply, err := c.Call(ctx, "echo", req)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(reply, req) {
					errs <- fmt.Errorf("got %q, want %q", reply, req)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := cl.accepted.Load(); n != 1 {
		t.Errorf("%d connections accepted, want 1", n)
	}
}

func TestCancelReachesHandler(t *testing.T) {
	checkLeaks(t)
	srv := startBlockServer(t)
	c := dial(t, newDialer(t, Options{}), srv.Addr())

	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "block", nil)
		done <- err
	}()
	<-srv.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("call: %v, want context.Canceled", err)
	}
	wantHandlerCancelled(t, srv.observed)
}

func TestDeadlinePropagation(t *testing.T) {
	checkLeaks(t)
	mux := transport.NewMux()
	mux.Handle("deadline", func(ctx context.Context, req []byte) ([]byte, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			return []byte("none"), nil
		}
		return []byte(time.Until(dl).String()), nil
	})
	srv := startServer(t, "tcp", mux, Options{})
	c := dial(t, newDialer(t, Options{}), srv.Addr())

	reply, err := c.Call(context.Background(), "deadline", nil)
	if err != nil || string(reply) != "none" {
		t.Fatalf("no deadline: %q, %v", reply, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	reply, err = c.Call(ctx, "deadline", nil)
	if err != nil {
		t.Fatal(err)
	}
	left, err := time.ParseDuration(string(reply))
	if err != nil {
		t.Fatal(err)
	}
	if left <= time.Second || left > 3*time.Second {
		t.Fatalf("handler has %v left, want about 3s", left)
	}

	// A deadline that passes while the handler runs ends the handler's
	// context too.
	mux.Handle("wait", func(ctx context.Context, req []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := c.Call(ctx2, "wait", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
}

func TestDeadlineOnFakeClock(t *testing.T) {
	checkLeaks(t)
	clock := clockwork.NewFakeClock()
	got := make(chan error, 1)
	mux := transport.NewMux()
	mux.Handle("wait", func(ctx context.Context, req []byte) ([]byte, error) {
		<-ctx.Done()
		got <- ctx.Err()
		return nil, nil
	})
	srv := startServer(t, "tcp", mux, Options{Clock: clock})
	c := dial(t, newDialer(t, Options{Clock: clock}), srv.Addr())
	ctx, cancel := clockwork.WithTimeout(context.Background(), clock, time.Minute)
	defer cancel()
	go c.Call(ctx, "wait", nil)
	// The caller's and the handler's contexts both wait on the fake clock.
	if err := clock.BlockUntilContext(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := <-got; err == nil {
		t.Fatal("handler context not done")
	}
}

func TestLargeMessages(t *testing.T) {
	checkLeaks(t)
	const max = 64 << 10
	ctx := context.Background() // no deadline, so no timeout in the call frame
	mux := echoMux()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv, err := Serve(cl, mux, Options{MaxFrameSize: max})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, newDialer(t, Options{MaxFrameSize: max}), srv.Addr())

	// MaxFrameSize bounds each message; the frame header comes on top.
	req := bytes.Repeat([]byte{7}, max)
	reply, err := c.Call(ctx, "echo", req)
	if err != nil || !bytes.Equal(reply, req) {
		t.Fatalf("largest request: %d bytes, %v", len(reply), err)
	}
	if _, err := c.Call(ctx, "echo", make([]byte, max+1)); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("request over the limit: %v", err)
	}
	// A reply over the limit fails that call only.
	mux.Handle("reply", func(ctx context.Context, req []byte) ([]byte, error) {
		return make([]byte, binary.BigEndian.Uint32(req)), nil
	})
	size := func(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }
	if reply, err := c.Call(ctx, "reply", size(max)); err != nil || len(reply) != max {
		t.Fatalf("largest reply: %d bytes, %v", len(reply), err)
	}
	if _, err := c.Call(ctx, "reply", size(max+1)); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("reply over the limit: %v", err)
	}

	s, err := c.NewStream(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteMsg(make([]byte, max+1)); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("stream message over the limit: %v", err)
	}
	big := bytes.Repeat([]byte{9}, max)
	if err := s.WriteMsg(big); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadMsg(); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("largest stream message: %d bytes, %v", len(got), err)
	}

	// The longest route and a deadline still fit the frame limit.
	long := strings.Repeat("r", maxRouteLen)
	mux.Handle(long, func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })
	dctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	if _, err := c.Call(dctx, long, req); err != nil {
		t.Fatalf("longest route: %v", err)
	}
	if _, err := c.Call(dctx, long+"r", nil); err == nil {
		t.Fatal("route over the limit accepted")
	}

	if reply, err := c.Call(ctx, "echo", []byte("still up")); err != nil || string(reply) != "still up" {
		t.Fatalf("after oversized messages: %q, %v", reply, err)
	}
	if n := cl.accepted.Load(); n != 1 {
		t.Errorf("%d connections accepted, want 1: an oversized message broke the connection", n)
	}
}

func TestOverload(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	release := make(chan struct{})
	started := make(chan struct{})
	mux := echoMux()
	mux.Handle("block", func(ctx context.Context, req []byte) ([]byte, error) {
		close(started)
		<-release
		return []byte("ok"), nil
	})
	srv := startServer(t, "tcp", mux, Options{MaxConcurrentCalls: 1, MaxConcurrentStreams: 1})
	c := dial(t, newDialer(t, Options{}), srv.Addr())
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "block", nil)
		done <- err
	}()
	<-started
	if _, err := c.Call(ctx, "echo", nil); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call over the limit: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handler slot to be free", func() bool { return len(srv.callSem) == 0 })
	if _, err := c.Call(ctx, "echo", nil); err != nil {
		t.Fatal(err)
	}

	s, err := c.NewStream(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := c.NewStream(ctx, "echo"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("stream over the limit: %v", err)
	}
}

func TestServerCloseWaitsForHandlers(t *testing.T) {
	checkLeaks(t)
	started := make(chan struct{})
	returned := make(chan struct{})
	mux := transport.NewMux()
	mux.Handle("block", func(ctx context.Context, req []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		close(returned)
		return nil, nil
	})
	srv, err := Listen("tcp", "127.0.0.1:0", mux, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, newDialer(t, Options{}), srv.Addr())
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(testCtx(t), "block", nil)
		done <- err
	}()
	<-started
	srv.Close()
	select {
	case <-returned:
	default:
		t.Fatal("Close returned before the handler")
	}
	if err := <-done; !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call when the server closed: %v", err)
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"127.0.0.1:7000", "tcp", "127.0.0.1:7000"},
		{"tcp://[::1]:7000", "tcp", "[::1]:7000"},
		{"unix:///tmp/x.sock", "unix", "/tmp/x.sock"},
		{"unix://rel.sock", "unix", "rel.sock"},
		{"unix:rel.sock", "unix", "rel.sock"},
	} {
		n, a, err := ParseAddr(tc.in)
		if err != nil || n != tc.network || a != tc.address {
			t.Errorf("ParseAddr(%q) = %q, %q, %v", tc.in, n, a, err)
		}
		if got := FormatAddr(n, a); tc.in[:3] != "tcp" && got != tc.in && n == "tcp" {
			t.Errorf("FormatAddr(%q, %q) = %q", n, a, got)
		}
	}
	for _, bad := range []string{"", "unix://", "nohostport", "tcp://"} {
		if _, _, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) succeeded", bad)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{MaxFrameSize: -1},
		{MaxFrameSize: 10},
		{MaxFrameSize: 2 << 30},
		{BackoffMin: time.Second, BackoffMax: time.Millisecond},
		{DialTimeout: -1},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v validated", o)
		}
		if _, err := NewDialer(o); err == nil {
			t.Errorf("NewDialer(%+v) succeeded", o)
		}
	}
	if err := (&Options{}).Validate(); err != nil {
		t.Error(err)
	}
}
