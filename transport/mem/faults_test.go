package mem_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

func TestDropRatesHonoured(t *testing.T) {
	const seed, calls = 42, 2000
	t.Logf("seed %d", seed)
	for _, tc := range []struct {
		name                   string
		dropRequest, dropReply float64
	}{
		{"requests", 0.3, 0},
		{"replies", 0, 0.3},
		{"both", 0.2, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, mem.Options{Seed: seed})
			n.SetDefaultReliability(tc.dropRequest, tc.dropReply)
			var handled atomic.Int64
			mux := transport.NewMux()
			mux.Handle("echo", func(_ context.Context, req []byte) ([]byte, error) {
				handled.Add(1)
				return req, nil
			})
			listen(t, n, mux, "server")
			c := dial(t, n, "client", "server")
			var ok, lost int64
			for range calls {
				_, err := c.Call(t.Context(), "echo", []byte("x"))
				switch {
				case err == nil:
					ok++
				case errors.Is(err, transport.ErrUnreachable):
					lost++
				default:
					t.Fatalf("Call: %v", err)
				}
			}
			wantOK := (1 - tc.dropRequest) * (1 - tc.dropReply)
			if got := float64(ok) / calls; got < wantOK-0.05 || got > wantOK+0.05 {
				t.Errorf("success rate %.3f, want %.3f ± 0.05 (seed %d)", got, wantOK, seed)
			}
			wantHandled := (1 - tc.dropRequest) * calls
			if got := float64(handled.Load()); got < wantHandled-0.05*calls || got > wantHandled+0.05*calls {
				t.Errorf("handler ran %v times, want about %v (dropped requests must not run it)", got, wantHandled)
			}
			if got := n.Sent("client"); got != calls {
				t.Errorf("Sent(client) = %d, want %d", got, calls)
			}
			if got := n.Delivered("server"); got != handled.Load() {
				t.Errorf("Delivered(server) = %d, want the %d requests handled", got, handled.Load())
			}
			if got := n.Sent("server"); got != handled.Load() {
				t.Errorf("Sent(server) = %d, want one reply per handled request, %d", got, handled.Load())
			}
			if got := n.Delivered("client"); got != ok {
				t.Errorf("Delivered(client) = %d, want the %d replies received", got, ok)
			}
		})
	}
}

// TestSameSeedSameDecisions checks that sequential traffic on two networks
// with one seed meets the same fate.
func TestSameSeedSameDecisions(t *testing.T) {
	const seed = 7
	t.Logf("seed %d", seed)
	outcomes := func() []bool {
		n := newNet(t, mem.Options{Seed: seed})
		n.SetDefaultReliability(0.5, 0.5)
		listen(t, n, echoMux(), "server")
		c := dial(t, n, "client", "server")
		var out []bool
		for range 100 {
			_, err := c.Call(t.Context(), "echo", nil)
			out = append(out, err == nil)
		}
		return out
	}
	a, b := outcomes(), outcomes()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("call %d: outcome %v then %v with the same seed", i, a[i], b[i])
		}
	}
}

func TestPerNodeReliability(t *testing.T) {
	n := newNet(t, mem.Options{})
	listen(t, n, echoMux(), "a", "b", "flaky")
	n.SetReliability("flaky", 1, 0)
	mustReach(t, n, "a", "b")
	mustNotReach(t, n, "a", "flaky") // the worse of the two ends applies
	mustNotReach(t, n, "flaky", "b")
	n.SetDefaultReliability(0, 1)
	mustNotReach(t, n, "a", "b")
	n.SetReliability("a", 0, 0) // a's own setting overrides the default...
	n.SetReliability("b", 0, 0)
	mustReach(t, n, "a", "b")
	n.ClearFaults("b") // ...and b falls back to it
	mustNotReach(t, n, "a", "b")
}

