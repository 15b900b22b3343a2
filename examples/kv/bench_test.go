package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLatencyStats(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := latencyOf(ds)
	if s.P50 != 500 || s.P90 != 900 || s.P99 != 990 || s.P999 != 999 || s.Max != 1000 || s.Mean != 500.5 {
		t.Errorf("latencyOf(1..1000 ms) = %+v", s)
	}
	if s := latencyOf(ds[:1]); s.P50 != 1 || s.P999 != 1 || s.Max != 1 {
		t.Errorf("latencyOf(1 ms) = %+v", s)
	}
	if s := latencyOf(nil); s != (latencyStats{}) {
		t.Errorf("latencyOf(nil) = %+v", s)
	}

	h := histogramOf([]time.Duration{100 * time.Microsecond, 100 * time.Microsecond, 3 * time.Millisecond, 40 * time.Millisecond})
	want := []histBucket{{0.125, 2}, {0.25, 0}, {0.5, 0}, {1, 0}, {2, 0}, {4, 1}, {8, 0}, {16, 0}, {32, 0}, {64, 1}}
	if len(h) != len(want) {
		t.Fatalf("histogram %v, want %v", h, want)
	}
	for i := range h {
		if h[i] != want[i] {
			t.Fatalf("histogram %v, want %v", h, want)
		}
	}
}

// TestBench runs the load generator against the API on a fake store.
func TestBench(t *testing.T) {
	st := &fakeStore{data: make(map[string]string)}
	srv := newTestAPI(t, st)
	cfg, err := parseBenchArgs([]string{"-nodes", srv.URL + ",http://127.0.0.1:1", "-clients", "4", "-duration", "300ms", "-value-size", "32", "-keys", "5", "-json"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runBench(t.Context(), cfg, &out, false); err != nil {
		t.Fatal(err)
	}
	var res benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	// Half the clients start on the dead node and move on after one error.
	if res.Ops == 0 || res.Ops != res.Gets+res.Puts || res.Errors == 0 || res.ErrorKinds["connection refused"] != res.Errors ||
		res.Throughput <= 0 || res.Latency.P50 <= 0 || len(res.Histogram) == 0 || res.Clients != 4 || res.ValueSize != 32 {
		t.Errorf("result: %s", out.String())
	}
	if n := st.callCount(); n < res.Ops {
		t.Errorf("%d ops reported, %d reached the store", res.Ops, n)
	}

	cfg.json = false
	cfg.duration = 1500 * time.Millisecond
	out.Reset()
	if err := runBench(t.Context(), cfg, &out, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ops/s", "throughput", "p99.9", "latency histogram", "\r"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
}
