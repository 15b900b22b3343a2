package kvstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/paxos/paxostest"
	"github.com/synod-go/synod/transport"
)

// faultDialer wraps a Dialer; fault decides, before each call on RouteOp,
// whether the request is lost before the server sees it (dropRequest) or
// its reply after the server ran it (dropReply).
type faultDialer struct {
	d     transport.Dialer
	fault func(addr string, req []byte) (dropRequest, dropReply bool)
}

func (f faultDialer) Dial(ctx context.Context, addr string) (transport.Conn, error) {
	c, err := f.d.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return faultConn{Conn: c, addr: addr, fault: f.fault}, nil
}

type faultConn struct {
	transport.Conn
	addr  string
	fault func(addr string, req []byte) (bool, bool)
}

func (c faultConn) Call(ctx context.Context, route string, req []byte) ([]byte, error) {
	if route != kvstore.RouteOp {
		return c.Conn.Call(ctx, route, req)
	}
	dropReq, dropRep := c.fault(c.addr, req)
	if dropReq {
		return nil, fmt.Errorf("test: request to %s dropped: %w", c.addr, transport.ErrUnreachable)
	}
	rep, err := c.Conn.Call(ctx, route, req)
	if err == nil && dropRep {
		return nil, fmt.Errorf("test: reply from %s dropped: %w", c.addr, transport.ErrUnreachable)
	}
	return rep, err
}

// clientWith returns a recording client whose Config is adjusted by
// configure, bound to the given servers.
func (h *harness) clientWith(name string, configure func(*kvstore.ClientConfig), servers ...int) *client {
	h.t.Helper()
	cfg := kvstore.ClientConfig{Dialer: h.c.Dialer(name), Logger: testLogger(name)}
	for _, i := range servers {
		cfg.Servers = append(cfg.Servers, paxostest.Addr(i))
	}
	configure(&cfg)
	kv, err := kvstore.NewClient(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { kv.Close() })
	h.mu.Lock()
	id := h.nclients
	h.nclients++
	h.mu.Unlock()
	return &client{h: h, kv: kv, id: id, name: name}
}

// opKind returns the kind byte of an encoded request (see op.go).
func opKind(req []byte) byte {
	if len(req) < 2 {
		return 0
	}
	return req[1]
}

const kindAppend = 4 // opAppend on the wire

// requestID returns the client id and seq of an encoded request.
func requestID(req []byte) ([2]uint64, bool) {
	if len(req) < 2 {
		return [2]uint64{}, false
	}
	client, n := binary.Uvarint(req[2:])
	if n <= 0 {
		return [2]uint64{}, false
	}
	seq, m := binary.Uvarint(req[2+n:])
	return [2]uint64{client, seq}, m > 0
}

// A write whose reply is lost is retried on another server and executed
// once.
func TestExactlyOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 3, seed: 9})
	ctx := testCtx(t, time.Minute)
	var mu sync.Mutex
	dropped := 0
	seen := make(map[[2]uint64]bool)
	ck := h.clientWith("client-0", func(cfg *kvstore.ClientConfig) {
		cfg.Dialer = faultDialer{d: cfg.Dialer, fault: func(addr string, req []byte) (bool, bool) {
			mu.Lock()
			defer mu.Unlock()
			// Every Append's first reply is lost: the server applied it,
			// the client does not know and asks the other server.
			id, ok := requestID(req)
			if opKind(req) != kindAppend || !ok || seen[id] {
				return false, false
			}
			seen[id] = true
			dropped++
			return false, true
		}}
	}, 0, 1)
	want := ""
	for i := range 10 {
		v := fmt.Sprintf("<%d>", i)
		ck.mustAppend(ctx, "k", v)
		want += v
		ck.mustGet(ctx, "k", want)
	}
	if dropped < 10 {
		t.Fatalf("only %d replies were dropped", dropped)
	}
	// Every server applied each append once.
	for i := range 3 {
		h.client(fmt.Sprintf("check-%d", i), i).mustGet(ctx, "k", want)
	}
	h.check()
}

// Sessions of idle clients expire by log time: the servers' clocks (fake
// here) stamp the ops, and a session idle for SessionTTL of log time is
// dropped at the same slot everywhere. A client whose session expired
// opens a new one by itself when no earlier attempt of its write can have
// been applied, and reports ErrSessionExpired when one may have.
func TestSessionExpiry(t *testing.T) {
	const ttl = time.Hour
	clock := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	h := newHarness(t, harnessOptions{n: 3, seed: 10, configure: func(i int, cfg *kvstore.Config) {
		cfg.Clock = clock
		cfg.SessionTTL = ttl
	}})
	ctx := testCtx(t, time.Minute)
	sessions := func(want int) {
		t.Helper()
		h.c.WaitFor(fmt.Sprintf("%d sessions on every server", want), 10*time.Second, func() bool {
			for i := range 3 {
				if h.server(i).Stats().Sessions != want {
					return false
				}
			}
			return true
		})
	}

	idle := h.client("idle")
	idle.mustPut(ctx, "a", "1")
	var dropNext sync.Mutex
	drop := false
	unsure := h.clientWith("unsure", func(cfg *kvstore.ClientConfig) {
		cfg.Dialer = faultDialer{d: cfg.Dialer, fault: func(addr string, req []byte) (bool, bool) {
			dropNext.Lock()
			defer dropNext.Unlock()
			d := drop && opKind(req) == kindAppend
			drop = false
			return d, false
		}}
	}, 0, 1, 2)
	unsure.mustPut(ctx, "u", "1")
	sessions(2)

	// Within the TTL nothing expires.
	clock.Advance(ttl / 2)
	other := h.client("other")
	other.mustPut(ctx, "b", "1")
	sessions(3)

	// Past the TTL of log time, the first op stamped later expires the
	// idle sessions (the other client's is fresh).
	clock.Advance(ttl/2 + time.Minute)
	other.mustPut(ctx, "b", "2")
	sessions(1)
	for i := range 3 {
		if lt := h.server(i).Stats().LogTime; !lt.Equal(clock.Now()) {
			t.Errorf("server %d: log time %v, want %v", i, lt, clock.Now())
		}
	}

	// The idle client's next write finds its session gone; nothing of it
	// can have been applied, so the client opens a new session and
	// retries on its own.
	idle.mustAppend(ctx, "a", "2")
	idle.mustGet(ctx, "a", "12")
	sessions(2)

	// The unsure client's write is lost on its first attempt (outcome
	// unknown to the client), then meets the expired session: it may not
	// retry blindly, and says so.
	clock.Advance(ttl + time.Minute)
	dropNext.Lock()
	drop = true
	dropNext.Unlock()
	err := unsure.Append(ctx, "u", "2")
	if !errors.Is(err, kvstore.ErrSessionExpired) {
		t.Fatalf("Append after expiry with an unknown first attempt = %v, want ErrSessionExpired", err)
	}
	// The client has a new session; its next writes work.
	unsure.mustAppend(ctx, "u", "3")
	unsure.mustGet(ctx, "u", "13")
	h.check()
}
