package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/synod-go/synod/transport"
)

// wait fails the test if ch is not closed or sent to within a few seconds.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestMockStreamOrderedBothWays(t *testing.T) {
	c, s := transport.NewMockStreamPair(t.Context())
	const n = 100
	done := make(chan error, 1)
	go func() { // server echoes with a prefix until EOF
		for {
			msg, err := s.ReadMsg()
			if err == io.EOF {
				done <- s.Close()
				return
			}
			if err != nil {
				done <- err
				return
			}
			if err := s.WriteMsg(append([]byte("echo "), msg...)); err != nil {
				done <- err
				return
			}
		}
	}()
	writeErr := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.WriteMsg([]byte(fmt.Sprint(i))); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	for i := range n {
		msg, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("ReadMsg %d: %v", i, err)
		}
		if want := fmt.Sprint("echo ", i); string(msg) != want {
			t.Fatalf("message %d = %q, want %q", i, msg, want)
		}
	}
	if err := wait(t, writeErr, "writer"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done, "server"); err != nil {
		t.Fatalf("server: %v", err)
	}
}

func TestMockStreamCloseDeliversThenEOF(t *testing.T) {
	c, s := transport.NewMockStreamPair(t.Context())
	for _, m := range []string{"a", "b"} {
		if err := s.WriteMsg([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, want := range []string{"a", "b"} {
		msg, err := c.ReadMsg()
		if err != nil || string(msg) != want {
			t.Fatalf("ReadMsg = %q, %v; want %q", msg, err, want)
		}
	}
	for range 2 {
		if _, err := c.ReadMsg(); err != io.EOF {
			t.Fatalf("ReadMsg after peer close = %v, want io.EOF", err)
		}
	}
	if err := c.WriteMsg([]byte("x")); err != io.EOF {
		t.Fatalf("WriteMsg after peer close = %v, want io.EOF", err)
	}
	if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("ReadMsg on closed end = %v, want ErrClosed", err)
	}
	if err := s.WriteMsg(nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("WriteMsg on closed end = %v, want ErrClosed", err)
	}
	wait(t, c.Context().Done(), "client context")
	wait(t, s.Context().Done(), "server context")
}

func TestMockStreamCloseUnblocksReader(t *testing.T) {
	c, s := transport.NewMockStreamPair(t.Context())
	errs := make(chan error, 2)
	go func() { _, err := c.ReadMsg(); errs <- err }()
	go func() { _, err := s.ReadMsg(); errs <- err }()
	c.Close()
	got := []error{wait(t, errs, "reader"), wait(t, errs, "reader")}
	var closed, eof int
	for _, err := range got {
		switch {
		case errors.Is(err, transport.ErrClosed):
			closed++
		case err == io.EOF:
			eof++
		}
	}
	if closed != 1 || eof != 1 {
		t.Fatalf("reader errors = %v, want one ErrClosed and one io.EOF", got)
	}
}

func TestMockStreamOpenerContextAbortsBothEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		end  bool // cancel explicitly rather than wait for the deadline
		want error
	}{
		{"cancel", context.WithCancel, true, context.Canceled},
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 10*time.Millisecond)
		}, false, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx(t.Context())
			defer cancel()
			c, s := transport.NewMockStreamPair(ctx)
			if err := c.WriteMsg([]byte("pending")); err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, 1)
			go func() { _, err := c.ReadMsg(); errs <- err }()
			if tc.end {
				cancel()
			}
			if err := wait(t, errs, "client ReadMsg"); !errors.Is(err, tc.want) {
				t.Fatalf("client ReadMsg = %v, want %v", err, tc.want)
			}
			wait(t, s.Context().Done(), "server context")
			if _, err := s.ReadMsg(); !errors.Is(err, tc.want) {
				t.Fatalf("server ReadMsg = %v, want %v (pending messages are discarded)", err, tc.want)
			}
			if err := s.WriteMsg(nil); !errors.Is(err, tc.want) {
				t.Fatalf("server WriteMsg = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMockStreamBreak(t *testing.T) {
	c, s := transport.NewMockStreamPair(t.Context())
	if err := c.WriteMsg([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	s.Break()
	for name, end := range map[string]*transport.MockStream{"client": c, "server": s} {
		if _, err := end.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) {
			t.Errorf("%s ReadMsg = %v, want ErrUnreachable", name, err)
		}
		if err := end.WriteMsg(nil); !errors.Is(err, transport.ErrUnreachable) {
			t.Errorf("%s WriteMsg = %v, want ErrUnreachable", name, err)
		}
		wait(t, end.Context().Done(), name+" context")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("ReadMsg after Break and Close = %v, want the Break error", err)
	}
}

func TestMockStreamCopiesMessages(t *testing.T) {
	c, s := transport.NewMockStreamPair(t.Context())
	buf := []byte("original")
	if err := c.WriteMsg(buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "mutated!")
	msg, err := s.ReadMsg()
	if err != nil || string(msg) != "original" {
		t.Fatalf("ReadMsg = %q, %v; want %q", msg, err, "original")
	}
}

func TestMockStreamAlreadyCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c, s := transport.NewMockStreamPair(ctx)
	wait(t, s.Context().Done(), "server context")
	if _, err := c.ReadMsg(); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadMsg = %v, want context.Canceled", err)
	}
}
