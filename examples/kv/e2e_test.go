package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// e2eCluster is a cluster of real kv serve processes on loopback.
type e2eCluster struct {
	t     *testing.T
	bin   string
	dir   string
	peers string
	urls  []string
	procs []*exec.Cmd // nil: not running
}

// buildKV builds the kv binary into a temporary directory.
func buildKV(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build kv with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "kv")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race") // the nodes run under the race detector too
	}
	start := time.Now()
	out, err := exec.Command(goBin, append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s (race detector: %v) in %v", bin, raceEnabled, time.Since(start).Round(time.Millisecond))
	return bin
}

func newE2ECluster(t *testing.T, n int) *e2eCluster {
	c := &e2eCluster{t: t, bin: buildKV(t), dir: t.TempDir(), procs: make([]*exec.Cmd, n)}
	base := freePortRange(t, 2*n)
	var peers []string
	for i := range n {
		peers = append(peers, fmt.Sprintf("%d=127.0.0.1:%d", i+1, base+i))
		c.urls = append(c.urls, fmt.Sprintf("http://127.0.0.1:%d", base+n+i))
	}
	c.peers = strings.Join(peers, ",")
	t.Logf("kv serve processes: paxos %s, HTTP %s, data and logs in %s", c.peers, strings.Join(c.urls, ","), c.dir)
	t.Cleanup(func() {
		for i := range c.procs {
			c.kill(i)
		}
		for i := range c.procs {
			if b, _ := os.ReadFile(c.logPath(i)); bytes.Contains(b, []byte("WARNING: DATA RACE")) {
				t.Errorf("node %d: the race detector found a data race (see its log)", i+1)
			}
		}
		if t.Failed() || os.Getenv("KV_E2E_LOGS") != "" {
			for i := range c.procs {
				c.dumpLog(i)
			}
		}
	})
	for i := range n {
		c.start(i)
	}
	return c
}

func (c *e2eCluster) logPath(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("node%d.log", i+1))
}

