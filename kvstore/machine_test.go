package kvstore

import (
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// step is one op applied to a machine and the status it must answer.
type step struct {
	o      op
	want   replyStatus
	value  string // for a Get that finds the key
	reason string
}

func put(client, seq, ack uint64, k, v string) op {
	return op{Kind: opPut, Client: client, Seq: seq, Ack: ack, Key: []byte(k), Value: []byte(v)}
}
func app(client, seq, ack uint64, k, v string) op {
	return op{Kind: opAppend, Client: client, Seq: seq, Ack: ack, Key: []byte(k), Value: []byte(v)}
}
func get(client, seq uint64, k string) op {
	return op{Kind: opGet, Client: client, Seq: seq, Key: []byte(k)}
}
func reg(client uint64) op { return op{Kind: opRegister, Client: client} }

func runSteps(t *testing.T, m *machine, steps []step) {
	t.Helper()
	for i, s := range steps {
		o := s.o
		r := m.apply(&o)
		m.next++
		if r.status != s.want || (s.want == statusOK && o.Kind == opGet && string(r.value) != s.value) {
			t.Fatalf("step %d (%s): %v answered %d %q, want %d %q", i, s.reason, o.Kind, r.status, r.value, s.want, s.value)
		}
	}
}

func TestMachineRules(t *testing.T) {
	m := newMachine(int64(time.Hour))
	runSteps(t, m, []step{
		{o: get(1, 1, "k"), want: statusNoKey, reason: "a missing key"},
		{o: put(1, 1, 1, "k", "v"), want: statusExpired, reason: "a write needs an open session"},
		{o: get(1, 1, "k"), want: statusNoKey, reason: "the refused write did nothing"},
		{o: reg(1), want: statusOK, reason: "open"},
		{o: reg(1), want: statusOK, reason: "opening twice is harmless"},
		{o: app(1, 1, 1, "k", "x"), want: statusOK, reason: "Append on a missing key acts as Put"},
		{o: app(1, 2, 1, "k", "y"), want: statusOK, reason: "Append concatenates"},
		{o: get(1, 3, "k"), want: statusOK, value: "xy"},
		{o: app(1, 2, 1, "k", "y"), want: statusOK, reason: "a retry is answered, not executed"},
		{o: get(1, 4, "k"), want: statusOK, value: "xy", reason: "the retry did nothing"},
		{o: put(1, 5, 3, "k", "p"), want: statusOK, reason: "Put replaces; ack 3 drops seqs 1 and 2"},
		{o: app(1, 2, 3, "k", "y"), want: statusStale, reason: "below the ack: never executed again"},
		{o: get(1, 6, "k"), want: statusOK, value: "p"},
		{o: put(1, 7, 6, "e", ""), want: statusOK, reason: "an empty value"},
		{o: get(1, 8, "e"), want: statusOK, value: ""},
		{o: reg(2), want: statusOK},
		{o: app(2, 1, 1, "k", "2"), want: statusOK, reason: "sessions are separate"},
		{o: get(1, 9, "k"), want: statusOK, value: "p2"},
	})
	if s := m.sessions[1]; s.acked != 6 || !slices.Equal(s.executed, []uint64{7}) {
		t.Errorf("session 1: acked %d, executed %v; want 6 and [7]", s.acked, s.executed)
	}
}

func TestMachineSessionExpiry(t *testing.T) {
	const ttl = 100
	m := newMachine(ttl)
	at := func(o op, stamp int64) op { o.Stamp = stamp; return o }
	runSteps(t, m, []step{
		{o: at(reg(1), 1000), want: statusOK},
		{o: at(reg(2), 1050), want: statusOK},
		{o: at(put(1, 1, 1, "a", "1"), 1090), want: statusOK, reason: "session 1 is now the newest"},
		{o: at(put(3, 1, 1, "a", "1"), 1151), want: statusExpired, reason: "log time 1151: session 2 (1050) expires, 1 (1090) stays"},
		{o: at(put(2, 1, 1, "a", "2"), 1100), want: statusExpired, reason: "session 2 is gone; a smaller stamp does not move log time back"},
		{o: at(app(1, 2, 1, "a", "x"), 1190), want: statusOK, reason: "exactly ttl idle: still there"},
		{o: at(get(9, 1, "a"), 1291), want: statusOK, value: "1x", reason: "a Get expires session 1 (idle 101)"},
		{o: at(app(1, 3, 1, "a", "y"), 1291), want: statusExpired},
	})
	if len(m.sessions) != 0 || m.oldest != nil || m.newest != nil {
		t.Fatalf("sessions left: %d", len(m.sessions))
	}
	if m.logTime != 1291 {
		t.Fatalf("log time %d, want 1291", m.logTime)
	}
}

func TestMachineTracksBoundedWrites(t *testing.T) {
	m := newMachine(int64(time.Hour))
	runSteps(t, m, []step{{o: reg(1), want: statusOK}})
	// A client that never acknowledges: the oldest outcomes are dropped.
	for seq := uint64(1); seq <= maxTracked+10; seq++ {
		o := app(1, seq, 0, "k", "x")
		if r := m.apply(&o); r.status != statusOK {
			t.Fatalf("seq %d: status %d", seq, r.status)
		}
	}
	s := m.sessions[1]
	if len(s.executed) != maxTracked || s.acked != 11 {
		t.Fatalf("tracked %d writes, acked %d; want %d and 11", len(s.executed), s.acked, maxTracked)
	}
	o := app(1, 5, 0, "k", "x")
	if r := m.apply(&o); r.status != statusStale {
		t.Fatalf("an untracked old write answered %d, want statusStale", r.status)
	}
	if v := string(m.data["k"]); len(v) != maxTracked+10 {
		t.Fatalf("value has %d bytes", len(v))
	}
}

// A frozen copy does not change when the machine goes on, appends in
// place included.
func TestMachineFreeze(t *testing.T) {
	m := newMachine(int64(time.Hour))
	runSteps(t, m, []step{{o: reg(1), want: statusOK}, {o: put(1, 1, 1, "k", "ab"), want: statusOK}})
	o := app(1, 2, 1, "k", "c")
	m.apply(&o)
	m.data["k"] = slices.Grow(m.data["k"], 100) // room to append in place
	f := m.freeze()
	for seq := uint64(3); seq < 10; seq++ {
		o := app(1, seq, 1, "k", "z")
		m.apply(&o)
	}
	o = put(1, 10, 1, "j", "new")
	m.apply(&o)
	if got := string(f.data["k"]); got != "abc" {
		t.Fatalf("frozen value changed to %q", got)
	}
	if _, ok := f.data["j"]; ok || len(f.sessions[1].executed) != 2 {
		t.Fatalf("frozen copy sees later writes")
	}
}

// dump is a canonical description of a machine's replicated state.
func dump(m *machine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "next %d logTime %d\n", m.next, m.logTime)
	keys := make([]string, 0, len(m.data))
	for k := range m.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q\n", k, m.data[k])
	}
	for s := m.oldest; s != nil; s = s.newer {
		fmt.Fprintf(&b, "session %d active %d acked %d executed %v\n", s.id, s.lastActive, s.acked, s.executed)
	}
	return b.String()
}

