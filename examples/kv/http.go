package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/paxos"
)

// store is what the API needs from the key/value store: a kvstore.Client.
type store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Append(ctx context.Context, key string, value []byte) error
}

type apiConfig struct {
	id             paxos.NodeID
	store          store
	status         func() nodeStatus   // nil: /status reports the API's own view only
	metrics        func(p *promWriter) // the node's metrics; nil: HTTP metrics only
	maxKey         int                 // bytes
	maxValue       int                 // bytes
	requestTimeout time.Duration       // server-side deadline of a key/value request
	pprof          bool                // serve /debug/pprof/
	logger         *slog.Logger
}

// api is a node's HTTP API. It checks every request (path, method, sizes)
// before it reaches the store, so a refused request proposes nothing.
type api struct {
	cfg     apiConfig
	metrics *httpMetrics
	peers   *peerTracker
	pprof   http.Handler
}

func newAPI(cfg apiConfig, members []paxos.Member) *api {
	a := &api{cfg: cfg, metrics: newHTTPMetrics(), peers: newPeerTracker(cfg.id, members)}
	if cfg.pprof {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		a.pprof = mux
	}
	return a
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.metrics.inflight.Add(1)
	defer a.metrics.inflight.Add(-1)
	rec := &statusRecorder{ResponseWriter: w}
	path := r.URL.EscapedPath()
	handler := "other"
	switch {
	case path == "/kv" || strings.HasPrefix(path, "/kv/"):
		handler = "kv"
		a.serveKV(rec, r, path)
	case path == "/status":
		handler = "status"
		if a.allow(rec, r, http.MethodGet) {
			a.serveStatus(rec, r)
		}
	case path == "/metrics":
		handler = "metrics"
		if a.allow(rec, r, http.MethodGet) {
			a.serveMetrics(rec)
		}
	case a.pprof != nil && strings.HasPrefix(path, "/debug/pprof/"):
		handler = "pprof"
		a.pprof.ServeHTTP(rec, r)
	default:
		a.fail(rec, r, http.StatusNotFound, "no such endpoint: "+path+" (try /kv/{key}, /status, /metrics)")
	}
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	a.metrics.request(handler, r.Method, code)
}

// allow answers 405 unless r's method is one of methods.
func (a *api) allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	a.fail(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed (allowed: %s)", r.Method, strings.Join(methods, ", ")))
	return false
}

// keyOf returns the key of a /kv/{key} path (escaped as on the wire). The
// key is the rest of the path, percent-decoded; it may contain slashes.
func keyOf(escapedPath string) (string, error) {
	raw, ok := strings.CutPrefix(escapedPath, "/kv/")
	if !ok {
		return "", errors.New("malformed path: want /kv/{key}")
	}
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("malformed path: %w", err)
	}
	if key == "" {
		return "", errors.New("empty key: want /kv/{key}")
	}
	return key, nil
}

func (a *api) serveKV(w http.ResponseWriter, r *http.Request, path string) {
	key, err := keyOf(path)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !a.allow(w, r, http.MethodGet, http.MethodPut, http.MethodPost) {
		return
	}
	if len(key) > a.cfg.maxKey {
		a.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("key of %d bytes over the limit of %d", len(key), a.cfg.maxKey))
		return
	}
	var value []byte
	if r.Method != http.MethodGet {
		if r.ContentLength > int64(a.cfg.maxValue) {
			a.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("value of %d bytes over the limit of %d", r.ContentLength, a.cfg.maxValue))
			return
		}
		value, err = io.ReadAll(http.MaxBytesReader(w, r.Body, int64(a.cfg.maxValue)))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			a.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("value over the limit of %d bytes", a.cfg.maxValue))
			return
		case err != nil:
			a.fail(w, r, http.StatusBadRequest, "reading the request body: "+err.Error())
			return
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.requestTimeout)
	defer cancel()
	start := time.Now()
	var op string
	switch r.Method {
	case http.MethodGet:
		op = "get"
		value, err = a.cfg.store.Get(ctx, key)
	case http.MethodPut:
		op = "put"
		err = a.cfg.store.Put(ctx, key, value)
	case http.MethodPost:
		op = "append"
		err = a.cfg.store.Append(ctx, key, value)
	}
	a.metrics.observe(op, time.Since(start))
	if err != nil {
		a.storeError(w, r, op, key, err)
		return
	}
	if op == "get" {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(value)))
		w.WriteHeader(http.StatusOK)
		w.Write(value)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// storeError answers for an error of the store.
