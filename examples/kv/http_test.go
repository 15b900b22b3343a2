package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/paxos"
)

// fakeStore is a map behind the store interface that counts the calls
// reaching it (each would be a proposal in a real node).
type fakeStore struct {
	mu    sync.Mutex
	data  map[string]string
	calls int
	block bool // calls wait for their context to end
}

func (s *fakeStore) enter(ctx context.Context) error {
	s.mu.Lock()
	s.calls++
	block := s.block
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return fmt.Errorf("kvstore: op: %w", ctx.Err())
	}
	return nil
}

func (s *fakeStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	if !ok {
		return nil, fmt.Errorf("%w: %q", kvstore.ErrNoKey, key)
	}
	return []byte(v), nil
}

func (s *fakeStore) Put(ctx context.Context, key string, value []byte) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = string(value)
	return nil
}

func (s *fakeStore) Append(ctx context.Context, key string, value []byte) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] += string(value)
	return nil
}

func (s *fakeStore) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func newTestAPI(t *testing.T, st store) *httptest.Server {
	t.Helper()
	a := newAPI(apiConfig{
		id: 1, store: st, maxKey: 16, maxValue: 64, requestTimeout: 100 * time.Millisecond,
		logger: slog.New(slog.DiscardHandler),
	}, []paxos.Member{{ID: 1, Addr: "a:1"}, {ID: 2, Addr: "b:1"}})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

// rawRequest sends a request line and headers as is (for paths a Go client
// would refuse to send) and returns the status code.
func rawRequest(t *testing.T, addr, head string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, head+"Host: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// badRequests are requests the API must refuse before they reach the
// store, with their documented status (and header).
func badRequests(big string) []struct {
	name, method, path, body string
	chunked                  bool
	code                     int
	header, headerValue      string
} {
	return []struct {
		name, method, path, body string
		chunked                  bool
		code                     int
		header, headerValue      string
	}{
		{name: "empty key", method: "GET", path: "/kv/", code: 400},
		{name: "empty key put", method: "PUT", path: "/kv/", body: "v", code: 400},
		{name: "no key", method: "GET", path: "/kv", code: 400},
		{name: "oversized key get", method: "GET", path: "/kv/" + big, code: 413},
		{name: "oversized key put", method: "PUT", path: "/kv/" + big, body: "v", code: 413},
		{name: "oversized value put", method: "PUT", path: "/kv/k", body: strings.Repeat("v", 1<<20), code: 413},
		{name: "oversized value append", method: "POST", path: "/kv/k", body: strings.Repeat("v", 1<<20), code: 413},
		{name: "oversized chunked value", method: "PUT", path: "/kv/k", body: strings.Repeat("v", 1<<20), chunked: true, code: 413},
		{name: "delete", method: "DELETE", path: "/kv/k", code: 405, header: "Allow", headerValue: "GET, PUT, POST"},
		{name: "patch", method: "PATCH", path: "/kv/k", body: "v", code: 405, header: "Allow", headerValue: "GET, PUT, POST"},
		{name: "post status", method: "POST", path: "/status", code: 405, header: "Allow", headerValue: "GET"},
		{name: "put metrics", method: "PUT", path: "/metrics", code: 405, header: "Allow", headerValue: "GET"},
		{name: "unknown endpoint", method: "GET", path: "/keys/k", code: 404},
		{name: "pprof off", method: "GET", path: "/debug/pprof/", code: 404},
	}
}

// sendBad sends one of badRequests to base and checks its answer.
func sendBad(t *testing.T, base string, i int, big string) {
	t.Helper()
	tt := badRequests(big)[i]
	var body io.Reader
	if tt.body != "" {
		body = strings.NewReader(tt.body)
		if tt.chunked {
			body = io.MultiReader(body) // hides the length: chunked encoding
		}
	}
	req, err := http.NewRequest(tt.method, base+tt.path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", tt.name, err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != tt.code {
		t.Errorf("%s: %s %s: status %d (%s), want %d", tt.name, tt.method, tt.path[:min(len(tt.path), 20)], resp.StatusCode, msg, tt.code)
	}
	if tt.header != "" && resp.Header.Get(tt.header) != tt.headerValue {
		t.Errorf("%s: %s: %q, want %q", tt.name, tt.header, resp.Header.Get(tt.header), tt.headerValue)
	}
}

func TestBadRequestsProposeNothing(t *testing.T) {
	st := &fakeStore{data: make(map[string]string)}
	srv := newTestAPI(t, st)
	big := strings.Repeat("k", 17)
	for i := range badRequests(big) {
		sendBad(t, srv.URL, i, big)
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, line := range []string{
		"GET /kv/%zz HTTP/1.1\r\n", // bad percent-encoding: refused by net/http
		"GET /kv/a%2 HTTP/1.1\r\n",
		"GET kv/a HTTP/1.1\r\n", // not a path
		"GET /kv HTTP/1.1\r\n",
		"GET /kv/ HTTP/1.1\r\n",
		"PUT /kv/" + big + " HTTP/1.1\r\nContent-Length: 0\r\n",
		"PUT /kv/k HTTP/1.1\r\nContent-Length: 100000000\r\n",
	} {
		code := rawRequest(t, addr, line)
		if code != 400 && code != 413 {
			t.Errorf("%q: status %d, want 400 or 413", line, code)
		}
	}
	if n := st.callCount(); n != 0 {
		t.Errorf("%d calls reached the store, want 0", n)
	}
}

func TestRequests(t *testing.T) {
	st := &fakeStore{data: make(map[string]string)}
	srv := newTestAPI(t, st)
	do := func(method, path, body string, hdr ...string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, _, _ := do("PUT", "/kv/a%2Fb", "hello"); code != 204 {
		t.Fatalf("put: %d", code)
	}
	if code, _, _ := do("POST", "/kv/a/b", ", world"); code != 204 {
		t.Fatalf("append: %d", code)
	}
	if code, body, _ := do("GET", "/kv/a/b", ""); code != 200 || body != "hello, world" {
		t.Fatalf("get: %d %q", code, body)
	}
	if code, _, _ := do("PUT", "/kv/"+strings.Repeat("k", 16), strings.Repeat("v", 64)); code != 204 {
		t.Fatalf("put at the limits: %d", code)
	}
	if code, body, _ := do("GET", "/kv/missing", ""); code != 404 || body != "no such key\n" {
		t.Fatalf("missing key: %d %q", code, body)
	}
	code, body, h := do("GET", "/kv/missing", "", "Accept", "application/json")
	var eb errorBody
	if code != 404 || h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &eb) != nil || eb.Status != 404 || eb.Error != "no such key" {
		t.Fatalf("missing key, JSON: %d %q %q", code, h.Get("Content-Type"), body)
	}

	// A store that does not answer: 503 with Retry-After once the request
	// timeout (100ms) passes.
	st.mu.Lock()
	st.block = true
	st.mu.Unlock()
	start := time.Now()
	code, body, h = do("POST", "/kv/k", "v")
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(body, "may or may not have been applied") {
		t.Fatalf("no quorum: %d %q, Retry-After %q", code, body, h.Get("Retry-After"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the request took %v; the timeout is 100ms", d)
	}

	code, body, h = do("GET", "/status", "")
	var s nodeStatus
	if code != 200 || h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &s) != nil || s.ID != 1 || len(s.Peers) != 1 || s.Metrics.HTTPRequests == 0 {
		t.Fatalf("status: %d %q", code, body)
	}
	code, body, _ = do("GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	checkExposition(t, body)
	for _, want := range []string{
		`synod_http_requests_total{handler="kv",method="PUT",code="204"} 2`,
		`synod_http_requests_total{handler="kv",method="GET",code="404"} 2`,
		`synod_http_requests_total{handler="kv",method="POST",code="503"} 1`,
		`synod_http_request_duration_seconds_count{op="get"} 3`,
		`synod_http_request_duration_seconds_bucket{op="append",le="+Inf"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// checkExposition checks the Prometheus text format line by line: a HELP
// and a TYPE before each family's samples, valid names and values.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	sampleRE := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$`)
	typed := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			if typed[name] != "" {
				t.Errorf("family %s typed twice", name)
			}
			typed[name] = typ
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("malformed line %q", line)
			continue
		}
		name := m[1]
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if typed[name] == "" && typed[base] != "histogram" {
			t.Errorf("sample %s has no TYPE", name)
		}
	}
}
