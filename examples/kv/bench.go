package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// benchResult is what kv bench reports (--json prints it as is).
type benchResult struct {
	Nodes      []string       `json:"nodes"`
	Clients    int            `json:"clients"`
	ValueSize  int            `json:"value_size"`
	ReadRatio  float64        `json:"read_ratio"`
	Keys       int            `json:"keys"`
	Seconds    float64        `json:"duration_s"`
	Ops        int            `json:"ops"` // successful operations
	Gets       int            `json:"gets"`
	Puts       int            `json:"puts"`
	NotFound   int            `json:"gets_not_found"` // successful gets of a key with no value (404)
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	Throughput float64        `json:"ops_per_s"`
	Latency    latencyStats   `json:"latency_ms"`
	GetLatency latencyStats   `json:"get_latency_ms"`
	PutLatency latencyStats   `json:"put_latency_ms"`
	Histogram  []histBucket   `json:"histogram"`
}

type latencyStats struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// histBucket counts the operations with a latency in (previous UpToMs,
// UpToMs].
type histBucket struct {
	UpToMs float64 `json:"le_ms"`
	Count  int     `json:"count"`
}

// benchWorker is one client's tally.
type benchWorker struct {
	gets, puts []time.Duration
	notFound   int
	errors     map[string]int
}

// runBench runs the load generator for cfg.duration (or until ctx ends)
// and prints the result; with progress, a live line on stdout too.
func runBench(ctx context.Context, cfg benchConfig, stdout io.Writer, progress bool) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	tr := &http.Transport{
		MaxIdleConns:        cfg.clients * len(cfg.nodes),
		MaxIdleConnsPerHost: cfg.clients,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: cfg.timeout}
	// Values are windows of one random printable buffer.
	rng := rand.New(rand.NewPCG(uint64(cfg.seed), 0))
	payload := make([]byte, cfg.valueSize+256)
	for i := range payload {
		payload[i] = byte('a' + rng.IntN(26))
	}

	var done, failed atomic.Int64
	workers := make([]*benchWorker, cfg.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		bw := &benchWorker{errors: make(map[string]int)}
		workers[w] = bw
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(cfg.seed), uint64(w)+1))
			cur := w % len(cfg.nodes)
			for ctx.Err() == nil {
				key := fmt.Sprintf("bench-%d", r.IntN(cfg.keys))
				get := r.Float64() < cfg.readRatio
				off := r.IntN(256)
				t0 := time.Now()
				code, err := benchOp(ctx, hc, cfg.nodes[cur], key, get, payload[off:off+cfg.valueSize])
				lat := time.Since(t0)
				if ctx.Err() != nil {
					break // cut short by the end of the run: not counted
				}
				if err == nil && code != http.StatusOK && code != http.StatusNoContent && code != http.StatusNotFound {
					err = fmt.Errorf("HTTP %d", code)
				}
				if err != nil {
					bw.errors[errorKind(err)]++
					failed.Add(1)
					cur = (cur + 1) % len(cfg.nodes)
					continue
				}
				done.Add(1)
				if get {
					bw.gets = append(bw.gets, lat)
					if code == http.StatusNotFound {
						bw.notFound++
					}
				} else {
					bw.puts = append(bw.puts, lat)
				}
			}
		})
	}
	if progress {
		stop := make(chan struct{})
		var pwg sync.WaitGroup
		pwg.Go(func() { showProgress(stdout, start, cfg.duration, &done, &failed, stop) })
		wg.Wait()
		close(stop)
		pwg.Wait()
	} else {
		wg.Wait()
	}
	res := summarize(cfg, workers, time.Since(start))
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printBench(stdout, res)
	if res.Ops == 0 {
		return errors.New("no operation succeeded")
	}
	return nil
}

// benchOp runs one get or put and returns the HTTP status.
func benchOp(ctx context.Context, hc *http.Client, node, key string, get bool, value []byte) (int, error) {
	method, body := http.MethodGet, io.Reader(nil)
	if !get {
		method, body = http.MethodPut, bytes.NewReader(value)
	}
	req, err := http.NewRequestWithContext(ctx, method, node+"/kv/"+key, body)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// errorKind classifies an error for the report.
func errorKind(err error) string {
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection lost"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.HasPrefix(err.Error(), "HTTP "):
		return err.Error()
	}
	return "other"
}

// showProgress rewrites one line every second until stop is closed.
func showProgress(w io.Writer, start time.Time, total time.Duration, done, failed *atomic.Int64, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	lastAt := start
	for {
		select {
		case <-stop:
			fmt.Fprintf(w, "\r%70s\r", "")
			return
		case now := <-t.C:
			n := done.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			fmt.Fprintf(w, "\r%5.0fs/%v  %9.0f ops/s  %10d ops  %6d errors ", now.Sub(start).Seconds(), total, rate, n, failed.Load())
		}
	}
}