func (a *api) storeError(w http.ResponseWriter, r *http.Request, op, key string, err error) {
	switch {
	case errors.Is(err, kvstore.ErrNoKey):
		a.fail(w, r, http.StatusNotFound, "no such key")
	case errors.Is(err, kvstore.ErrEmptyKey), errors.Is(err, kvstore.ErrUnknownOp):
		a.fail(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, kvstore.ErrKeyTooLarge), errors.Is(err, kvstore.ErrValueTooLarge):
		a.fail(w, r, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		msg := fmt.Sprintf("no answer from the cluster within %v (no quorum or no leader yet?)", a.cfg.requestTimeout)
		if op != "get" {
			msg += "; the write may or may not have been applied"
		}
		a.cfg.logger.Warn("request timed out", "op", op, "key", key)
		a.unavailable(w, r, msg)
	case errors.Is(err, context.Canceled):
		a.unavailable(w, r, "request cancelled") // the client is gone; nobody reads this
	case errors.Is(err, kvstore.ErrSessionExpired):
		a.unavailable(w, r, err.Error())
	case errors.Is(err, kvstore.ErrClosed):
		a.unavailable(w, r, "node shutting down")
	default:
		a.cfg.logger.Error("request failed", "op", op, "key", key, "err", err)
		a.fail(w, r, http.StatusInternalServerError, err.Error())
	}
}

func (a *api) unavailable(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("Retry-After", "1")
	a.fail(w, r, http.StatusServiceUnavailable, msg)
}

// errorBody is the JSON form of an error.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// fail answers with an error: JSON if the client accepts it, plain text
// otherwise.
func (a *api) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(errorBody{Error: msg, Status: code})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// nodeStatus is the body of GET /status.
type nodeStatus struct {
	ID           paxos.NodeID  `json:"id"`
	Leader       paxos.NodeID  `json:"leader"` // 0: none known
	IsLeader     bool          `json:"is_leader"`
	Min          paxos.Slot    `json:"min_slot"`
	Max          paxos.Slot    `json:"max_slot"`
	Applied      paxos.Slot    `json:"applied_slot"` // the first slot not applied
	ApplyLag     uint64        `json:"apply_lag"`
	Keys         int           `json:"keys"`
	Sessions     int           `json:"sessions"`
	SnapshotSlot paxos.Slot    `json:"snapshot_slot"`
	Peers        []peerStatus  `json:"peers"`
	Metrics      statusMetrics `json:"metrics"`
}

type peerStatus struct {
	ID        paxos.NodeID `json:"id"`
	Addr      string       `json:"addr"`
	Reachable bool         `json:"reachable"`
}

type statusMetrics struct {
	Campaigns     uint64 `json:"campaigns"`
	Elected       uint64 `json:"elected"`
	Proposed      uint64 `json:"proposed"`
	Batches       uint64 `json:"batches"`
	Chosen        uint64 `json:"chosen"`
	LeaderChanges uint64 `json:"leader_changes"`
	StorageWrites uint64 `json:"storage_writes"`
	StorageSyncs  uint64 `json:"storage_syncs"`
	HTTPRequests  uint64 `json:"http_requests"`
	HTTPErrors    uint64 `json:"http_5xx"`
}

func (a *api) serveStatus(w http.ResponseWriter, r *http.Request) {
	var s nodeStatus
	if a.cfg.status != nil {
		s = a.cfg.status()
	} else {
		s = nodeStatus{ID: a.cfg.id, Peers: a.peers.list()}
		s.Metrics.HTTPRequests, s.Metrics.HTTPErrors = a.metrics.totals()
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(s)
}

func (a *api) serveMetrics(w http.ResponseWriter) {
	var p promWriter
	if a.cfg.metrics != nil {
		a.cfg.metrics(&p)
	}
	a.metrics.write(&p)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(p.b.Bytes())
}

// peerTracker keeps what the node's monitor learns: which peers answer and
// how often the leader changed.
type peerTracker struct {
	mu        sync.Mutex
	peers     []peerStatus
	leader    paxos.NodeID
	changes   uint64
	sawLeader bool
}

func newPeerTracker(self paxos.NodeID, members []paxos.Member) *peerTracker {
	t := &peerTracker{}
	for _, m := range members {
		if m.ID != self {
			t.peers = append(t.peers, peerStatus{ID: m.ID, Addr: m.Addr})
		}
	}
	return t
}

func (t *peerTracker) setReachable(id paxos.NodeID, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.peers {
		if t.peers[i].ID == id {
			t.peers[i].Reachable = ok
		}
	}
}

func (t *peerTracker) list() []peerStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]peerStatus(nil), t.peers...)
}

// observeLeader records the leader seen now (0: none); a change from one
// known leader to another counts.
func (t *peerTracker) observeLeader(id paxos.NodeID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id == 0 {
		return
	}
	if t.sawLeader && id != t.leader {
		t.changes++
	}
	t.leader, t.sawLeader = id, true
}

func (t *peerTracker) leaderChanges() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changes
}