func TestInvalidSettingsPanic(t *testing.T) {
	n := newNet(t, mem.Options{})
	for name, f := range map[string]func(){
		"probability > 1":   func() { n.SetDefaultReliability(1.5, 0) },
		"negative":          func() { n.SetReliability("a", 0, -0.1) },
		"min > max":         func() { n.SetDelay("a", 2, 1) },
		"negative delay":    func() { n.SetDefaultDelay(-1, 1) },
		"node in 2 groups":  func() { n.Partition([]string{"a"}, []string{"a", "b"}) },
		"negative max size": func() { mem.NewNetwork(mem.Options{MaxMessageSize: -1}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

func TestDroppedStreamMessageBreaksStream(t *testing.T) {
	n := newNet(t, mem.Options{})
	listen(t, n, echoMux(), "server")
	c := dial(t, n, "client", "server")

	n.SetReliability("client", 1, 0)
	if _, err := c.NewStream(t.Context(), "echo"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("NewStream with opens dropped: %v, want ErrUnreachable", err)
	}

	n.SetReliability("client", 0, 0)
	s, err := c.NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteMsg([]byte("1")); err != nil {
		t.Fatal(err)
	}
	if msg, err := s.ReadMsg(); err != nil || string(msg) != "1" {
		t.Fatalf("ReadMsg = %q, %v", msg, err)
	}
	n.SetReliability("client", 0, 1) // the server's echo is now lost...
	if err := s.WriteMsg([]byte("2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) { // ...which breaks the stream
		t.Fatalf("ReadMsg after a lost message: %v, want ErrUnreachable", err)
	}
	if err := s.WriteMsg([]byte("3")); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("WriteMsg on a broken stream: %v, want ErrUnreachable", err)
	}
}

func TestPartition(t *testing.T) {
	n := newNet(t, mem.Options{})
	mux := echoMux()
	blk := newBlocker(mux)
	listen(t, n, mux, "a", "b", "c", "d")

	// Traffic in progress across the coming cut.
	inFlight := goCall(t, dial(t, n, "a", "c"), "block")
	receive(t, blk.started, "handler on c")
	across, err := dial(t, n, "a", "c").NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	within, err := dial(t, n, "a", "b").NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}

	n.Partition([]string{"a", "b"}, []string{"c"})
	if err := receive(t, inFlight, "in-flight call"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("in-flight call across the cut: %v, want ErrUnreachable", err)
	}
	if err := receive(t, blk.ended, "handler"); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler of a call cut off: %v, want its context cancelled", err)
	}
	if _, err := across.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("stream across the cut: %v, want ErrUnreachable", err)
	}
	if err := within.WriteMsg([]byte("still")); err != nil {
		t.Fatalf("stream within a side: %v", err)
	}
	if msg, err := within.ReadMsg(); err != nil || string(msg) != "still" {
		t.Fatalf("stream within a side: %q, %v", msg, err)
	}
	mustReach(t, n, "a", "b")
	mustReach(t, n, "b", "a")
	mustNotReach(t, n, "a", "c")
	mustNotReach(t, n, "c", "b")
	mustNotReach(t, n, "d", "a")        // named in no group: isolated
	mustNotReach(t, n, "newcomer", "a") // so is a node first seen later
	mustReach(t, n, "d", "d")           // but a node reaches itself
	mustReach(t, n, "c", "c")

	n.Heal()
	mustReach(t, n, "a", "c")
	mustReach(t, n, "d", "b")
	if _, err := across.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("stream broken by the partition after Heal: %v, want it still broken", err)
	}
}

func TestDeafen(t *testing.T) {
	n := newNet(t, mem.Options{})
	var handledOnB atomic.Int64
	muxB := echoMux()
	muxB.Handle("count", func(context.Context, []byte) ([]byte, error) {
		handledOnB.Add(1)
		return nil, nil
	})
	blk := newBlocker(muxB)
	listen(t, n, echoMux(), "a")
	listen(t, n, muxB, "b")

	inFlight := goCall(t, dial(t, n, "a", "b"), "block")
	receive(t, blk.started, "handler on b")
	toB, err := dial(t, n, "a", "b").NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	fromB, err := dial(t, n, "b", "a").NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}

	n.Deafen("b", true)
	if _, err := dial(t, n, "a", "b").Call(t.Context(), "count", nil); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call to a deaf node: %v, want ErrUnreachable", err)
	}
	if handledOnB.Load() != 0 {
		t.Fatal("a deaf node's handler ran")
	}
	if _, err := dial(t, n, "a", "b").NewStream(t.Context(), "echo"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("stream open to a deaf node: %v, want ErrUnreachable", err)
	}
	if _, err := toB.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("stream served by a deaf node: %v, want ErrUnreachable", err)
	}
	mustReach(t, n, "b", "a") // its requests go out and the replies come back
	if err := fromB.WriteMsg([]byte("out")); err != nil {
		t.Fatalf("stream opened by a deaf node: %v", err)
	}
	if msg, err := fromB.ReadMsg(); err != nil || string(msg) != "out" {
		t.Fatalf("stream opened by a deaf node: %q, %v", msg, err)
	}
	close(blk.release) // the request reached b before it went deaf: its reply goes out
	if err := receive(t, inFlight, "in-flight call"); err != nil {
		t.Fatalf("call delivered before Deafen: %v", err)
	}

	n.Deafen("b", false)
	mustReach(t, n, "a", "b")
}

