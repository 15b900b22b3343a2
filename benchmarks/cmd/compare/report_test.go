package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fake is a result of ops commands in one second, all taking lat.
func fake(system, store string, clients, round, ops int, lat time.Duration) result {
	lats := make([]time.Duration, ops)
	for i := range lats {
		lats[i] = lat
	}
	return result{system: system, store: store, clients: clients, round: round, ops: ops, window: time.Second, latencies: lats}
}

// TestRatiosPerRound: each round compares Synod with the best peer of the
// same round, and the verdict is on the median of the rounds' ratios, so
// one round on a busy machine decides nothing.
func TestRatiosPerRound(t *testing.T) {
	o := &options{stores: []string{storeMemory}, clients: []int{1}, rounds: 3}
	results := []result{
		// Round 1: the machine is slow for everyone.
		fake("synod", storeMemory, 1, 1, 1000, 200*time.Microsecond),
		fake("etcd", storeMemory, 1, 1, 400, 300*time.Microsecond),
		fake("hashicorp", storeMemory, 1, 1, 300, 250*time.Microsecond),
		// Round 2: Synod's row alone hit a busy moment.
		fake("synod", storeMemory, 1, 2, 900, 400*time.Microsecond),
		fake("etcd", storeMemory, 1, 2, 1000, 100*time.Microsecond),
		fake("hashicorp", storeMemory, 1, 2, 800, 150*time.Microsecond),
		// Round 3: fast for everyone.
		fake("synod", storeMemory, 1, 3, 3000, 50*time.Microsecond),
		fake("etcd", storeMemory, 1, 3, 1200, 60*time.Microsecond),
		fake("hashicorp", storeMemory, 1, 3, 1000, 40*time.Microsecond),
	}
	var buf bytes.Buffer
	printRatios(&buf, results, o)
	out := buf.String()
	// ops: 2.5, 0.9, 2.5 → median 2.5, met; p99: 0.8, 4.0, 1.25 → median 1.25, missed.
	for _, want := range []string{
		"2.50× (vs etcd; rounds 2.50, 0.90, 2.50)",
		"met",
		"1.25× (vs hashicorp/etcd; rounds 0.80, 4.00, 1.25)",
		"MISSED",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ratios lack %q:\n%s", want, out)
		}
	}

	var table bytes.Buffer
	printTable(&table, results)
	if !strings.Contains(table.String(), "round") {
		t.Errorf("a table of several rounds has no round column:\n%s", table.String())
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
