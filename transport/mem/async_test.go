package mem_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

func TestCallAsync(t *testing.T) {
	n := newNet(t, mem.Options{})
	mux := echoMux()
	started, blocked := make(chan struct{}, 2), make(chan error, 2)
	mux.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		blocked <- ctx.Err()
		return nil, ctx.Err()
	})
	listen(t, n, mux, "b")
	c := dial(t, n, "a", "b")
	ac, ok := c.(transport.AsyncConn)
	if !ok {
		t.Fatal("mem Conn does not implement transport.AsyncConn")
	}
	type result struct {
		reply []byte
		err   error
	}
	res := make(chan result, 1)
	done := func(reply []byte, err error) { res <- result{reply, err} }
	wait := func() result {
		select {
		case r := <-res:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("callback not called")
			return result{}
		}
	}

	req := []byte("hello")
	if _, err := ac.CallAsync("echo", req, time.Second, done); err != nil {
		t.Fatal(err)
	}
	req[0] = 'J' // CallAsync does not retain req
	if r := wait(); r.err != nil || string(r.reply) != "hello" {
		t.Fatalf("echo: %q, %v", r.reply, r.err)
	}

	cancel, err := ac.CallAsync("block", nil, time.Minute, done)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	if r := wait(); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", r.err)
	}
	if err := <-blocked; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler saw %v", err)
	}

	if _, err := ac.CallAsync("block", nil, 10*time.Millisecond, done); err != nil {
		t.Fatal(err)
	}
	if r := wait(); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("call past its timeout: %v, want context.DeadlineExceeded", r.err)
	}
}
