package transporttest

import (
	"context"
	"testing"
	"time"

	"github.com/synod-go/synod/transport"
)

// Harness connects the suite to one transport. The suite asks the factory
// given to Run for a fresh Harness in every test, so nodes of one test never
// see those of another; the Harness releases what it started with
// t.Cleanup. Methods are called from the test's goroutine and report their
// own failures with t.Fatal.
type Harness interface {
	// Listen starts a new node serving mux at a fresh address and returns
	// the address, which the Dialers of this Harness can dial.
	Listen(mux *transport.Mux) (addr string)

	// Dialer returns a Dialer for a new client node.
	Dialer() transport.Dialer

	// Stop stops the node at addr abruptly, as if its process died: it no
	// longer accepts calls, and connections to it break. Calls in progress
	// to it must then fail promptly with transport.ErrUnreachable.
	Stop(addr string)

	// Start brings the stopped node at addr back, serving mux at the same
	// address. Conns dialed before Stop must work again, possibly after the
	// transport reconnects (the suite retries for a few seconds).
	Start(addr string, mux *transport.Mux)

	// MaxMessageSize returns the largest request, reply or stream message,
	// in bytes, that the transport carries; one byte more must fail with
	// transport.ErrTooLarge. 0 means no limit: the suite then sends 1 MiB
	// messages and skips the over-limit checks.
	MaxMessageSize() int
}

// timeout bounds every wait of the suite. A transport that passes never comes
// close to it.
const timeout = 5 * time.Second

// Run runs the conformance suite, one subtest per behaviour, each with a
// fresh Harness from newHarness.
func Run(t *testing.T, newHarness func(t testing.TB) Harness) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Harness)
	}{
		{"UnaryRoundTrip", testUnaryRoundTrip},
		{"UnaryNoAliasing", testUnaryNoAliasing},
		{"UnknownRoute", testUnknownRoute},
		{"RemoteError", testRemoteError},
		{"ConcurrentCallers", testConcurrentCallers},
		{"CancelReachesHandler", testCancelReachesHandler},
		{"DeadlineReachesHandler", testDeadlineReachesHandler},
		{"StreamEchoOrdered", testStreamEchoOrdered},
		{"StreamServerCloses", testStreamServerCloses},
		{"StreamClientCloses", testStreamClientCloses},
		{"StreamOpenerContextEnds", testStreamOpenerContextEnds},
		{"LargeMessages", testLargeMessages},
		{"PeerDeath", testPeerDeath},
		{"PeerDeathBreaksStream", testPeerDeathBreaksStream},
		{"ConnClose", testConnClose},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newHarness(t)) })
	}
}

// dial dials addr with a new client node of h.
func dial(t testing.TB, h Harness, addr string) transport.Conn {
	t.Helper()
	c, err := h.Dialer().Dial(t.Context(), addr)
	if err != nil {
		t.Fatalf("Dial(%q): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo is a UnaryHandler that replies with its request.
func echo(_ context.Context, req []byte) ([]byte, error) { return req, nil }

// echoMux serves echo on route "echo".
func echoMux() *transport.Mux {
	m := transport.NewMux()
	m.Handle("echo", echo)
	return m
}

// receive returns the next value on ch, failing the test after timeout.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// eventually calls f until it returns nil or timeout passes, and returns its
// last error. It polls every 10ms: it waits for a condition with a deadline,
// as a reconnecting transport needs, rather than sleeping for a guess.
func eventually(f func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}

// callCtx returns a context for one call that fails the test's wait instead
// of hanging it.
func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}
