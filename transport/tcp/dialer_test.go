package tcp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/synod-go/synod/transport"
)

func TestPeerDownUp(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	clock := clockwork.NewFakeClock()
	logs := &logBuf{}
	srv := startServer(t, "tcp", echoMux(), Options{})
	addr := srv.Addr()
	d := newDialer(t, Options{Clock: clock, Logger: logs.logger(), BackoffMin: time.Second, BackoffMax: 4 * time.Second})
	c := dial(t, d, addr)
	if _, err := c.Call(ctx, "echo", []byte("up")); err != nil {
		t.Fatal(err)
	}
	s, err := c.NewStream(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}

	srv.Close()
	// The stream breaks.
	if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("stream on a dead connection: %v", err)
	}
	// The call after the loss dials, is refused, and fails.
	if _, err := c.Call(ctx, "echo", nil); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call to a down peer: %v", err)
	}
	// A peer that comes back is not dialed before the backoff has passed:
	// calls fail at once without dialing.
	srv2, err := Listen("tcp", addr, echoMux(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	for range 10 {
		start := time.Now()
		if _, err := c.Call(ctx, "echo", nil); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("call during backoff: %v", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("call during backoff took %v", el)
		}
	}
	if _, err := c.NewStream(ctx, "echo"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("stream during backoff: %v", err)
	}
	clock.Advance(time.Second) // the first backoff is in [BackoffMin/2, BackoffMin]
	if reply, err := c.Call(ctx, "echo", []byte("back")); err != nil || string(reply) != "back" {
		t.Fatalf("after the peer restarted: %q, %v", reply, err)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("cannot connect")) {
		t.Errorf("no log line for the failed dial:\n%s", logs)
	}
}

func TestBackoffGrows(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	clock := clockwork.NewFakeClock()
	// An address nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := newDialer(t, Options{Clock: clock, BackoffMin: 100 * time.Millisecond, BackoffMax: 400 * time.Millisecond})
	c := dial(t, d, addr)
	p := c.(*conn).p
	var waits []time.Duration
	for range 5 {
		if _, err := c.Call(ctx, "echo", nil); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("call: %v", err)
		}
		p.mu.Lock()
		wait, backoff := p.retryAt.Sub(clock.Now()), p.backoff
		p.mu.Unlock()
		if wait < backoff/2 || wait > backoff {
			t.Fatalf("wait %v outside [%v, %v]", wait, backoff/2, backoff)
		}
		waits = append(waits, backoff)
		clock.Advance(wait)
	}
	want := []time.Duration{100, 200, 400, 400, 400}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Fatalf("backoffs %v, want %v ms", waits, want)
		}
	}
}

func TestConnClose(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	started := make(chan struct{}, 1)
	mux := echoMux()
	mux.Handle("block", func(ctx context.Context, req []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, nil
	})
	srv := startServer(t, "tcp", mux, Options{})
	d := newDialer(t, Options{})
	c1 := dial(t, d, srv.Addr())
	c2 := dial(t, d, srv.Addr())
	s, err := c1.NewStream(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c1.Call(ctx, "block", nil)
		done <- err
	}()
	<-started
	c1.Close()
	if err := <-done; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("call in progress on a closed Conn: %v", err)
	}
	if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("stream of a closed Conn: %v", err)
	}
	if _, err := c1.Call(ctx, "echo", nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("call on a closed Conn: %v", err)
	}
	// Another Conn to the same peer is unaffected.
	if _, err := c2.Call(ctx, "echo", nil); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := c2.Call(ctx, "echo", nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("call after Dialer.Close: %v", err)
	}
	if _, err := d.Dial(ctx, srv.Addr()); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("dial after Dialer.Close: %v", err)
	}
}
