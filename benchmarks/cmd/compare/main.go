// Command compare measures Synod against hashicorp/raft and etcd raft on
// the same machine, in one process and one invocation.
//
// For each system and each storage case (memory, durable) it starts a 3-node
// cluster whose nodes talk over loopback TCP, drives it with closed-loop
// clients proposing fixed-size commands at the leader (1 and 64 clients by
// default), and prints throughput and latency percentiles side by side, then
// the ratios Synod / best peer. A command counts as done only once the
// leader has applied it to its state machine.
//
//	cd benchmarks && go run ./cmd/compare -duration 10s
//
// See benchmarks/README.md for every setting of every system.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options are the command-line settings of one invocation.
type options struct {
	duration     time.Duration // measured window per run
	warmup       time.Duration // unmeasured load before the window
	opTimeout    time.Duration // bound on one command
	setupTimeout time.Duration // bound on starting a cluster and electing a leader
	clients      []int
	rounds       int // times every system runs every row, interleaved
	systems      []string
	stores       []string
	size         int
	dir          string
	cpuProfile   string        // directory for one CPU profile per run, or ""
	trace        string        // directory for one execution trace per run, or ""
	diskProbe    time.Duration // length of each disk probe before the durable cases (0: none)
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	o := &options{}
	var clients, systems, stores string
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured `time` per system, store and client count")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each measured window")
	fs.DurationVar(&o.opTimeout, "op-timeout", 5*time.Second, "bound on one command; a command that takes longer counts as an error")
	fs.DurationVar(&o.setupTimeout, "setup-timeout", 20*time.Second, "bound on starting a cluster and electing its leader")
	fs.StringVar(&clients, "clients", "1,64", "comma-separated numbers of concurrent closed-loop clients")
	fs.IntVar(&o.rounds, "rounds", 1, "run every system this many `times`, interleaved, and judge the targets on the median of the per-round ratios (a busy machine moves whole rows by tens of percent)")
	fs.StringVar(&systems, "systems", "synod,hashicorp,etcd", "comma-separated systems to run")
	fs.StringVar(&stores, "stores", "memory,durable", "comma-separated storage cases: memory, durable (fsync)")
	fs.IntVar(&o.size, "size", 128, "command size in `bytes` (at least 16)")
	fs.StringVar(&o.dir, "dir", "", "parent `directory` of the durable cases' data: a new directory is made in it and kept (default: a temporary directory, removed at exit)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of each measured window into this `directory` (and the allocations, see startProfile)")
	fs.DurationVar(&o.diskProbe, "disk-probe", 2*time.Second, "`time` the disk probe runs each of its two steps (one fdatasync writer, then three) before the durable cases; 0 skips it")
	fs.StringVar(&o.trace, "trace", "", "write an execution trace of the first second of each measured window into this `directory`")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, f := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-clients: %q is not a positive number", f)
		}
		o.clients = append(o.clients, n)
	}
	for _, s := range strings.Split(systems, ",") {
		s = strings.TrimSpace(s)
		if _, ok := systemsByName[s]; !ok {
			return nil, fmt.Errorf("-systems: unknown system %q (want synod, synod-badger, hashicorp, etcd)", s)
		}
		o.systems = append(o.systems, s)
	}
	for _, s := range strings.Split(stores, ",") {
		s = strings.TrimSpace(s)
		if s != storeMemory && s != storeDurable {
			return nil, fmt.Errorf("-stores: unknown store %q (want memory, durable)", s)
		}
		o.stores = append(o.stores, s)
	}
	if o.size < minCommandSize {
		return nil, fmt.Errorf("-size must be at least %d", minCommandSize)
	}
	if o.rounds < 1 {
		return nil, errors.New("-rounds must be at least 1")
	}
	if o.duration <= 0 || o.warmup < 0 || o.opTimeout <= 0 || o.setupTimeout <= 0 || o.diskProbe < 0 {
		return nil, errors.New("-duration, -op-timeout and -setup-timeout must be positive, -warmup and -disk-probe not negative")
	}
	return o, nil
}

// Storage cases.
const (
	storeMemory  = "memory"  // logs in memory, no fsync
	storeDurable = "durable" // every acknowledged command fsynced on a majority
)

// cluster is a running 3-node cluster of one system.
type cluster interface {
	// Propose replicates cmd and returns once the leader has applied it to
	// its state machine, or with an error. It is called concurrently by
	// every client; cmd is not modified afterwards.
	Propose(ctx context.Context, cmd []byte) error
	// Close stops every node and releases sockets and files.
	Close() error
}

// startFunc starts a 3-node cluster of one system on loopback, keeping
// durable state under dir, and returns once it has a leader.
type startFunc func(ctx context.Context, store, dir string) (cluster, error)

