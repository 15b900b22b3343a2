package paxos

import "sort"

// span is the half-open slot range [from, to).
type span struct{ from, to Slot }

// spanSet is a set of slots kept as sorted, disjoint, non-adjacent spans
// (adjacent ones are merged). It suits sets that grow in long runs: the
// acceptor's holes (slots it knows chosen but never accepted) and the
// observer's references into the accepted log.
type spanSet struct {
	s []span
}

// add inserts [from, to).
func (ss *spanSet) add(from, to Slot) {
	if from >= to {
		return
	}
	n := len(ss.s)
	if n == 0 || ss.s[n-1].to < from {
		ss.s = append(ss.s, span{from, to}) // the common case: past the end
		return
	}
	if last := &ss.s[n-1]; last.from <= from {
		last.to = max(last.to, to) // extends (or lies within) the last span
		return
	}
	// General case: merge with every span that overlaps or touches.
	i := sort.Search(n, func(i int) bool { return ss.s[i].to >= from })
	j := i
	for j < n && ss.s[j].from <= to {
		from = min(from, ss.s[j].from)
		to = max(to, ss.s[j].to)
		j++
	}
	ss.s = append(ss.s[:i], append([]span{{from, to}}, ss.s[j:]...)...)
}

// find returns the span holding slot, if any.
func (ss *spanSet) find(slot Slot) (span, bool) {
	i := sort.Search(len(ss.s), func(i int) bool { return ss.s[i].to > slot })
	if i < len(ss.s) && ss.s[i].from <= slot {
		return ss.s[i], true
	}
	return span{}, false
}

// contains reports whether slot is in the set.
func (ss *spanSet) contains(slot Slot) bool {
	_, ok := ss.find(slot)
	return ok
}

// trimBelow removes every slot below min.
func (ss *spanSet) trimBelow(min Slot) {
	i := sort.Search(len(ss.s), func(i int) bool { return ss.s[i].to > min })
	ss.s = ss.s[:copy(ss.s, ss.s[i:])]
	if len(ss.s) > 0 && ss.s[0].from < min {
		ss.s[0].from = min
	}
}

// within returns copies of the spans, clipped to [from, to), that overlap
// it.
func (ss *spanSet) within(from, to Slot) []span {
	var out []span
	i := sort.Search(len(ss.s), func(i int) bool { return ss.s[i].to > from })
	for ; i < len(ss.s) && ss.s[i].from < to; i++ {
		if c := (span{max(from, ss.s[i].from), min(to, ss.s[i].to)}); c.from < c.to {
			out = append(out, c)
		}
	}
	return out
}
