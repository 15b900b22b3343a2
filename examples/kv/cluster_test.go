package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePortRange returns the first of n consecutive free TCP ports on
// 127.0.0.1 (free when checked; the caller binds them soon after).
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(30000)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		ok := len(lns) == n
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getStatus reads a node's /status.
func getStatus(base string) (nodeStatus, error) {
	var s nodeStatus
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("status %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// proposedTotal sums the paxos Proposed counters of the nodes.
func proposedTotal(t *testing.T, urls []string) uint64 {
	t.Helper()
	var sum uint64
	for _, u := range urls {
		s, err := getStatus(u)
		if err != nil {
			t.Fatal(err)
		}
		sum += s.Metrics.Proposed
	}
	return sum
}

// startLocalCluster runs runCluster as kv does with args, and returns the
// node URLs and a stop function that checks a clean shutdown.
func startLocalCluster(t *testing.T, args []string) (urls []string, stop func()) {
	t.Helper()
	cfg, err := parseClusterArgs(args, t.Output())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	go func() { done <- runCluster(ctx, cfg, logger, out) }()
	waitFor(t, 20*time.Second, "the banner", func() bool {
		select {
		case err := <-done:
			t.Fatalf("runCluster: %v", err)
		default:
		}
		return strings.Contains(out.String(), "Try")
	})
	for i := range cfg.nodes {
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", cfg.httpPort+i))
	}
	for _, u := range urls {
		if !strings.Contains(out.String(), u) {
			t.Errorf("the banner does not show %s:\n%s", u, out)
		}
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runCluster after Ctrl-C: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the cluster did not stop within 30s")
		}
		if !strings.Contains(out.String(), "stopped; the data stays in") {
			t.Errorf("no goodbye:\n%s", out)
		}
	}
	t.Cleanup(stop)
	return urls, stop
}

// TestLocalCluster runs the local cluster of "go run ./examples/kv" in this
// process: the CLI against it, bad requests that must propose nothing (as
// the nodes' paxos counters show), a clean shutdown, and a restart that
// finds the data.
func TestLocalCluster(t *testing.T) {
	base := freePortRange(t, 6)
	args := []string{"-data", t.TempDir(), "-paxos-port", strconv.Itoa(base), "-http-port", strconv.Itoa(base + 3), "-max-value", "4096", "-request-timeout", "10s"}
	t.Logf("ports %d-%d", base, base+5)

	// Node 2's HTTP port is taken: the cluster does not start, and node 1
	// releases what it had opened (its directory, its ports).
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+4))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseClusterArgs(args, t.Output())
	if err != nil {
		t.Fatal(err)
	}
	err = runCluster(t.Context(), cfg, slog.New(slog.DiscardHandler), io.Discard)
	ln.Close()
	if err == nil || !strings.Contains(err.Error(), "node 2: HTTP") {
		t.Fatalf("runCluster with a port taken: %v", err)
	}

	urls, stop := startLocalCluster(t, args)
	ctx := t.Context()
	client := func(op, key, value string, nodes []string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		cfg := clientConfig{op: op, key: key, value: value, hasValue: op != "get", nodes: nodes, timeout: 10 * time.Second}
		err := runClient(ctx, cfg, nil, &out)
		return out.String(), err
	}
	if _, err := client("put", "greeting", "hello", urls[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := client("append", "greeting", ", world", urls[1:2]); err != nil {
		t.Fatal(err)
	}
	// The first node is down: get moves on to the next.
	if v, err := client("get", "greeting", "", []string{"http://127.0.0.1:1", urls[2]}); err != nil || v != "hello, world" {
		t.Fatalf("get = %q, %v", v, err)
	}
	if _, err := client("get", "nothing", "", urls); !errors.Is(err, errNoKey) {
		t.Fatalf("get of a missing key: %v, want errNoKey", err)
	}
	// An append is not retried elsewhere unless the node was unreachable.
	if _, err := client("append", "greeting", "!", []string{"http://127.0.0.1:1", urls[0]}); err != nil {
		t.Fatal(err)
	}

	before := proposedTotal(t, urls)
	big := strings.Repeat("k", 1025)
	for _, u := range urls {
		for i := range badRequests(big) {
			sendBad(t, u, i, big)
		}
	}
	if after := proposedTotal(t, urls); after != before {
		t.Errorf("bad requests proposed %d values", after-before)
	}

	s, err := getStatus(urls[0])
	if err != nil || s.ID != 1 || s.Leader == 0 || s.Applied == 0 || len(s.Peers) != 2 {
		t.Errorf("status: %+v, %v", s, err)
	}
	waitFor(t, 5*time.Second, "peers reachable", func() bool {
		s, err := getStatus(urls[0])
		return err == nil && s.Peers[0].Reachable && s.Peers[1].Reachable
	})
	resp, err := http.Get(urls[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	checkExposition(t, metrics.String())
	for _, name := range []string{"synod_paxos_chosen_total", "synod_kv_apply_lag_slots", "synod_storage_syncs_total", "synod_storage_sync_duration_seconds_bucket{le=\"+Inf\"}", "synod_peer_up{peer=\"1\""} {
		if !strings.Contains(metrics.String(), name) {
			t.Errorf("metrics lack %s", name)
		}
	}

	stop()
	urls, _ = startLocalCluster(t, args)
	if v, err := client("get", "greeting", "", urls); err != nil || v != "hello, world!" {
		t.Fatalf("after a restart: get = %q, %v", v, err)
	}
}

// TestServeTLS runs three kv serve nodes (in this process, as the serve
// command does) whose transport uses mutual TLS from PEM files.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	if code := run(t.Context(), []string{"certs", "--dir", dir, "node1", "node2", "node3"}, nil, io.Discard, t.Output()); code != 0 {
		t.Fatalf("kv certs: exit status %d", code)
	}
	base := freePortRange(t, 6)
	peers := fmt.Sprintf("1=127.0.0.1:%d,2=127.0.0.1:%d,3=127.0.0.1:%d", base, base+1, base+2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 3)
	var urls []string
	for i := 1; i <= 3; i++ {
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", base+2+i))
		cfg, err := parseServeArgs([]string{
			"--id", strconv.Itoa(i), "--peers", peers, "--data", filepath.Join(dir, fmt.Sprintf("data%d", i)),
			"--http", strings.TrimPrefix(urls[i-1], "http://"), "--tls-ca", filepath.Join(dir, "ca.crt"),
			"--tls-cert", filepath.Join(dir, fmt.Sprintf("node%d.crt", i)), "--tls-key", filepath.Join(dir, fmt.Sprintf("node%d.key", i)),
		}, t.Output())
		if err != nil {
			t.Fatal(err)
		}
		logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
		go func() { done <- runServe(ctx, cfg, logger, io.Discard) }()
	}
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			for range 3 {
				<-done
			}
		}
	}()
	waitFor(t, 20*time.Second, "a leader", func() bool {
		for _, u := range urls {
			if s, err := getStatus(u); err != nil || s.Leader == 0 {
				return false
			}
		}
		return true
	})
	var out bytes.Buffer
	put := clientConfig{op: "put", key: "k", value: "over TLS", hasValue: true, nodes: urls[2:], timeout: 20 * time.Second}
	if err := runClient(ctx, put, nil, &out); err != nil {
		t.Fatal(err)
	}
	if err := runClient(ctx, clientConfig{op: "get", key: "k", nodes: urls[:1], timeout: 10 * time.Second}, nil, &out); err != nil || out.String() != "over TLS" {
		t.Fatalf("get = %q, %v", out.String(), err)
	}
	cancel()
	stopped = true
	for range 3 {
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}
