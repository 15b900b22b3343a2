package mem_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

func TestCountersExact(t *testing.T) {
	n := newNet(t, mem.Options{})
	mux := echoMux()
	mux.Handle("fail", func(context.Context, []byte) ([]byte, error) { return nil, errors.New("no") })
	listen(t, n, mux, "b")
	c := dial(t, n, "a", "b")

	const calls = 10
	for range calls {
		if _, err := c.Call(t.Context(), "echo", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Call(t.Context(), "fail", nil); err == nil {
		t.Fatal("want a RemoteError")
	}
	if _, err := c.Call(t.Context(), "missing", nil); !errors.Is(err, transport.ErrUnknownRoute) {
		t.Fatalf("unknown route: %v", err)
	}
	const msgs = 3
	s, err := c.NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if err := s.WriteMsg([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadMsg(); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		// calls + the failing call + the unknown-route request + open + messages
		{"Sent(a)", n.Sent("a"), calls + 1 + 1 + 1 + msgs},
		// the unknown-route request is not delivered
		{"Delivered(b)", n.Delivered("b"), calls + 1 + 1 + msgs},
		{"Sent(b)", n.Sent("b"), calls + 1 + msgs},
		// replies, the RemoteError reply, echoed messages
		{"Delivered(a)", n.Delivered("a"), calls + 1 + msgs},
		{"DeliveredRoute(echo)", n.DeliveredRoute("echo"), 2*calls + 1 + 2*msgs},
		{"DeliveredRoute(fail)", n.DeliveredRoute("fail"), 2},
		{"DeliveredRoute(missing)", n.DeliveredRoute("missing"), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	n.ResetCounters()
	if n.Sent("a")+n.Delivered("a")+n.Sent("b")+n.Delivered("b")+n.DeliveredRoute("echo") != 0 {
		t.Fatal("counters not zero after ResetCounters")
	}
}

func TestMaxMessageSizeCountsNothing(t *testing.T) {
	n := newNet(t, mem.Options{MaxMessageSize: 4})
	listen(t, n, echoMux(), "b")
	if _, err := dial(t, n, "a", "b").Call(t.Context(), "echo", []byte("12345")); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("Call over the limit: %v, want ErrTooLarge", err)
	}
	if got := n.Sent("a"); got != 0 {
		t.Fatalf("Sent(a) = %d for a request refused before it left", got)
	}
}

// TestDelayOnFakeClock follows one call through its request and reply delays.
func TestDelayOnFakeClock(t *testing.T) {
	clock := clockwork.NewFakeClock()
	n := newNet(t, mem.Options{Clock: clock})
	n.SetDefaultDelay(10*time.Millisecond, 10*time.Millisecond)
	handled := make(chan struct{}, 1)
	mux := transport.NewMux()
	mux.Handle("echo", func(_ context.Context, req []byte) ([]byte, error) {
		handled <- struct{}{}
		return req, nil
	})
	listen(t, n, mux, "b")
	errc := goCall(t, dial(t, n, "a", "b"), "echo")
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()

	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the request waits
		t.Fatal(err)
	}
	clock.Advance(9 * time.Millisecond)
	select {
	case <-handled:
		t.Fatal("request delivered before its delay")
	default:
	}
	clock.Advance(time.Millisecond)
	receive(t, handled, "request after its delay")
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the reply waits
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Fatalf("call returned (%v) before the reply's delay", err)
	default:
	}
	clock.Advance(10 * time.Millisecond)
	if err := receive(t, errc, "reply after its delay"); err != nil {
		t.Fatal(err)
	}
}

// TestDelayReordersCalls sends calls one after another and checks that random
// delays deliver them in another order.
func TestDelayReordersCalls(t *testing.T) {
	const seed, calls = 3, 20
	t.Logf("seed %d", seed)
	clock := clockwork.NewFakeClock()
	n := newNet(t, mem.Options{Seed: seed, Clock: clock})
	n.SetDefaultDelay(time.Millisecond, 100*time.Millisecond)
	arrived := make(chan int, calls)
	mux := transport.NewMux()
	mux.Handle("seq", func(_ context.Context, req []byte) ([]byte, error) {
		var i int
		fmt.Sscan(string(req), &i)
		arrived <- i
		return nil, nil
	})
	listen(t, n, mux, "b")
	c := dial(t, n, "a", "b")
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	for i := range calls {
		go c.Call(ctx, "seq", fmt.Append(nil, i))
		if err := clock.BlockUntilContext(ctx, i+1); err != nil { // call i is on its way
			t.Fatal(err)
		}
	}
	clock.Advance(100 * time.Millisecond) // every request's delay is over
	var order []int
	for range calls {
		order = append(order, receive(t, arrived, "calls to arrive"))
	}
	sorted := true
	for i := range order {
		sorted = sorted && order[i] == i
	}
	if sorted {
		t.Fatalf("calls arrived in the order sent, %v; delays should reorder them (seed %d)", order, seed)
	}
}

// TestStreamOrderedUnderDelay checks that random delays do not reorder a
// stream's messages.
func TestStreamOrderedUnderDelay(t *testing.T) {
	const seed, msgs = 5, 100
	t.Logf("seed %d", seed)
	n := newNet(t, mem.Options{Seed: seed})
	n.SetDefaultDelay(0, 2*time.Millisecond)
	listen(t, n, echoMux(), "b")
	s, err := dial(t, n, "a", "b").NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range msgs {
		if err := s.WriteMsg(fmt.Append(nil, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range msgs {
		msg, err := s.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if string(msg) != fmt.Sprint(i) {
			t.Fatalf("message %d = %q under delays (seed %d)", i, msg, seed)
		}
	}
}

func TestLoggerRecordsFaults(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := newNet(t, mem.Options{Logger: logger})
	listen(t, n, echoMux(), "b")
	n.SetDefaultReliability(1, 0)
	mustNotReach(t, n, "a", "b")
	n.Kill("b")
	for _, want := range []string{"request dropped", "kill"} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}
