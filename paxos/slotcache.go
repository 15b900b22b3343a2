package paxos

// slotCache maps slots to the observer's cached entries. An observer
// caches runs of consecutive slots and evicts them lowest first, so the
// slots near the low end live in a slice indexed from base (no hashing on
// the hot path); a slot far above it, or below base, goes to a map.
type slotCache struct {
	base Slot
	win  []cacheSlot // win[i] holds slot base+i, if ok
	n    int         // live entries in win
	far  map[Slot]cachedEntry
}

type cacheSlot struct {
	c  cachedEntry
	ok bool
}

// cacheWindow bounds how far above base a slot may sit in the slice.
const cacheWindow = 1 << 16

func (c *slotCache) get(s Slot) (cachedEntry, bool) {
	if s >= c.base && s-c.base < Slot(len(c.win)) {
		if w := c.win[s-c.base]; w.ok {
			return w.c, true
		}
	}
	if len(c.far) > 0 {
		e, ok := c.far[s]
		return e, ok
	}
	return cachedEntry{}, false
}

// put inserts or replaces the entry at s.
func (c *slotCache) put(s Slot, e cachedEntry) {
	if c.n == 0 {
		c.win, c.base = c.win[:0], s
	}
	if s < c.base || s-c.base >= cacheWindow {
		if c.far == nil {
			c.far = make(map[Slot]cachedEntry)
		}
		c.far[s] = e
		return
	}
	i := int(s - c.base)
	for len(c.win) <= i {
		c.win = append(c.win, cacheSlot{})
	}
	if !c.win[i].ok {
		c.n++
	}
	c.win[i] = cacheSlot{c: e, ok: true}
	if len(c.far) > 0 {
		delete(c.far, s)
	}
}

// del removes the entry at s, if any.
func (c *slotCache) del(s Slot) {
	if s >= c.base && s-c.base < Slot(len(c.win)) {
		i := int(s - c.base)
		if c.win[i].ok {
			c.win[i] = cacheSlot{}
			c.n--
		}
		for len(c.win) > 0 && !c.win[0].ok {
			c.win = c.win[1:]
			c.base++
		}
	}
	if len(c.far) > 0 {
		delete(c.far, s)
	}
}
