package main

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The metrics are written by hand in the Prometheus text exposition format
// (version 0.0.4): a few dozen counters and gauges do not justify a
// dependency.

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram.
var latencyBuckets = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// httpMetrics counts the API's requests.
type httpMetrics struct {
	inflight atomic.Int64

	mu       sync.Mutex
	requests map[requestKey]uint64
	latency  map[string]*histogram // by operation: get, put, append
}

type requestKey struct {
	handler, method string
	code            int
}

type histogram struct {
	counts [len(latencyBuckets) + 1]uint64 // the last is +Inf
	sum    float64
	count  uint64
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{requests: make(map[requestKey]uint64), latency: make(map[string]*histogram)}
}

// knownMethods bounds the cardinality of the method label.
var knownMethods = []string{"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"}

func (m *httpMetrics) request(handler, method string, code int) {
	if !slices.Contains(knownMethods, method) {
		method = "other"
	}
	m.mu.Lock()
	m.requests[requestKey{handler, method, code}]++
	m.mu.Unlock()
}

// observe records the latency of a key/value operation that reached the
// store.
func (m *httpMetrics) observe(op string, d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets[:], s)
	m.mu.Lock()
	h := m.latency[op]
	if h == nil {
		h = new(histogram)
		m.latency[op] = h
	}
	h.counts[i]++
	h.sum += s
	h.count++
	m.mu.Unlock()
}

// totals returns the number of requests answered and of those answered
// with a 5xx status.
func (m *httpMetrics) totals() (all, serverErrors uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, n := range m.requests {
		all += n
		if k.code >= 500 {
			serverErrors += n
		}
	}
	return all, serverErrors
}

func (m *httpMetrics) write(p *promWriter) {
	m.mu.Lock()
	var reqs []sample
	for k, n := range m.requests {
		reqs = append(reqs, sample{labels: []string{"handler", k.handler, "method", k.method, "code", strconv.Itoa(k.code)}, value: float64(n)})
	}
	ops := make([]string, 0, len(m.latency))
	for op := range m.latency {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	hists := make([]histogram, len(ops))
	for i, op := range ops {
		hists[i] = *m.latency[op]
	}
	m.mu.Unlock()
	slices.SortFunc(reqs, func(a, b sample) int {
		return strings.Compare(strings.Join(a.labels, "\x00"), strings.Join(b.labels, "\x00"))
	})
	p.counterVec("synod_http_requests_total", "HTTP requests answered, by handler, method and status code.", reqs)
	p.gauge("synod_http_requests_in_flight", "HTTP requests being served.", float64(m.inflight.Load()))
	p.header("synod_http_request_duration_seconds", "Latency of key/value requests that reached the store, by operation.", "histogram")
	for i, op := range ops {
		p.histogramSamples("synod_http_request_duration_seconds", []string{"op", op}, &hists[i])
	}
	p.gauge("go_goroutines", "Goroutines that currently exist.", float64(runtime.NumGoroutine()))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
}

// promWriter writes metric families in the text exposition format.
type promWriter struct{ b bytes.Buffer }

// sample is one sample of a family: label name/value pairs and a value.
type sample struct {
	labels []string
	value  float64
}

func (p *promWriter) header(name, help, typ string) {
	fmt.Fprintf(&p.b, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func (p *promWriter) counter(name, help string, v float64) {
	p.counterVec(name, help, []sample{{value: v}})
}

func (p *promWriter) gauge(name, help string, v float64) {
	p.gaugeVec(name, help, []sample{{value: v}})
}

func (p *promWriter) counterVec(name, help string, ss []sample) { p.family(name, help, "counter", ss) }
func (p *promWriter) gaugeVec(name, help string, ss []sample)   { p.family(name, help, "gauge", ss) }

func (p *promWriter) family(name, help, typ string, ss []sample) {
	p.header(name, help, typ)
	for _, s := range ss {
		p.line(name, s.labels, s.value)
	}
}

func (p *promWriter) histogramSamples(name string, labels []string, h *histogram) {
	p.bucketSamples(name, labels, latencyBuckets[:], h.counts[:], h.sum)
}

// bucketSamples writes one histogram: counts[i] observations at most
// bounds[i], the last count those above every bound, and their sum.
func (p *promWriter) bucketSamples(name string, labels []string, bounds []float64, counts []uint64, sum float64) {
	var cum uint64
	for i, le := range bounds {
		cum += counts[i]
		p.line(name+"_bucket", append(slices.Clip(labels), "le", strconv.FormatFloat(le, 'g', -1, 64)), float64(cum))
	}
	cum += counts[len(bounds)]
	p.line(name+"_bucket", append(slices.Clip(labels), "le", "+Inf"), float64(cum))
	p.line(name+"_sum", labels, sum)
	p.line(name+"_count", labels, float64(cum))
}

func (p *promWriter) line(name string, labels []string, v float64) {
	p.b.WriteString(name)
	if len(labels) > 0 {
		p.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.b.WriteByte(',')
			}
			fmt.Fprintf(&p.b, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
		}
		p.b.WriteByte('}')
	}
	p.b.WriteByte(' ')
	p.b.WriteString(formatValue(v))
	p.b.WriteByte('\n')
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
