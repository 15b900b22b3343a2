package transporttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/synod-go/synod/transport"
)

// streamMux serves echoStream(done) on stream route "echo".
func streamMux(done chan<- error) *transport.Mux {
	m := transport.NewMux()
	m.HandleStream("echo", echoStream(done))
	return m
}

// echoStream returns a StreamHandler that writes back every message it reads
// until io.EOF, and sends the error that ended its loop to done (nil for
// io.EOF).
func echoStream(done chan<- error) transport.StreamHandler {
	return func(s transport.Stream) error {
		for {
			msg, err := s.ReadMsg()
			if err == io.EOF {
				done <- nil
				return nil
			}
			if err != nil {
				done <- err
				return err
			}
			if err := s.WriteMsg(msg); err != nil {
				done <- err
				return err
			}
		}
	}
}

func testStreamEchoOrdered(t *testing.T, h Harness) {
	const n = 200
	done := make(chan error, 1)
	c := dial(t, h, h.Listen(streamMux(done)))
	s, err := c.NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeErr := make(chan error, 1)
	go func() { // one writer goroutine, concurrent with the reader below
		for i := range n {
			if err := s.WriteMsg(fmt.Appendf(nil, "message %d", i)); err != nil {
				writeErr <- fmt.Errorf("WriteMsg %d: %w", i, err)
				return
			}
		}
		writeErr <- nil
	}()
	for i := range n {
		msg, err := s.ReadMsg()
		if err != nil {
			t.Fatalf("ReadMsg %d: %v", i, err)
		}
		if want := fmt.Sprintf("message %d", i); string(msg) != want {
			t.Fatalf("message %d = %q, want %q", i, msg, want)
		}
	}
	if err := receive(t, writeErr, "writer"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := receive(t, done, "handler to read io.EOF"); err != nil {
		t.Fatalf("handler after the client's Close: %v, want io.EOF", err)
	}
	if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("ReadMsg after Close: %v, want ErrClosed", err)
	}
	if err := s.WriteMsg(nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("WriteMsg after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func testStreamServerCloses(t *testing.T, h Harness) {
	const n = 50
	mux := transport.NewMux()
	mux.HandleStream("count", func(s transport.Stream) error {
		if _, err := s.ReadMsg(); err != nil { // wait for the client's hello
			return err
		}
		for i := range n {
			if err := s.WriteMsg(fmt.Appendf(nil, "%d", i)); err != nil {
				return err
			}
		}
		return nil // closes the stream
	})
	c := dial(t, h, h.Listen(mux))
	s, err := c.NewStream(t.Context(), "count")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteMsg([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		msg, err := s.ReadMsg()
		if err != nil {
			t.Fatalf("ReadMsg %d: %v", i, err)
		}
		if string(msg) != fmt.Sprint(i) {
			t.Fatalf("message %d = %q", i, msg)
		}
	}
	for range 2 {
		if _, err := s.ReadMsg(); err != io.EOF {
			t.Fatalf("ReadMsg after the handler returned: %v, want io.EOF", err)
		}
	}
	receive(t, s.Context().Done(), "stream context to end after io.EOF")
}

func testStreamClientCloses(t *testing.T, h Harness) {
	const n = 50
	type result struct {
		got    []string
		err    error
		ctxEnd bool
	}
	results := make(chan result, 1)
	mux := transport.NewMux()
	mux.HandleStream("sink", func(s transport.Stream) error {
		var r result
		for {
			msg, err := s.ReadMsg()
			if err != nil {
				r.err = err
				break
			}
			r.got = append(r.got, string(msg))
		}
		select {
		case <-s.Context().Done():
			r.ctxEnd = true
		case <-time.After(timeout):
		}
		results <- r
		return nil
	})
	c := dial(t, h, h.Listen(mux))
	s, err := c.NewStream(t.Context(), "sink")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.WriteMsg(fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatalf("WriteMsg %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := receive(t, results, "handler")
	if r.err != io.EOF {
		t.Fatalf("handler's ReadMsg after the client's Close: %v, want io.EOF", r.err)
	}
	if len(r.got) != n {
		t.Fatalf("handler read %d messages before io.EOF, want %d", len(r.got), n)
	}
	for i, m := range r.got {
		if m != fmt.Sprint(i) {
			t.Fatalf("handler's message %d = %q", i, m)
		}
	}
	if !r.ctxEnd {
		t.Fatal("handler's stream context not done after the client's Close")
	}
}

func testStreamOpenerContextEnds(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name     string
		deadline bool
		want     error
	}{
		{"Cancel", false, context.Canceled},
		{"Deadline", true, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				err         error
				ctxEnd      bool
				hasDeadline bool
			}
			ready, results := make(chan struct{}, 1), make(chan result, 1)
			mux := transport.NewMux()
			mux.HandleStream("wait", func(s transport.Stream) error {
				var r result
				_, r.hasDeadline = s.Context().Deadline()
				if _, r.err = s.ReadMsg(); r.err == nil { // the hello
					ready <- struct{}{}
					_, r.err = s.ReadMsg() // blocks until the stream is aborted
				}
				select {
				case <-s.Context().Done():
					r.ctxEnd = true
				case <-time.After(timeout):
				}
				results <- r
				return nil
			})
			c := dial(t, h, h.Listen(mux))
			ctx, cancel := context.WithCancel(t.Context())
			if tc.deadline {
				ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
			}
			defer cancel()
			s, err := c.NewStream(ctx, "wait")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.WriteMsg([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			receive(t, ready, "handler to read the hello")
			if !tc.deadline {
				cancel()
			}
			if _, err := s.ReadMsg(); !errors.Is(err, tc.want) {
				t.Fatalf("opener's ReadMsg: %v, want %v", err, tc.want)
			}
			if err := s.WriteMsg(nil); err == nil || err == io.EOF {
				t.Fatalf("opener's WriteMsg after abort: %v, want an error", err)
			}
			receive(t, s.Context().Done(), "opener's stream context to end")
			r := receive(t, results, "handler to see the abort")
			if r.err == nil || r.err == io.EOF {
				t.Fatalf("handler's ReadMsg: %v, want an error other than io.EOF", r.err)
			}
			if !r.ctxEnd {
				t.Fatal("handler's stream context not done after the abort")
			}
			if tc.deadline && !r.hasDeadline {
				t.Fatal("handler's stream context lacks the opener's deadline")
			}
		})
	}
}
