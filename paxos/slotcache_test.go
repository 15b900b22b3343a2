package paxos

import "testing"

// TestSlotCacheMatchesMap drives a slotCache and a map with the same random
// operations (in-order runs, far slots, slots below base, deletes from the
// low end and elsewhere) and checks they always agree.
func TestSlotCacheMatchesMap(t *testing.T) {
	rng, seed := seededRand(t)
	var c slotCache
	ref := make(map[Slot]cachedEntry)
	next, low := Slot(0), Slot(0)
	for step := range 200000 {
		var s Slot
		switch k := rng.Intn(10); {
		case k < 5: // the common case: the next slot in order
			s = next
			next++
		case k < 6: // far ahead
			s = next + Slot(rng.Intn(4*cacheWindow))
		case k < 7: // below the low end
			s = Slot(rng.Intn(int(low) + 1))
		default:
			s = low + Slot(rng.Intn(int(next-low)+1))
		}
		if low < next && rng.Intn(3) == 0 {
			// Evict from the low end, as the observer does.
			c.del(low)
			delete(ref, low)
			low++
			continue
		}
		if rng.Intn(4) == 0 {
			c.del(s)
			delete(ref, s)
		} else {
			e := cachedEntry{e: Entry{Slot: s, Value: []byte{byte(step)}}, written: rng.Intn(2) == 0}
			c.put(s, e)
			ref[s] = e
		}
		probe := []Slot{s, low, next, s + 1, Slot(rng.Intn(int(next) + cacheWindow))}
		for _, p := range probe {
			got, ok := c.get(p)
			want, wok := ref[p]
			if ok != wok || ok && (got.e.Slot != want.e.Slot || got.written != want.written || string(got.e.Value) != string(want.e.Value)) {
				t.Fatalf("seed %d step %d: get(%d) = %v %v, want %v %v", seed, step, p, got, ok, want, wok)
			}
		}
	}
}