func TestKillRestart(t *testing.T) {
	n := newNet(t, mem.Options{})
	muxB := echoMux()
	blk := newBlocker(muxB)
	listen(t, n, echoMux(), "a")
	listen(t, n, muxB, "b")
	oldFromB := dial(t, n, "b", "a")
	mustReach(t, n, "b", "a")

	toB := dial(t, n, "a", "b")
	inFlight := goCall(t, toB, "block")
	receive(t, blk.started, "handler on b")
	byB := goCall(t, dial(t, n, "b", "b"), "block") // a call b makes, to itself
	receive(t, blk.started, "second handler on b")
	stream, err := dial(t, n, "a", "b").NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	n.ResetCounters()

	n.Kill("b")
	if err := receive(t, inFlight, "call to b"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("in-flight call to a killed node: %v, want ErrUnreachable", err)
	}
	if err := receive(t, byB, "call by b"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("in-flight call by a killed node: %v, want ErrUnreachable", err)
	}
	for range 2 {
		if err := receive(t, blk.ended, "handlers on b"); !errors.Is(err, context.Canceled) {
			t.Fatalf("handler on a killed node: %v, want its context cancelled", err)
		}
	}
	if _, err := stream.ReadMsg(); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("stream to a killed node: %v, want ErrUnreachable", err)
	}
	if got := n.Sent("b"); got != 0 {
		t.Fatalf("Sent(b) = %d after its handlers' replies were discarded, want 0", got)
	}
	mustNotReach(t, n, "a", "b")
	if _, err := oldFromB.Call(t.Context(), "echo", nil); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call on a killed node's Conn: %v, want ErrUnreachable", err)
	}
	if _, err := n.Listen("b", muxB); err == nil {
		t.Fatal("Listen on a killed node succeeded; it must be Restarted")
	}
	if _, err := n.Restart("a", echoMux()); err == nil {
		t.Fatal("Restart of a live node succeeded")
	}

	newMux := transport.NewMux()
	newMux.Handle("v2", func(context.Context, []byte) ([]byte, error) { return []byte("v2"), nil })
	if _, err := n.Restart("b", newMux); err != nil {
		t.Fatal(err)
	}
	if got, err := toB.Call(t.Context(), "v2", nil); err != nil || string(got) != "v2" {
		t.Fatalf("call after restart on a Conn dialed before: %q, %v", got, err)
	}
	if _, err := toB.Call(t.Context(), "echo", nil); !errors.Is(err, transport.ErrUnknownRoute) {
		t.Fatalf("route of the old process after restart: %v, want ErrUnknownRoute", err)
	}
	if _, err := oldFromB.Call(t.Context(), "echo", nil); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("Conn of b's previous incarnation: %v, want ErrUnreachable", err)
	}
	mustReach(t, n, "b", "a") // a new Dial belongs to the new incarnation
}

func TestKillClientOnlyNode(t *testing.T) {
	n := newNet(t, mem.Options{})
	listen(t, n, echoMux(), "server")
	n.Kill("client")
	mustNotReach(t, n, "client", "server")
	if l, err := n.Restart("client", nil); err != nil || l != nil {
		t.Fatalf("Restart(client, nil) = %v, %v; want nil, nil", l, err)
	}
	mustReach(t, n, "client", "server")
	mustNotReach(t, n, "server", "client") // it listens on nothing
}

