package mem_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

const waitTimeout = 5 * time.Second

// newNet returns a network closed when the test ends.
func newNet(t *testing.T, opts mem.Options) *mem.Network {
	t.Helper()
	n := mem.NewNetwork(opts)
	t.Cleanup(func() { n.Close() })
	return n
}

// echoMux serves unary "echo" and stream "echo", both writing back what
// they receive.
func echoMux() *transport.Mux {
	m := transport.NewMux()
	m.Handle("echo", func(_ context.Context, req []byte) ([]byte, error) { return req, nil })
	m.HandleStream("echo", func(s transport.Stream) error {
		for {
			msg, err := s.ReadMsg()
			if err != nil {
				return err
			}
			if err := s.WriteMsg(msg); err != nil {
				return err
			}
		}
	})
	return m
}

// listen registers mux at each of addrs.
func listen(t *testing.T, n *mem.Network, mux *transport.Mux, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if _, err := n.Listen(a, mux); err != nil {
			t.Fatal(err)
		}
	}
}

// dial returns a Conn from node from to node to.
func dial(t *testing.T, n *mem.Network, from, to string) transport.Conn {
	t.Helper()
	c, err := n.Dialer(from).Dial(t.Context(), to)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// call makes one echo call from → to and returns its error.
func call(t *testing.T, n *mem.Network, from, to string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	got, err := dial(t, n, from, to).Call(ctx, "echo", []byte(from))
	if err == nil && string(got) != from {
		t.Fatalf("echo %s→%s = %q", from, to, got)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call %s→%s waited for its deadline instead of failing fast", from, to)
	}
	return err
}

// mustReach fails the test unless an echo call from → to succeeds.
func mustReach(t *testing.T, n *mem.Network, from, to string) {
	t.Helper()
	if err := call(t, n, from, to); err != nil {
		t.Fatalf("call %s→%s: %v", from, to, err)
	}
}

// mustNotReach fails the test unless an echo call from → to fails with
// transport.ErrUnreachable.
func mustNotReach(t *testing.T, n *mem.Network, from, to string) {
	t.Helper()
	if err := call(t, n, from, to); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call %s→%s: %v, want ErrUnreachable", from, to, err)
	}
}

// receive returns the next value on ch, failing the test after waitTimeout.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// blocker serves unary route "block": each call signals started, then waits
// for release or its context, and reports how it ended on ended.
type blocker struct {
	started chan struct{}
	release chan struct{}
	ended   chan error // ctx.Err() if the context ended first, else nil
}

func newBlocker(mux *transport.Mux) *blocker {
	b := &blocker{started: make(chan struct{}, 16), release: make(chan struct{}), ended: make(chan error, 16)}
	mux.Handle("block", func(ctx context.Context, req []byte) ([]byte, error) {
		b.started <- struct{}{}
		select {
		case <-b.release:
			b.ended <- nil
			return []byte("released"), nil
		case <-ctx.Done():
			b.ended <- ctx.Err()
			return nil, ctx.Err()
		}
	})
	return b
}

// goCall starts a call on c in a goroutine and returns its result channel.
func goCall(t *testing.T, c transport.Conn, route string) <-chan error {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	errc := make(chan error, 1)
	go func() {
		defer cancel()
		_, err := c.Call(ctx, route, nil)
		errc <- err
	}()
	return errc
}
