package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/synod-go/synod/transport"
)

func testUnaryRoundTrip(t *testing.T, h Harness) {
	mux := echoMux()
	mux.Handle("upper", func(_ context.Context, req []byte) ([]byte, error) {
		return bytes.ToUpper(req), nil
	})
	c := dial(t, h, h.Listen(mux))
	for _, tc := range []struct {
		route     string
		req, want []byte
	}{
		{"echo", []byte("hello"), []byte("hello")},
		{"echo", nil, nil},
		{"echo", []byte{0, 1, 2, 255}, []byte{0, 1, 2, 255}},
		{"upper", []byte("paxos"), []byte("PAXOS")},
	} {
		got, err := c.Call(callCtx(t), tc.route, tc.req)
		if err != nil {
			t.Fatalf("Call(%s, %q): %v", tc.route, tc.req, err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Fatalf("Call(%s, %q) = %q, want %q", tc.route, tc.req, got, tc.want)
		}
	}
}

// testUnaryNoAliasing checks that the handler owns its request: the caller
// may reuse its buffer once Call returns.
func testUnaryNoAliasing(t *testing.T, h Harness) {
	kept := make(chan []byte, 1)
	mux := transport.NewMux()
	mux.Handle("keep", func(_ context.Context, req []byte) ([]byte, error) {
		kept <- req
		return []byte("ok"), nil
	})
	c := dial(t, h, h.Listen(mux))
	buf := []byte("original")
	if _, err := c.Call(callCtx(t), "keep", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "mutated!")
	if got := receive(t, kept, "handler"); string(got) != "original" {
		t.Fatalf("handler's request changed to %q after the caller reused its buffer", got)
	}
}

func testUnknownRoute(t *testing.T, h Harness) {
	c := dial(t, h, h.Listen(echoMux()))
	if _, err := c.Call(callCtx(t), "no-such-route", []byte("x")); !errors.Is(err, transport.ErrUnknownRoute) {
		t.Fatalf("Call on unknown route: err = %v, want ErrUnknownRoute", err)
	}
	// "echo" is a unary route, not a stream route.
	for _, route := range []string{"no-such-stream", "echo"} {
		s, err := c.NewStream(callCtx(t), route)
		if err == nil {
			_, err = s.ReadMsg() // a transport may open streams lazily
			s.Close()
		}
		if !errors.Is(err, transport.ErrUnknownRoute) {
			t.Fatalf("stream on unknown route %q: err = %v, want ErrUnknownRoute", route, err)
		}
	}
}

func testRemoteError(t *testing.T, h Harness) {
	mux := transport.NewMux()
	mux.Handle("fail", func(context.Context, []byte) ([]byte, error) {
		return []byte("ignored"), errors.New("no quorum")
	})
	c := dial(t, h, h.Listen(mux))
	reply, err := c.Call(callCtx(t), "fail", nil)
	var re *transport.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("Call: err = %v, want a *transport.RemoteError", err)
	}
	if re.Route != "fail" || re.Msg != "no quorum" {
		t.Fatalf("RemoteError = %+v, want Route %q, Msg %q", *re, "fail", "no quorum")
	}
	if reply != nil {
		t.Fatalf("Call returned reply %q with an error", reply)
	}
	if errors.Is(err, transport.ErrUnreachable) || errors.Is(err, transport.ErrUnknownRoute) {
		t.Fatalf("RemoteError %v also matches a transport sentinel", err)
	}
}

func testConcurrentCallers(t *testing.T, h Harness) {
	const callers, calls = 64, 100
	c := dial(t, h, h.Listen(echoMux()))
	var g errgroup.Group
	for i := range callers {
		g.Go(func() error {
			for j := range calls {
				req := fmt.Appendf(nil, "caller %d call %d", i, j)
				got, err := c.Call(callCtx(t), "echo", req)
				if err != nil {
					return fmt.Errorf("caller %d call %d: %w", i, j, err)
				}
				if !bytes.Equal(got, req) {
					return fmt.Errorf("caller %d call %d: reply %q, want %q", i, j, got, req)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// blockingMux serves route "block", whose handler signals started, waits for
// its context to end, and sends what it observed to observed.
func blockingMux(started chan<- struct{}, observed chan<- handlerView) *transport.Mux {
	m := transport.NewMux()
	m.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
		dl, hasDeadline := ctx.Deadline()
		started <- struct{}{}
		<-ctx.Done()
		observed <- handlerView{err: ctx.Err(), deadline: dl, hasDeadline: hasDeadline}
		return nil, ctx.Err()
	})
	return m
}

// handlerView is what a handler saw of its context.
type handlerView struct {
	err         error
	deadline    time.Time
	hasDeadline bool
}

func testCancelReachesHandler(t *testing.T, h Harness) {
	started, observed := make(chan struct{}, 1), make(chan handlerView, 1)
	c := dial(t, h, h.Listen(blockingMux(started, observed)))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "block", nil)
		errc <- err
	}()
	receive(t, started, "handler to start")
	cancel()
	if err := receive(t, errc, "Call to return"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Call: err = %v, want context.Canceled", err)
	}
	if v := receive(t, observed, "handler to observe cancellation"); v.err == nil {
		t.Fatal("handler's context ended without an error")
	}
}

func testDeadlineReachesHandler(t *testing.T, h Harness) {
	started, observed := make(chan struct{}, 1), make(chan handlerView, 1)
	c := dial(t, h, h.Listen(blockingMux(started, observed)))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "block", nil)
		errc <- err
	}()
	receive(t, started, "handler to start")
	if err := receive(t, errc, "Call to return"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call: err = %v, want context.DeadlineExceeded", err)
	}
	v := receive(t, observed, "handler to observe the deadline")
	if v.err == nil {
		t.Fatal("handler's context ended without an error")
	}
	if !v.hasDeadline {
		t.Fatal("handler's context has no deadline; the caller's must reach it")
	}
	if d := v.deadline.Sub(want).Abs(); d > time.Second {
		t.Fatalf("handler's deadline is %v away from the caller's", d)
	}
}
