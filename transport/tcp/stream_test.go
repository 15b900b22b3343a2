package tcp

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/synod-go/synod/transport"
)

func TestStreamFlowControl(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	const window = 4 << 10
	received := make(chan []byte)
	mux := transport.NewMux()
	mux.HandleStream("sink", func(s transport.Stream) error {
		for {
			msg, err := s.ReadMsg()
			if err != nil {
				close(received)
				return nil
			}
			received <- msg
		}
	})
	srv := startServer(t, "tcp", mux, Options{StreamWindow: window})
	c := dial(t, newDialer(t, Options{StreamWindow: window}), srv.Addr())
	s, err := c.NewStream(ctx, "sink")
	if err != nil {
		t.Fatal(err)
	}
	// The writer may run ahead of the reader by the window only.
	msg := make([]byte, 1000)
	wrote := make(chan int, 100)
	go func() {
		for i := range 50 {
			if err := s.WriteMsg(msg); err != nil {
				break
			}
			wrote <- i
		}
		s.Close()
		close(wrote)
	}()
	ahead := 0
	waitFor(t, "the writer to block", func() bool {
		for {
			select {
			case <-wrote:
				ahead++
				continue
			default:
			}
			break
		}
		st := s.(*stream)
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.credit <= 0
	})
	if limit := window/msgCost(len(msg)) + 1; ahead > limit {
		t.Fatalf("writer ran %d messages ahead, window allows %d", ahead, limit)
	}
	n := 0
	for range received {
		n++
	}
	if n != 50 {
		t.Fatalf("received %d messages, want 50", n)
	}
}

func TestStreamCancel(t *testing.T) {
	checkLeaks(t)
	handlerDone := make(chan error, 1)
	mux := transport.NewMux()
	mux.HandleStream("wait", func(s transport.Stream) error {
		<-s.Context().Done()
		_, err := s.ReadMsg()
		handlerDone <- err
		return nil
	})
	mux.HandleStream("close", func(s transport.Stream) error { return nil })
	srv := startServer(t, "tcp", mux, Options{})
	c := dial(t, newDialer(t, Options{}), srv.Addr())

	ctx, cancel := context.WithCancel(testCtx(t))
	s, err := c.NewStream(ctx, "wait")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-handlerDone; err == nil {
		t.Fatal("server stream still readable after the opener's context ended")
	}
	if _, err := s.ReadMsg(); !errors.Is(err, context.Canceled) {
		t.Fatalf("opener's ReadMsg after cancel: %v", err)
	}
	<-s.Context().Done()

	// A handler that returns closes the stream cleanly.
	s2, err := c.NewStream(testCtx(t), "close")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.ReadMsg(); err != io.EOF {
		t.Fatalf("ReadMsg after the handler returned: %v, want io.EOF", err)
	}
	if err := s2.WriteMsg([]byte("x")); err != io.EOF {
		t.Fatalf("WriteMsg after the handler returned: %v, want io.EOF", err)
	}
	s2.Close()
}