var systemsByName = map[string]startFunc{
	"synod": func(ctx context.Context, store, dir string) (cluster, error) {
		return startSynod(ctx, store, dir, synodFileLog)
	},
	"synod-badger": func(ctx context.Context, store, dir string) (cluster, error) {
		return startSynod(ctx, store, dir, synodBadgerLog)
	},
	"hashicorp": startHashicorp,
	"etcd":      startEtcd,
}

// run starts each cluster in turn, drives it, and prints the results.
func run(o *options) error {
	// Each run gets a fresh directory: a cluster must not start on an
	// earlier run's state.
	dir, err := os.MkdirTemp(o.dir, "synod-compare-*")
	if err != nil {
		return err
	}
	if o.dir == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "compare: data in %s (kept)\n", dir)
	}
	for _, d := range []string{o.cpuProfile, o.trace} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
	}
	// Every phase is bounded; the watchdog ends the process if the sum of
	// the bounds passes anyway (a hung Close, say).
	clusters := len(o.systems) * len(o.stores) * o.rounds
	perRun := o.warmup + o.duration + o.opTimeout
	budget := time.Duration(clusters)*(2*o.setupTimeout) + time.Duration(clusters*len(o.clients))*perRun + 2*o.diskProbe + 30*time.Second
	watchdog := time.AfterFunc(budget, func() {
		fmt.Fprintf(os.Stderr, "compare: still running after %v, the sum of every phase's bound; giving up\n", budget)
		os.Exit(3)
	})
	defer watchdog.Stop()

	printHeader(o)
	if o.diskProbe > 0 && slices.Contains(o.stores, storeDurable) {
		// The probe only informs: a filesystem it cannot run on (no
		// fallocate, say) does not stop the comparison.
		if p, err := probeDisk(dir, o.diskProbe); err != nil {
			fmt.Fprintf(os.Stdout, "disk probe failed: %v\n\n", err)
		} else {
			printDisk(os.Stdout, p)
		}
	}
	var results []result
	for round := 1; round <= o.rounds; round++ {
		for _, store := range o.stores {
			for _, name := range o.systems {
				rs, err := runCluster(o, name, store, filepath.Join(dir, fmt.Sprint(round), store, name))
				if err != nil {
					return fmt.Errorf("%s/%s: %w", name, store, err)
				}
				for i := range rs {
					rs[i].round = round
				}
				results = append(results, rs...)
			}
		}
	}
	printTable(os.Stdout, results)
	printRatios(os.Stdout, results, o)
	return nil
}

// runCluster starts one cluster, runs every client count against it, and
// closes it.
func runCluster(o *options, name, store, dir string) ([]result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	runtime.GC() // leave the previous cluster's garbage out of this one's figures
	ctx, cancel := context.WithTimeout(context.Background(), o.setupTimeout)
	c, err := systemsByName[name](ctx, store, dir)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	fmt.Fprintf(os.Stderr, "%s/%s: cluster up\n", name, store)
	var results []result
	for _, n := range o.clients {
		profile := ""
		if o.cpuProfile != "" {
			profile = filepath.Join(o.cpuProfile, fmt.Sprintf("%s-%s-%d.pprof", name, store, n))
		}
		tracePath := ""
		if o.trace != "" {
			tracePath = filepath.Join(o.trace, fmt.Sprintf("%s-%s-%d.trace", name, store, n))
		}
		r := drive(c, load{
			clients: n, size: o.size, warmup: o.warmup, duration: o.duration,
			opTimeout: o.opTimeout, cpuProfile: profile, trace: tracePath,
		})
		r.system, r.store = name, store
		fmt.Fprintf(os.Stderr, "%s/%s/%d clients: %.0f ops/s, p99 %v, %d errors\n",
			name, store, n, r.opsPerSec(), r.percentile(0.99), r.errors)
		results = append(results, r)
	}
	if err := c.Close(); err != nil {
		return results, fmt.Errorf("close: %w", err)
	}
	return results, nil
}

// printHeader writes what the run measures and on what machine.
func printHeader(o *options) {
	fmt.Printf("compare: 3-node clusters on 127.0.0.1, %d-byte commands, closed-loop clients at the leader\n", o.size)
	fmt.Printf("warmup %v, measured %v per row, %d round(s); %s, GOMAXPROCS=%d, NumCPU=%d\n",
		o.warmup, o.duration, o.rounds, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	if bi, ok := debug.ReadBuildInfo(); ok {
		want := []string{"github.com/hashicorp/raft", "github.com/hashicorp/raft-boltdb/v2", "go.etcd.io/raft/v3", "github.com/dgraph-io/badger/v4"}
		var vs []string
		for _, d := range bi.Deps {
			if slices.Contains(want, d.Path) {
				vs = append(vs, d.Path+"@"+d.Version)
			}
		}
		fmt.Printf("versions: %s\n", strings.Join(vs, " "))
	}
	fmt.Println()
}
