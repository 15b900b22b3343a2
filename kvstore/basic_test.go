package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/synod-go/synod/kvstore"
)

// testCtx returns a context that ends after d or with the test.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestBasic(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 3, seed: 1})
	ctx := testCtx(t, time.Minute)
	ck := h.client("client-0")

	// Append concatenates; Append on a missing key acts as Put.
	ck.mustAppend(ctx, "k", "x")
	ck.mustAppend(ctx, "k", "y")
	ck.mustGet(ctx, "k", "xy")

	// A missing key is told apart from an empty value.
	if _, err := ck.kv.Get(ctx, "missing"); !errors.Is(err, kvstore.ErrNoKey) {
		t.Fatalf("Get(missing) = %v, want ErrNoKey", err)
	}
	ck.mustPut(ctx, "empty", "")
	if v, found, err := ck.Get(ctx, "empty"); err != nil || !found || v != "" {
		t.Fatalf("Get(empty) = %q, %v, %v; want an empty value", v, found, err)
	}

	// Put and Get through different servers.
	single := make([]*client, 3)
	for i := range single {
		single[i] = h.client(fmt.Sprintf("single-%d", i), i)
	}
	for i := range single {
		v := fmt.Sprintf("v%d", i)
		single[i].mustPut(ctx, "a", v)
		single[(i+1)%3].mustGet(ctx, "a", v)
	}

	// Concurrent clients on one key; then every server answers the same.
	const nclients, rounds = 15, 20
	var wg sync.WaitGroup
	for c := range nclients {
		ck := h.client(fmt.Sprintf("conc-%d", c), c%3)
		rng := rand.New(rand.NewSource(h.opts.seed*100 + int64(c)))
		wg.Go(func() {
			for r := range rounds {
				if rng.Intn(2) == 0 {
					if err := ck.Put(ctx, "b", fmt.Sprintf("%d-%d", c, r)); err != nil {
						t.Errorf("Put: %v", err)
						return
					}
				} else if _, _, err := ck.Get(ctx, "b"); err != nil {
					t.Errorf("Get: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	var first string
	for i, ck := range single {
		v, _, err := ck.Get(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && v != first {
			t.Fatalf("server %d has %q, server 0 has %q", i, v, first)
		}
		first = v
	}
	h.check()
	h.c.CheckAgreement()
}

// Requests a server would refuse are refused before anything is proposed,
// by the client and by the server alike.
func TestBadInput(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 3, seed: 2, configure: func(i int, cfg *kvstore.Config) {
		cfg.MaxKeySize, cfg.MaxValueSize = 8, 16
	}})
	ctx := testCtx(t, time.Minute)
	ck := h.client("client-0")
	small, err := kvstore.NewClient(kvstore.ClientConfig{
		Dialer: h.c.Dialer("client-1"), Servers: []string{"node-0"}, MaxKeySize: 8, MaxValueSize: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	before := h.maxApplied(0, 1, 2)
	for _, tc := range []struct {
		name       string
		key, value string
		want       error
	}{
		{"empty key", "", "v", kvstore.ErrEmptyKey},
		{"key over the server's limit", "123456789", "v", kvstore.ErrKeyTooLarge},
		{"value over the server's limit", "k", "12345678901234567", kvstore.ErrValueTooLarge},
	} {
		// Refused by the server (the default client limits are larger).
		if err := ck.kv.Put(ctx, tc.key, []byte(tc.value)); !errors.Is(err, tc.want) {
			t.Errorf("%s: server: Put = %v, want %v", tc.name, err, tc.want)
		}
		if err := ck.kv.Append(ctx, tc.key, []byte(tc.value)); !errors.Is(err, tc.want) {
			t.Errorf("%s: server: Append = %v, want %v", tc.name, err, tc.want)
		}
		// Refused by the client itself.
		if err := small.Put(ctx, tc.key, []byte(tc.value)); !errors.Is(err, tc.want) {
			t.Errorf("%s: client: Put = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := ck.kv.Get(ctx, ""); !errors.Is(err, kvstore.ErrEmptyKey) {
		t.Errorf("Get(\"\") = %v, want ErrEmptyKey", err)
	}
	// The client opened a session, and nothing else reached the log.
	if after := h.maxApplied(0, 1, 2); after > before+1 {
		t.Errorf("refused requests reached the log: applied %d -> %d", before, after)
	}
	// Raw requests: an unknown op and garbage.
	conn, err := h.c.Dialer("raw").Dial(ctx, "node-0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		req  []byte
		want error
	}{
		{[]byte{1, 9, 1, 1, 0, 0}, kvstore.ErrUnknownOp},
		{[]byte{1, 3, 1, 0, 0, 0, 1, 'k', 0}, kvstore.ErrMalformed}, // a Put numbered 0
		{[]byte{1, 3, 1}, kvstore.ErrMalformed},
		{[]byte{7}, kvstore.ErrMalformed},
		{nil, kvstore.ErrMalformed},
	} {
		rep, err := conn.Call(ctx, kvstore.RouteOp, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if got := kvstore.ReplyError(rep); !errors.Is(got, tc.want) {
			t.Errorf("request %x: %v, want %v", tc.req, got, tc.want)
		}
	}
	if after := h.maxApplied(0, 1, 2); after > before+1 {
		t.Errorf("refused requests reached the log: applied %d -> %d", before, after)
	}
	ck.mustPut(ctx, "k", "fine")
	ck.mustGet(ctx, "k", "fine")
	h.check()
}
