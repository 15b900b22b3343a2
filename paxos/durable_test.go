package paxos_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// A node restarted from its directory comes back with its promise, its
// accepted and recorded entries, and its done watermark.
func TestRestartRestoresState(t *testing.T) {
	t.Parallel()
	for _, b := range diskBackends {
		t.Run(b.name, func(t *testing.T) { testRestartRestoresState(t, b.new) })
	}
}

func testRestartRestoresState(t *testing.T, newStore func(t testing.TB, n int) *paxostest.DiskStore) {
	c := diskCluster(t, 3, 21, newStore)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var last paxos.Slot
	for k := range 5 {
		s, err := c.P(k%3).Propose(ctx, []byte{byte('a' + k)})
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, s)
	}
	c.WaitDecided(last, 3, wait)
	victim := (c.Leader(wait) + 1) % 3
	c.P(victim).Done(2)
	if err := paxos.Sync(ctx, c.P(victim)); err != nil {
		t.Fatal(err)
	}
	promised := paxos.Promised(c.P(victim))
	c.Crash(victim)
	c.Start(victim)
	p := c.P(victim)
	if got := paxos.Promised(p); got < promised || got == 0 {
		t.Fatalf("promised %v after restart, had %v", got, promised)
	}
	if got := paxos.DoneMark(p); got != 3 {
		t.Fatalf("done watermark %d after restart, want 3", got)
	}
	for s := paxos.Slot(0); s <= last; s++ {
		if f, _ := p.Status(s); f != paxos.Decided {
			t.Fatalf("slot %d is %v right after restart, want Decided from the recorded log", s, f)
		}
	}
	if _, err := p.Propose(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	c.CheckAgreement()
}

// New refuses logs holding bytes it did not write, naming the problem,
// and leaves them as they are.
func TestNewRejectsCorruptRecords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, which string
		garbage     []byte
	}{
		{"promise", "promise", []byte{0xff, 0x00, 0x13}},
		{"accepted", "accepted", []byte{0xff, 0x00, 0x13}},
		{"recorded", "recorded", []byte{0xff, 0x00, 0x13}},
		// References records: an end not above the slot, an end absurdly
		// far, bytes after the end.
		{"recorded-refs-empty", "recorded", []byte{1, 4, 0}},
		{"recorded-refs-huge", "recorded", []byte{1, 4, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"recorded-refs-trailing", "recorded", []byte{1, 4, 5, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := map[string]log.Log{"promise": log.NewMemory(), "accepted": log.NewMemory(), "recorded": log.NewMemory()}
			if err := logs[tc.which].Write(context.Background(), log.Record{Slot: 0, Value: tc.garbage}); err != nil {
				t.Fatal(err)
			}
			cfg := &paxos.Config{ID: 1, PromiseLog: logs["promise"], AcceptedLog: logs["accepted"], RecordedLog: logs["recorded"], Volatile: true}
			cfg.DialTransport(nil)
			_, err := paxos.New(cfg)
			if err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("New = %v, want an error naming a corrupt record", err)
			}
			if v, _ := logs[tc.which].Get(context.Background(), 0); string(v) != string(tc.garbage) {
				t.Fatal("New changed the corrupt record")
			}
		})
	}
}

// Memory logs are refused unless the node is declared volatile.
func TestNewRefusesVolatileLogs(t *testing.T) {
	cfg := &paxos.Config{ID: 1, PromiseLog: log.NewMemory(), AcceptedLog: log.NewMemory(), RecordedLog: log.NewMemory()}
	cfg.DialTransport(nil)
	if _, err := paxos.New(cfg); !errors.Is(err, paxos.ErrNotDurable) {
		t.Fatalf("New with memory logs = %v, want ErrNotDurable", err)
	}
	cfg.Volatile = true
	if _, err := paxos.New(cfg); err != nil {
		t.Fatalf("New with Volatile = %v", err)
	}
}

var _ = paxostest.Addr

// A node stopped cleanly (Stop, not Crash) and started again on its
// database keeps its state and rejoins, on each durable backend.
func TestStopStart(t *testing.T) {
	t.Parallel()
	for _, b := range diskBackends {
		t.Run(b.name, func(t *testing.T) { testStopStart(t, b.new) })
	}
}

func testStopStart(t *testing.T, newStore func(t testing.TB, n int) *paxostest.DiskStore) {
	c := diskCluster(t, 3, 23, newStore)
	defer c.CheckAgreement()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := c.P(0).Propose(ctx, []byte("before"))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitDecided(s, 3, wait)
	c.Stop(1)
	c.Start(1)
	if f, v := c.P(1).Status(s); f != paxos.Decided || string(v) != "before" {
		t.Fatalf("slot %d after Stop and Start: %v %q", s, f, v)
	}
	s2, err := c.P(1).Propose(ctx, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitDecided(s2, 3, wait)
}
