package paxos

// slotCache maps slots to the observer's cached entries. An observer
// caches runs of consecutive slots and evicts them lowest first, so the
// slots from base up live in a ring indexed from base (no hashing, and no
// reallocation as the window slides up); a slot far above it, or below
// base, goes to a map.
type slotCache struct {
	base Slot        // the slot at ring[head]
	ring []cacheSlot // a power of two long (or empty); unused places are zero
	head int
	size int // the window covers slots base to base+size-1
	n    int // live entries in the window
	far  map[Slot]cachedEntry
}

type cacheSlot struct {
	c  cachedEntry
	ok bool
}

// cacheWindow bounds how far above base a slot may sit in the ring.
const cacheWindow = 1 << 16

func (c *slotCache) at(i int) *cacheSlot { return &c.ring[(c.head+i)&(len(c.ring)-1)] }

func (c *slotCache) get(s Slot) (cachedEntry, bool) {
	if s >= c.base && s-c.base < Slot(c.size) {
		if w := c.at(int(s - c.base)); w.ok {
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
		c.base, c.head, c.size = s, 0, 0
		if len(c.ring) > 4096 {
			c.ring = nil // a burst is over: let its ring go
		}
	}
	if s < c.base || s-c.base >= cacheWindow {
		if c.far == nil {
			c.far = make(map[Slot]cachedEntry)
		}
		c.far[s] = e
		return
	}
	i := int(s - c.base)
	if i >= len(c.ring) {
		c.grow(i + 1)
	}
	c.size = max(c.size, i+1)
	w := c.at(i)
	if !w.ok {
		c.n++
	}
	*w = cacheSlot{c: e, ok: true}
	if len(c.far) > 0 {
		delete(c.far, s)
	}
}

// grow makes the ring at least n long, keeping the window's order.
func (c *slotCache) grow(n int) {
	k := max(len(c.ring), 64)
	for k < n {
		k *= 2
	}
	ring := make([]cacheSlot, k)
	for i := range c.size {
		ring[i] = *c.at(i)
	}
	c.ring, c.head = ring, 0
}

// del removes the entry at s, if any.
func (c *slotCache) del(s Slot) {
	if s >= c.base && s-c.base < Slot(c.size) {
		if w := c.at(int(s - c.base)); w.ok {
			*w = cacheSlot{}
			c.n--
		}
		for c.size > 0 && !c.at(0).ok {
			c.head = (c.head + 1) & (len(c.ring) - 1)
			c.base++
			c.size--
		}
	}
	if len(c.far) > 0 {
		delete(c.far, s)
	}
}
