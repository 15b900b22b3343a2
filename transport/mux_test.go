package transport_test

import (
	"context"
	"errors"
	"testing"

	"github.com/synod-go/synod/transport"
)

func TestMuxRoutes(t *testing.T) {
	m := transport.NewMux()
	if _, ok := m.Unary("a"); ok {
		t.Fatal("empty Mux has a unary handler")
	}
	if _, ok := m.Stream("a"); ok {
		t.Fatal("empty Mux has a stream handler")
	}
	m.Handle("a", func(context.Context, []byte) ([]byte, error) { return []byte("1"), nil })
	m.Handle("a", func(context.Context, []byte) ([]byte, error) { return []byte("2"), nil })
	m.HandleStream("s", func(transport.Stream) error { return nil })
	h, ok := m.Unary("a")
	if !ok {
		t.Fatal("no handler for a")
	}
	if got, _ := h(t.Context(), nil); string(got) != "2" {
		t.Fatalf("handler reply = %q, want the replacement's %q", got, "2")
	}
	if _, ok := m.Unary("s"); ok {
		t.Fatal("stream route served as unary")
	}
	if _, ok := m.Stream("s"); !ok {
		t.Fatal("no stream handler for s")
	}
}

func TestMuxAsync(t *testing.T) {
	m := transport.NewMux()
	held := make(chan func([]byte, error), 1)
	m.HandleAsync("a", func(req []byte, reply func([]byte, error)) { reply(append(req, '!'), nil) })
	m.HandleAsync("hold", func(_ []byte, reply func([]byte, error)) { held <- reply })
	h, ah, ok := m.UnaryAsync("a")
	if !ok || h == nil || ah == nil {
		t.Fatalf("UnaryAsync(a) = %v, %v, %v: want both handlers", h != nil, ah != nil, ok)
	}
	var got []byte
	ah([]byte("x"), func(rep []byte, err error) { got = rep })
	if string(got) != "x!" {
		t.Fatalf("async handler replied %q", got)
	}
	// Unary gives an adapter for transports that call handlers on a
	// goroutine of their own.
	u, ok := m.Unary("a")
	if !ok {
		t.Fatal("no unary handler for an async route")
	}
	if rep, err := u(t.Context(), []byte("y")); err != nil || string(rep) != "y!" {
		t.Fatalf("adapter: %q, %v", rep, err)
	}
	// The adapter returns when its context ends, even if the handler has
	// not replied; the late reply does not block.
	hold, _ := m.Unary("hold")
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := hold(ctx, nil)
		errc <- err
	}()
	reply := <-held
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("adapter after its context ended: %v", err)
	}
	reply(nil, nil)

	// Handle replaces an async handler, and the route is then synchronous.
	m.Handle("a", func(context.Context, []byte) ([]byte, error) { return []byte("sync"), nil })
	if _, ah, ok := m.UnaryAsync("a"); !ok || ah != nil {
		t.Fatal("route still asynchronous after Handle")
	}
}