// randomOps returns a random op sequence for a few clients and keys.
func randomOps(rng *rand.Rand, n int) []op {
	var ops []op
	stamp := int64(1000)
	for range n {
		client := uint64(rng.Intn(5) + 1)
		stamp += int64(rng.Intn(30))
		var o op
		switch rng.Intn(6) {
		case 0:
			o = reg(client)
		case 1:
			o = get(client, uint64(rng.Intn(50)), fmt.Sprint(rng.Intn(8)))
		case 2, 3:
			o = put(client, uint64(rng.Intn(50)+1), uint64(rng.Intn(20)), fmt.Sprint(rng.Intn(8)), strings.Repeat("v", rng.Intn(3000)))
		default:
			o = app(client, uint64(rng.Intn(50)+1), uint64(rng.Intn(20)), fmt.Sprint(rng.Intn(8)), fmt.Sprint(rng.Intn(100)))
		}
		o.Stamp = stamp
		ops = append(ops, o)
	}
	return ops
}

// Replicas applying the same ops reach the same state, also when one of
// them starts from a snapshot of the other taken midway.
func TestMachineDeterministic(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ops := randomOps(rng, 3000)
	a, b := newMachine(200), newMachine(200)
	for i := range ops {
		oa, ob := ops[i], ops[i]
		ra, rb := a.apply(&oa), b.apply(&ob)
		a.next++
		b.next++
		if ra.status != rb.status || string(ra.value) != string(rb.value) {
			t.Fatalf("op %d: answers differ", i)
		}
		if i == 1500 {
			b = roundTrip(t, b.freeze(), 16<<10)
		}
	}
	if da, db := dump(a), dump(b); da != db {
		t.Fatalf("replicas differ:\n%s\nvs\n%s", da, db)
	}
}
