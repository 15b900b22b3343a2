package kvstore_test

import (
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The porcupine model of the store: Get, Put and Append on string keys,
// partitioned by key (so each key is checked on its own).

type kvOp byte

const (
	opGet kvOp = iota
	opPut
	opAppend
)

type kvInput struct {
	Op         kvOp
	Key, Value string
}

type kvOutput struct {
	Value string
	Found bool // Get found the key
}

// kvState is one key's state.
type kvState struct {
	Value  string
	Exists bool
}

var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[string][]porcupine.Operation)
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.Op {
		case opGet:
			return out.Found == st.Exists && out.Value == st.Value, st
		case opPut:
			return true, kvState{Value: in.Value, Exists: true}
		default:
			return true, kvState{Value: st.Value + in.Value, Exists: true}
		}
	},
	Equal: func(a, b any) bool { return a.(kvState) == b.(kvState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		switch in.Op {
		case opGet:
			if !out.Found {
				return fmt.Sprintf("get(%q) -> no key", in.Key)
			}
			return fmt.Sprintf("get(%q) -> %q", in.Key, short(out.Value))
		case opPut:
			return fmt.Sprintf("put(%q, %q)", in.Key, short(in.Value))
		default:
			return fmt.Sprintf("append(%q, %q)", in.Key, short(in.Value))
		}
	},
	DescribeState: func(state any) string {
		st := state.(kvState)
		if !st.Exists {
			return "no key"
		}
		return fmt.Sprintf("%q", short(st.Value))
	},
}

func short(s string) string {
	if len(s) > 40 {
		return s[:18] + "…" + s[len(s)-18:]
	}
	return s
}

// digest stands in for a big value in a history.
func digest(v string) string {
	if len(v) < 64 {
		return v
	}
	return fmt.Sprintf("sha256:%x/%d", sha256.Sum256([]byte(v)), len(v))
}

// history collects the operations of a test's clients.
type history struct {
	seed  int64
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

func newHistory(seed int64) *history { return &history{seed: seed, start: time.Now()} }

// now is a timestamp for porcupine (monotonic nanoseconds).
func (h *history) now() int64 { return int64(time.Since(h.start)) }

// add records an operation that returned now. A failed write may or may
// not have taken effect: it is recorded as never returning.
func (h *history) add(clientID int, in kvInput, out kvOutput, call int64, failed bool) {
	ret := h.now()
	if failed {
		ret = math.MaxInt64
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: clientID, Input: in, Call: call, Output: out, Return: ret})
}

// check fails t if the history is not linearizable, after writing
// porcupine's visualization of it to a file whose path it prints with the
// seed.
func (h *history) check(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	ok, path, err := checkLinearizable(ops)
	switch {
	case err != nil:
		t.Fatalf("history of %d operations is NOT linearizable (seed %d); writing the visualization failed: %v", len(ops), h.seed, err)
	case !ok:
		t.Fatalf("history of %d operations is NOT linearizable (seed %d); visualization: %s", len(ops), h.seed, path)
	case path == "unknown":
		t.Logf("linearizability check of %d operations timed out (seed %d): treated as passing", len(ops), h.seed)
	default:
		t.Logf("history of %d operations is linearizable", len(ops))
	}
}

// checkTimeout bounds one linearizability check; a check that times out
// passes with a note in the log.
const checkTimeout = 20 * time.Second

// checkLinearizable checks ops; if they are not linearizable it writes
// porcupine's HTML visualization to a temporary file and returns its path.
func checkLinearizable(ops []porcupine.Operation) (ok bool, path string, err error) {
	// The plain check is much cheaper than the verbose one, which also
	// computes partial linearizations for the visualization: run that only
	// on failure.
	switch porcupine.CheckOperationsTimeout(kvModel, ops, checkTimeout) {
	case porcupine.Ok:
		return true, "", nil
	case porcupine.Unknown:
		return true, "unknown", nil
	}
	_, info := porcupine.CheckOperationsVerbose(kvModel, ops, checkTimeout)
	f, err := os.CreateTemp("", "kvstore-linearizability-*.html")
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	if err := porcupine.Visualize(kvModel, info, f); err != nil {
		return false, f.Name(), err
	}
	return false, f.Name(), nil
}

// The checker itself: a stale read is caught, and the visualization is
// written where the failure message says.
func TestCheckerCatchesStaleRead(t *testing.T) {
	ops := []porcupine.Operation{
		{ClientId: 0, Input: kvInput{Op: opPut, Key: "x", Value: "1"}, Output: kvOutput{}, Call: 0, Return: 10},
		{ClientId: 1, Input: kvInput{Op: opPut, Key: "x", Value: "2"}, Output: kvOutput{}, Call: 20, Return: 30},
		{ClientId: 0, Input: kvInput{Op: opGet, Key: "x"}, Output: kvOutput{Value: "1", Found: true}, Call: 40, Return: 50},
		{ClientId: 1, Input: kvInput{Op: opAppend, Key: "y", Value: "a"}, Output: kvOutput{}, Call: 0, Return: math.MaxInt64},
		{ClientId: 1, Input: kvInput{Op: opGet, Key: "y"}, Output: kvOutput{Value: "a", Found: true}, Call: 60, Return: 70},
	}
	ok, path, err := checkLinearizable(ops)
	if err != nil || ok {
		t.Fatalf("stale read accepted: ok %v, err %v", ok, err)
	}
	defer os.Remove(path)
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), `get(\"x\")`) && !strings.Contains(string(html), `get("x")`) {
		t.Fatalf("visualization %s does not show the operations", path)
	}
	// Without the stale read, the history (with a pending append) passes.
	if ok, _, _ := checkLinearizable(append(ops[:2:2], ops[3:]...)); !ok {
		t.Fatal("linearizable history rejected")
	}
}