func summarize(cfg benchConfig, workers []*benchWorker, elapsed time.Duration) benchResult {
	res := benchResult{
		Nodes: cfg.nodes, Clients: cfg.clients, ValueSize: cfg.valueSize, ReadRatio: cfg.readRatio, Keys: cfg.keys,
		Seconds: elapsed.Seconds(), ErrorKinds: make(map[string]int),
	}
	var gets, puts []time.Duration
	for _, w := range workers {
		gets = append(gets, w.gets...)
		puts = append(puts, w.puts...)
		res.NotFound += w.notFound
		for k, n := range w.errors {
			res.ErrorKinds[k] += n
			res.Errors += n
		}
	}
	all := slices.Concat(gets, puts)
	slices.Sort(all)
	slices.Sort(gets)
	slices.Sort(puts)
	res.Gets, res.Puts, res.Ops = len(gets), len(puts), len(all)
	res.Throughput = float64(len(all)) / elapsed.Seconds()
	res.Latency, res.GetLatency, res.PutLatency = latencyOf(all), latencyOf(gets), latencyOf(puts)
	res.Histogram = histogramOf(all)
	return res
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// latencyOf summarizes sorted latencies.
func latencyOf(sorted []time.Duration) latencyStats {
	if len(sorted) == 0 {
		return latencyStats{}
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return ms(sorted[max(i, 0)])
	}
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return latencyStats{
		Mean: ms(sum / time.Duration(len(sorted))),
		P50:  q(.5), P90: q(.9), P99: q(.99), P999: q(.999),
		Max: ms(sorted[len(sorted)-1]),
	}
}

// histogramOf buckets sorted latencies by powers of two of 1/16 ms, from the
// first non-empty bucket to the last.
func histogramOf(sorted []time.Duration) []histBucket {
	if len(sorted) == 0 {
		return nil
	}
	var out []histBucket
	bound := time.Millisecond / 16
	for bound < sorted[0] {
		bound *= 2
	}
	i := 0
	for i < len(sorted) {
		n := 0
		for i < len(sorted) && sorted[i] <= bound {
			i++
			n++
		}
		out = append(out, histBucket{UpToMs: ms(bound), Count: n})
		bound *= 2
	}
	return out
}

func printBench(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "kv bench: %d clients, %.1fs, %d-byte values, %.0f%% gets, %d keys, nodes %s\n\n",
		r.Clients, r.Seconds, r.ValueSize, 100*r.ReadRatio, r.Keys, strings.Join(r.Nodes, ","))
	fmt.Fprintf(w, "ops         %d (%d gets, of which %d found no key; %d puts)\n", r.Ops, r.Gets, r.NotFound, r.Puts)
	fmt.Fprintf(w, "errors      %d", r.Errors)
	if r.Errors > 0 {
		kinds := make([]string, 0, len(r.ErrorKinds))
		for k, n := range r.ErrorKinds {
			kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
		}
		slices.Sort(kinds)
		fmt.Fprintf(w, " (%s)", strings.Join(kinds, ", "))
	}
	fmt.Fprintf(w, "\nthroughput  %.0f ops/s\n\n", r.Throughput)
	fmt.Fprintf(w, "latency ms     mean      p50      p90      p99    p99.9      max\n")
	for _, l := range []struct {
		name string
		s    latencyStats
		n    int
	}{{"all", r.Latency, r.Ops}, {"get", r.GetLatency, r.Gets}, {"put", r.PutLatency, r.Puts}} {
		if l.n > 0 {
			fmt.Fprintf(w, "  %-6s %9.3f%9.3f%9.3f%9.3f%9.3f%9.3f\n", l.name, l.s.Mean, l.s.P50, l.s.P90, l.s.P99, l.s.P999, l.s.Max)
		}
	}
	if len(r.Histogram) == 0 {
		return
	}
	fmt.Fprintf(w, "\nlatency histogram (all operations)\n")
	most := 0
	for _, b := range r.Histogram {
		most = max(most, b.Count)
	}
	cum := 0
	for _, b := range r.Histogram {
		cum += b.Count
		bar := strings.Repeat("#", int(math.Ceil(40*float64(b.Count)/float64(most))))
		fmt.Fprintf(w, "  <= %9.3f ms %9d %6.2f%% %7.3f%%  %s\n", b.UpToMs, b.Count, 100*float64(b.Count)/float64(r.Ops), 100*float64(cum)/float64(r.Ops), bar)
	}
}
