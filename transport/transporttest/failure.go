package transporttest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/synod-go/synod/transport"
)

func testLargeMessages(t *testing.T, h Harness) {
	limit := h.MaxMessageSize()
	size := limit
	if limit == 0 {
		size = 1 << 20
	}
	payload := make([]byte, size)
	rand.NewChaCha8([32]byte{'s', 'y', 'n', 'o', 'd'}).Read(payload)
	done := make(chan error, 1)
	mux := streamMux(done)
	mux.Handle("echo", echo)
	mux.Handle("grow", func(_ context.Context, req []byte) ([]byte, error) {
		return append(req, 0), nil
	})
	c := dial(t, h, h.Listen(mux))

	got, err := c.Call(callCtx(t), "echo", payload)
	if err != nil {
		t.Fatalf("Call with a %d-byte request and reply: %v", size, err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("%d-byte echo came back changed", size)
	}
	s, err := c.NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteMsg(payload); err != nil {
		t.Fatalf("WriteMsg of %d bytes: %v", size, err)
	}
	if got, err := s.ReadMsg(); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("%d-byte stream echo: %d bytes, %v", size, len(got), err)
	}
	if limit == 0 {
		return
	}

	over := append(payload, 1)
	if _, err := c.Call(callCtx(t), "echo", over); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("Call with a request of limit+1 bytes: %v, want ErrTooLarge", err)
	}
	if _, err := c.Call(callCtx(t), "grow", payload); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("Call with a reply of limit+1 bytes: %v, want ErrTooLarge", err)
	}
	if err := s.WriteMsg(over); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("WriteMsg of limit+1 bytes: %v, want ErrTooLarge", err)
	}
	// A refused message leaves the stream and the Conn usable.
	if err := s.WriteMsg([]byte("small")); err != nil {
		t.Fatalf("WriteMsg after ErrTooLarge: %v", err)
	}
	if got, err := s.ReadMsg(); err != nil || string(got) != "small" {
		t.Fatalf("stream after ErrTooLarge: %q, %v", got, err)
	}
	if _, err := c.Call(callCtx(t), "echo", []byte("small")); err != nil {
		t.Fatalf("Call after ErrTooLarge: %v", err)
	}
}

// testPeerDeath checks that calls to a dead peer fail fast with
// ErrUnreachable (well before their deadline), including one in progress,
// and that the same Conn works again after the peer restarts.
func testPeerDeath(t *testing.T, h Harness) {
	started, observed := make(chan struct{}, 1), make(chan handlerView, 1)
	mux := blockingMux(started, observed)
	mux.Handle("echo", echo)
	addr := h.Listen(mux)
	c := dial(t, h, addr)
	if _, err := c.Call(callCtx(t), "echo", []byte("before")); err != nil {
		t.Fatal(err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(callCtx(t), "block", nil)
		errc <- err
	}()
	receive(t, started, "handler to start")
	h.Stop(addr)
	if err := receive(t, errc, "in-progress Call to fail"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("in-progress Call when the peer died: %v, want ErrUnreachable", err)
	}
	for range 3 {
		if _, err := c.Call(callCtx(t), "echo", []byte("while down")); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("Call to a dead peer: %v, want ErrUnreachable before the deadline", err)
		}
	}
	if s, err := c.NewStream(callCtx(t), "echo"); err == nil {
		_, err = s.ReadMsg()
		s.Close()
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("stream to a dead peer: ReadMsg %v, want ErrUnreachable", err)
		}
	} else if !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("NewStream to a dead peer: %v, want ErrUnreachable", err)
	}

	h.Start(addr, echoMux())
	err := eventually(func() error {
		got, err := c.Call(callCtx(t), "echo", []byte("after"))
		if err == nil && string(got) != "after" {
			t.Fatalf("Call after restart = %q, want %q", got, "after")
		}
		if err != nil && !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("Call while the peer restarts: %v, want nil or ErrUnreachable", err)
		}
		return err
	})
	if err != nil {
		t.Fatalf("Call after restart: %v", err)
	}
}

func testPeerDeathBreaksStream(t *testing.T, h Harness) {
	done := make(chan error, 1)
	addr := h.Listen(streamMux(done))
	c := dial(t, h, addr)
	s, err := c.NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteMsg([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	h.Stop(addr)
	if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("ReadMsg after the server died: %v, want ErrUnreachable (not io.EOF)", err)
	}
	receive(t, s.Context().Done(), "stream context to end")
}

func testConnClose(t *testing.T, h Harness) {
	started, observed := make(chan struct{}, 1), make(chan handlerView, 1)
	done := make(chan error, 1)
	mux := blockingMux(started, observed)
	mux.HandleStream("echo", echoStream(done))
	addr := h.Listen(mux)
	c, err := h.Dialer().Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteMsg([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMsg(); err != nil {
		t.Fatal(err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(callCtx(t), "block", nil)
		errc <- err
	}()
	receive(t, started, "handler to start")
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := receive(t, errc, "in-progress Call to fail"); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("in-progress Call after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Call(callCtx(t), "block", nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Call after Close: %v, want ErrClosed", err)
	}
	if _, err := c.NewStream(callCtx(t), "echo"); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("NewStream after Close: %v, want ErrClosed", err)
	}
	if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("ReadMsg on a stream of a closed Conn: %v, want ErrClosed", err)
	}
	if err := receive(t, done, "stream handler to see the abort"); err == nil || err == io.EOF {
		t.Fatalf("stream handler after the opener's Conn closed: %v, want an error other than io.EOF", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
