package transport_test

import (
	"context"
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