// start starts node i (from 0) from its directory.
func (c *e2eCluster) start(i int) {
	c.t.Helper()
	logf, err := os.OpenFile(c.logPath(i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(c.bin, "serve", "--id", strconv.Itoa(i+1), "--peers", c.peers,
		"--data", filepath.Join(c.dir, fmt.Sprintf("node%d", i+1)), "--http", strings.TrimPrefix(c.urls[i], "http://"),
		"--request-timeout", "3s", "--snapshot-every", "300", "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[i] = cmd
}

// kill kills node i with SIGKILL and reaps it.
func (c *e2eCluster) kill(i int) {
	if cmd := c.procs[i]; cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
		c.procs[i] = nil
	}
}

func (c *e2eCluster) dumpLog(i int) {
	b, _ := os.ReadFile(c.logPath(i))
	if len(b) > 16000 {
		b = b[len(b)-16000:]
	}
	c.t.Logf("node %d log (tail):\n%s", i+1, b)
}

// leader waits until every running node names the same leader, one that
// says it leads, and returns its index.
func (c *e2eCluster) leader(d time.Duration) int {
	c.t.Helper()
	leader := -1
	waitFor(c.t, d, "an agreed leader", func() bool {
		leader = -1
		var named []int
		for i, u := range c.urls {
			if c.procs[i] == nil {
				continue
			}
			s, err := getStatus(u)
			if err != nil || s.Leader == 0 {
				return false
			}
			named = append(named, int(s.Leader)-1)
			if s.IsLeader {
				leader = i
			}
		}
		for _, l := range named {
			if l != leader {
				return false
			}
		}
		return leader >= 0
	})
	return leader
}

// e2eKeys: the first half only ever gets appends (so every acknowledged
// append must show up in the final value), the rest puts and appends.
var e2eKeys = []string{"a0", "a1", "a2", "m0", "m1", "m2"}

// e2eCounts tallies the outcomes of the load's operations.
type e2eCounts struct{ ok, unknown, unsent, failedGets atomic.Int64 }

// e2eWorker is one client of the load: it sends each operation to a node
// picked at random, and pauses briefly after a failure.
func e2eWorker(ctx context.Context, t *testing.T, id int, seed int64, urls []string, h *history, acked *sync.Map, counts *e2eCounts) {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(id)))
	hc := &http.Client{Timeout: 6 * time.Second}
	for seq := 0; ctx.Err() == nil; seq++ {
		node := urls[r.IntN(len(urls))]
		key := e2eKeys[r.IntN(len(e2eKeys))]
		in := kvInput{Op: kvGet, Key: key}
		switch p := r.Float64(); {
		case p < 0.4:
		case key[0] == 'm' && p < 0.7:
			in.Op, in.Value = kvPut, fmt.Sprintf("p%d.%d;", id, seq)
		default:
			in.Op, in.Value = kvAppend, fmt.Sprintf("w%d.%d;", id, seq)
		}
		call := h.now()
		code, body, err := httpKV(hc, node, in)
		ret := h.now()
		switch {
		case err != nil && notSent(err):
			counts.unsent.Add(1) // never reached the node: nothing happened
		case in.Op == kvGet && (code == 200 || code == 404):
			h.add(id, in, getOutput(code, body), call, ret)
			counts.ok.Add(1)
			continue
		case in.Op == kvGet:
			counts.failedGets.Add(1) // a read without an answer constrains nothing
		case code == 204:
			h.add(id, in, kvOutput{}, call, ret)
			acked.Store(in.Value, in.Key)
			counts.ok.Add(1)
			continue
		case err == nil && code != 503:
			t.Errorf("%v %s: unexpected status %d: %s", in.Op, key, code, body)
		default:
			h.addUnknown(id, in, call) // timed out or cut off: may or may not apply
			counts.unknown.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// getOutput is the outcome of a get answered with code (200 or 404).
func getOutput(code int, body string) kvOutput {
	if code != 200 {
		return kvOutput{} // 404: the body is the error message
	}
	return kvOutput{Value: body, Found: true}
}

// httpKV runs one operation against a node's HTTP API.
func httpKV(hc *http.Client, node string, in kvInput) (int, string, error) {
	method := map[kvOpKind]string{kvGet: "GET", kvPut: "PUT", kvAppend: "POST"}[in.Op]
	var body io.Reader
	if in.Op != kvGet {
		body = strings.NewReader(in.Value)
	}
	req, err := http.NewRequest(method, node+"/kv/"+in.Key, body)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestEndToEndKillLeader runs three kv serve processes, writes through
// HTTP with concurrent clients, kill -9s the leader's process mid-load,
// restarts it from its directory, and checks that every acknowledged write
// is readable from every node, that no append was applied twice, and that
// the history is linearizable.
func TestEndToEndKillLeader(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("KV_E2E_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (KV_E2E_SEED=%d reproduces the operation choices)", seed, seed)
	c := newE2ECluster(t, 3)
	c.leader(20 * time.Second)

	h := newHistory()
	var acked sync.Map // written value -> key
	var counts e2eCounts
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	const workers = 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { e2eWorker(ctx, t, w, seed, c.urls, h, &acked, &counts) })
	}
	phase := 2 * time.Second
	time.Sleep(phase) // load runs meanwhile
	victim := c.leader(10 * time.Second)
	t.Logf("kill -9 the leader, node %d, after %d operations", victim+1, len(h.operations()))
	c.kill(victim)
	time.Sleep(phase)
	c.start(victim)
	t.Logf("restarted node %d", victim+1)
	waitFor(t, 20*time.Second, "the restarted node to serve", func() bool {
		_, err := getStatus(c.urls[victim])
		return err == nil
	})
	time.Sleep(phase)
	stopLoad()
	wg.Wait()
	leaderNow := c.leader(20 * time.Second)
	t.Logf("load done: %d operations answered, %d writes with unknown outcome, %d not sent (node down), %d gets failed; leader now node %d",
		counts.ok.Load(), counts.unknown.Load(), counts.unsent.Load(), counts.failedGets.Load(), leaderNow+1)

	// Every node reads every key (through the log, like any read).
	hc := &http.Client{Timeout: 15 * time.Second}
	final := make(map[string][]string)
	for i, u := range c.urls {
		for _, key := range e2eKeys {
			in := kvInput{Op: kvGet, Key: key}
			call := h.now()
			code, body, err := httpKV(hc, u, in)
			if err != nil || (code != 200 && code != 404) {
				t.Fatalf("node %d: get %s: %d %q %v", i+1, key, code, body, err)
			}
			out := getOutput(code, body)
			h.add(workers+i, in, out, call, h.now())
			final[key] = append(final[key], out.Value)
		}
	}
	for i, u := range c.urls {
		if s, err := getStatus(u); err == nil {
			t.Logf("node %d: applied %d, min %d, snapshot at %d, keys %d, sessions %d", i+1, s.Applied, s.Min, s.SnapshotSlot, s.Keys, s.Sessions)
		}
	}
	for key, vals := range final {
		for i, v := range vals[1:] {
			if v != vals[0] {
				t.Errorf("%s: node %d reads %q, node 1 reads %q", key, i+2, short(v), short(vals[0]))
			}
		}
	}
	nAcked := 0
	acked.Range(func(v, k any) bool {
		nAcked++
		tok, key := v.(string), k.(string) // a written value, its key
		if key[0] == 'a' && strings.Count(final[key][0], tok) != 1 {
			t.Errorf("acknowledged append %q to %s appears %d times in the final value", tok, key, strings.Count(final[key][0], tok))
		}
		return true
	})
	for _, key := range e2eKeys {
		for tok := range strings.SplitSeq(strings.TrimSuffix(final[key][0], ";"), ";") {
			if tok != "" && strings.Count(final[key][0], tok+";") > 1 {
				t.Errorf("%s: %q applied more than once", key, tok)
			}
		}
	}
	if nAcked == 0 {
		t.Fatal("no write was acknowledged")
	}

	ops := h.operations()
	res, info := porcupine.CheckOperationsVerbose(kvModel(), ops, time.Minute)
	t.Logf("porcupine: %d operations (%d writes acknowledged): %s", len(ops), nAcked, res)
	if res != porcupine.Ok {
		var buf bytes.Buffer
		if err := porcupine.Visualize(kvModel(), info, &buf); err == nil {
			path := filepath.Join(os.TempDir(), fmt.Sprintf("kv-e2e-%d.html", seed))
			if os.WriteFile(path, buf.Bytes(), 0o644) == nil {
				t.Logf("visualization: %s", path)
			}
		}
		if b, err := json.Marshal(ops); err == nil {
			path := filepath.Join(os.TempDir(), fmt.Sprintf("kv-e2e-%d.json", seed))
			if os.WriteFile(path, b, 0o644) == nil {
				t.Logf("history: %s", path)
			}
		}
		t.Fatalf("history is not linearizable (%s); seed %d", res, seed)
	}
}
