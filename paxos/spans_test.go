package paxos

import "testing"

// TestSpanSetMatchesMap drives a spanSet and a map with the same random
// adds (runs past the end, inside, overlapping, far off) and trims, and
// checks membership, within and the set's own invariants after each.
func TestSpanSetMatchesMap(t *testing.T) {
	rng, seed := seededRand(t)
	const universe = 400
	var ss spanSet
	ref := make(map[Slot]bool)
	low := Slot(0)
	for step := range 4000 {
		if rng.Intn(20) == 0 {
			m := low + Slot(rng.Intn(10))
			ss.trimBelow(m)
			for s := range ref {
				if s < m {
					delete(ref, s)
				}
			}
			low = max(low, m)
		} else {
			from := Slot(rng.Intn(universe))
			to := from + Slot(rng.Intn(12))
			ss.add(from, to)
			for s := max(from, low); s < to; s++ {
				ref[s] = true
			}
			if from < low {
				// add does not know about trims: drop below low again.
				ss.trimBelow(low)
			}
		}
		for i, sp := range ss.s {
			if sp.from >= sp.to || (i > 0 && ss.s[i-1].to >= sp.from) {
				t.Fatalf("seed %d step %d: spans not sorted, disjoint and merged: %v", seed, step, ss.s)
			}
		}
		for s := Slot(0); s < universe+12; s++ {
			if ss.contains(s) != ref[s] {
				t.Fatalf("seed %d step %d: contains(%d) = %v, want %v", seed, step, s, ss.contains(s), ref[s])
			}
		}
		a := Slot(rng.Intn(universe))
		b := a + Slot(rng.Intn(50))
		n := Slot(0)
		for _, sp := range ss.within(a, b) {
			if sp.from < a || sp.to > b || sp.from >= sp.to {
				t.Fatalf("seed %d step %d: within(%d, %d) returned %v", seed, step, a, b, sp)
			}
			n += sp.to - sp.from
		}
		m := Slot(0)
		for s := a; s < b; s++ {
			if ref[s] {
				m++
			}
		}
		if n != m {
			t.Fatalf("seed %d step %d: within(%d, %d) covers %d slots, want %d", seed, step, a, b, n, m)
		}
	}
}
