package kvstore

import (
	"slices"

	"github.com/synod-go/synod/paxos"
)

// maxTracked bounds the executed writes a session remembers above its
// acknowledged watermark. A client with more writes outstanding than this
// loses track of the oldest ones (they answer statusStale); the Client
// never has that many in flight. It is a constant, not a setting, because
// every replica must apply the same rule.
const maxTracked = 1024

// session is what the replicas keep of one client: which of its writes
// they executed, so that a retry is not executed twice.
type session struct {
	id uint64
	// lastActive is the log time of the session's last applied op.
	lastActive int64
	// acked: the client needs nothing below it; writes numbered below it
	// are never executed again.
	// Invariant: every seq in executed is >= acked.
	acked uint64
	// executed holds the seqs of executed writes at or above acked,
	// ascending, without duplicates. Invariant: len(executed) <= maxTracked.
	executed []uint64
	// The sessions form a list from the least to the most recently active.
	// Invariant: lastActive is non-decreasing from older to newer.
	older, newer *session
}

func (s *session) ack(a uint64) {
	if a <= s.acked {
		return
	}
	s.acked = a
	i, _ := slices.BinarySearch(s.executed, a)
	s.executed = slices.Delete(s.executed, 0, i)
}

func (s *session) has(seq uint64) bool {
	_, ok := slices.BinarySearch(s.executed, seq)
	return ok
}

func (s *session) add(seq uint64) {
	i, ok := slices.BinarySearch(s.executed, seq)
	if ok {
		return
	}
	s.executed = slices.Insert(s.executed, i, seq)
	if len(s.executed) > maxTracked {
		s.ack(s.executed[0] + 1)
	}
}

// machine is the replicated state: the map, the session table and the log
// time, as of every slot below next. It is deterministic: every replica
// that applies the same ops from the same state reaches the same state. It
// does no I/O and takes no locks; the Server guards it.
type machine struct {
	data     map[string][]byte
	sessions map[uint64]*session
	// oldest and newest end the session list (nil when empty).
	oldest, newest *session
	// logTime is the largest op stamp applied (Unix nanoseconds).
	logTime int64
	// next is the first slot not applied. Invariant: the state reflects
	// exactly the ops chosen at slots below next.
	next paxos.Slot
	// ttl is Config.SessionTTL in nanoseconds; it must be the same on
	// every replica.
	ttl int64
}

func newMachine(ttl int64) *machine {
	return &machine{data: make(map[string][]byte), sessions: make(map[uint64]*session), ttl: ttl}
}

// result is what applying an op answers.
type result struct {
	status replyStatus
	value  []byte // the value of a Get; shared with the map, never modified
}

// apply executes o, chosen at slot m.next-1's successor, and returns its
// result. The values of o are kept by the map: o must not be modified
// afterwards.
func (m *machine) apply(o *op) result {
	m.logTime = max(m.logTime, o.Stamp)
	m.expire()
	s := m.sessions[o.Client]
	switch o.Kind {
	case opRegister:
		if s == nil {
			s = &session{id: o.Client}
			m.sessions[o.Client] = s
			m.link(s)
		}
		m.touch(s)
		return result{status: statusOK}
	case opGet:
		if s != nil {
			s.ack(o.Ack)
			m.touch(s)
		}
		v, ok := m.data[string(o.Key)]
		if !ok {
			return result{status: statusNoKey}
		}
		return result{status: statusOK, value: v}
	case opPut, opAppend:
		if s == nil {
			return result{status: statusExpired}
		}
		s.ack(o.Ack)
		m.touch(s)
		switch {
		case o.Seq < s.acked:
			return result{status: statusStale}
		case s.has(o.Seq):
			return result{status: statusOK} // a retry or a duplicate: applied once
		}
		s.add(o.Seq)
		k := string(o.Key)
		if old, ok := m.data[k]; ok && o.Kind == opAppend {
			// Appending in place never changes old[:len(old)], which
			// frozen copies and Get replies may still be reading.
			m.data[k] = append(old, o.Value...)
		} else {
			m.data[k] = o.Value
		}
		return result{status: statusOK}
	}
	return result{status: statusBadRequest}
}

// expire drops the sessions idle for longer than ttl of log time.
func (m *machine) expire() {
	for s := m.oldest; s != nil && m.logTime-s.lastActive > m.ttl; s = m.oldest {
		m.unlink(s)
		delete(m.sessions, s.id)
	}
}

// touch marks s active now and moves it to the newest end.
func (m *machine) touch(s *session) {
	s.lastActive = m.logTime
	if m.newest == s {
		return
	}
	m.unlink(s)
	m.link(s)
}

// link appends s at the newest end.
func (m *machine) link(s *session) {
	s.older, s.newer = m.newest, nil
	if m.newest != nil {
		m.newest.newer = s
	} else {
		m.oldest = s
	}
	m.newest = s
}

func (m *machine) unlink(s *session) {
	if s.older != nil {
		s.older.newer = s.newer
	} else if m.oldest == s {
		m.oldest = s.newer
	}
	if s.newer != nil {
		s.newer.older = s.older
	} else if m.newest == s {
		m.newest = s.older
	}
	s.older, s.newer = nil, nil
}

// freeze returns a copy of m for a snapshot, taken in O(keys + sessions):
// the map is copied but its values are shared (the live machine never
// modifies a value's bytes in place below its length), the sessions are
// copied.
func (m *machine) freeze() *machine {
	f := &machine{
		data:     make(map[string][]byte, len(m.data)),
		sessions: make(map[uint64]*session, len(m.sessions)),
		logTime:  m.logTime,
		next:     m.next,
		ttl:      m.ttl,
	}
	for k, v := range m.data {
		f.data[k] = v[:len(v):len(v)]
	}
	for s := m.oldest; s != nil; s = s.newer {
		c := &session{id: s.id, lastActive: s.lastActive, acked: s.acked, executed: slices.Clone(s.executed)}
		f.sessions[c.id] = c
		f.link(c)
	}
	return f
}