func TestListenerClose(t *testing.T) {
	n := newNet(t, mem.Options{})
	mux := echoMux()
	blk := newBlocker(mux)
	l, err := n.Listen("b", mux)
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr() != "b" {
		t.Fatalf("Addr = %q", l.Addr())
	}
	if _, err := n.Listen("b", mux); err == nil {
		t.Fatal("second Listen on one address succeeded")
	}
	inFlight := goCall(t, dial(t, n, "a", "b"), "block")
	receive(t, blk.started, "handler")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, n, "a", "b")
	close(blk.release)
	if err := receive(t, inFlight, "in-flight call"); err != nil {
		t.Fatalf("call in progress when the listener closed: %v, want its reply", err)
	}
	listen(t, n, echoMux(), "b")
	mustReach(t, n, "a", "b")
	l.Close() // a stale Listener does not take the new one down
	mustReach(t, n, "a", "b")
}

func TestUnknownAddress(t *testing.T) {
	n := newNet(t, mem.Options{})
	mustNotReach(t, n, "a", "nowhere")
	if got := n.Sent("a"); got != 1 {
		t.Fatalf("Sent(a) = %d, want the undeliverable request counted", got)
	}
	if got := n.Delivered("nowhere"); got != 0 {
		t.Fatalf("Delivered(nowhere) = %d", got)
	}
}

func TestNetworkClose(t *testing.T) {
	n := newNet(t, mem.Options{})
	mux := echoMux()
	blk := newBlocker(mux)
	listen(t, n, mux, "b")
	c := dial(t, n, "a", "b")
	inFlight := goCall(t, c, "block")
	receive(t, blk.started, "handler")
	s, err := c.NewStream(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if err := receive(t, inFlight, "in-flight call"); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("call in progress at Close: %v, want ErrClosed", err)
	}
	if err := receive(t, blk.ended, "handler"); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler at Close: %v, want its context cancelled", err)
	}
	if _, err := s.ReadMsg(); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("stream at Close: %v, want ErrClosed", err)
	}
	if _, err := c.Call(t.Context(), "echo", nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
	if _, err := n.Listen("c", mux); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Listen after Close: %v, want ErrClosed", err)
	}
	if _, err := n.Dialer("a").Dial(t.Context(), "b"); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Dial after Close: %v, want ErrClosed", err)
	}
}

// TestHandlersRunWithoutLock checks that a handler may use the network: call
// other nodes and change faults.
func TestHandlersRunWithoutLock(t *testing.T) {
	n := newNet(t, mem.Options{})
	listen(t, n, echoMux(), "c")
	mux := transport.NewMux()
	mux.Handle("relay", func(ctx context.Context, req []byte) ([]byte, error) {
		n.SetDefaultDelay(0, 0)
		c, err := n.Dialer("b").Dial(ctx, "c")
		if err != nil {
			return nil, err
		}
		return c.Call(ctx, "echo", req)
	})
	listen(t, n, mux, "b")
	got, err := dial(t, n, "a", "b").Call(t.Context(), "relay", []byte("hop"))
	if err != nil || string(got) != "hop" {
		t.Fatalf("relayed call = %q, %v", got, err)
	}
}

func TestReplyNotAliased(t *testing.T) {
	n := newNet(t, mem.Options{})
	shared := []byte("server state")
	mux := transport.NewMux()
	mux.Handle("get", func(context.Context, []byte) ([]byte, error) { return shared, nil })
	listen(t, n, mux, "b")
	got, err := dial(t, n, "a", "b").Call(t.Context(), "get", nil)
	if err != nil {
		t.Fatal(err)
	}
	copy(got, "XXXXXX")
	if string(shared) != "server state" {
		t.Fatalf("caller's change to its reply reached the server: %q", shared)
	}
}

func TestStreamEndsAfterHandlerReturns(t *testing.T) {
	n := newNet(t, mem.Options{})
	mux := transport.NewMux()
	mux.HandleStream("one", func(s transport.Stream) error {
		s.WriteMsg([]byte("only"))
		return errors.New("handler error stays on the server")
	})
	listen(t, n, mux, "b")
	s, err := dial(t, n, "a", "b").NewStream(t.Context(), "one")
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := s.ReadMsg(); err != nil || string(msg) != "only" {
		t.Fatalf("ReadMsg = %q, %v", msg, err)
	}
	if _, err := s.ReadMsg(); err != io.EOF {
		t.Fatalf("ReadMsg after the handler returned: %v, want io.EOF", err)
	}
	if err := s.WriteMsg(nil); err != io.EOF {
		t.Fatalf("WriteMsg after the handler returned: %v, want io.EOF", err)
	}
}
