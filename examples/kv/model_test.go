package main

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The porcupine model of the HTTP API: get, put and append on string keys,
// partitioned by key (each key is checked on its own).

type kvOpKind byte

const (
	kvGet kvOpKind = iota
	kvPut
	kvAppend
)

func (k kvOpKind) String() string { return [...]string{"get", "put", "append"}[k] }

type kvInput struct {
	Op         kvOpKind
	Key, Value string
}

type kvOutput struct {
	Value string
	Found bool // a get found the key
}

// kvState is one key's state.
type kvState struct {
	Value  string
	Exists bool
}

func kvModel() porcupine.Model {
	return porcupine.Model{
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
			case kvGet:
				return out.Found == st.Exists && out.Value == st.Value, st
			case kvPut:
				return true, kvState{Value: in.Value, Exists: true}
			default:
				return true, kvState{Value: st.Value + in.Value, Exists: true}
			}
		},
		Equal: func(a, b any) bool { return a.(kvState) == b.(kvState) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(kvInput), output.(kvOutput)
			switch {
			case in.Op != kvGet:
				return fmt.Sprintf("%v(%q, %q)", in.Op, in.Key, short(in.Value))
			case !out.Found:
				return fmt.Sprintf("get(%q) -> no key", in.Key)
			}
			return fmt.Sprintf("get(%q) -> %q", in.Key, short(out.Value))
		},
		DescribeState: func(state any) string {
			st := state.(kvState)
			if !st.Exists {
				return "no key"
			}
			return fmt.Sprintf("%q", short(st.Value))
		},
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:18] + "…" + s[len(s)-18:]
	}
	return s
}

// history records the clients' operations for porcupine.
type history struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

func newHistory() *history { return &history{start: time.Now()} }

// now is the time since the history began, in nanoseconds (monotonic).
func (h *history) now() int64 { return int64(time.Since(h.start)) }

// add records a completed operation.
func (h *history) add(client int, in kvInput, out kvOutput, call, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
}

// addUnknown records a write whose outcome is unknown: it may take effect
// at any time after its call, so it "returns" after everything else.
func (h *history) addUnknown(client int, in kvInput, call int64) {
	h.add(client, in, kvOutput{}, call, math.MaxInt64)
}

func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}
