package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// minCommandSize leaves room for the 8-byte request id every command starts
// with, and a little payload.
const minCommandSize = 16

// load is one closed-loop run against a cluster.
type load struct {
	clients    int
	size       int           // command size in bytes
	warmup     time.Duration // load before the measured window, not counted
	duration   time.Duration // the measured window
	opTimeout  time.Duration // bound on one command
	cpuProfile string        // file for a CPU profile of the window, or ""
	trace      string        // file for an execution trace of the window's first second, or ""
}

// result is what one run measured.
type result struct {
	system, store string
	clients       int
	round         int             // which of -rounds, from 1
	ops           int             // commands started and finished inside the window
	window        time.Duration   // the measured window
	latencies     []time.Duration // of those commands, sorted
	cpu           time.Duration   // process CPU time (user+system) during the window
	errors        int             // failed commands over the whole run, warmup included
	firstErr      error
}

func (r result) opsPerSec() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.ops) / r.window.Seconds()
}

// percentile returns the latency at or below which a fraction p of the
// measured commands finished (nearest rank), or 0 without commands.
func (r result) percentile(p float64) time.Duration { return nearestRank(r.latencies, p) }

// nearestRank returns the nearest-rank p-quantile (0 < p <= 1) of sorted,
// or 0 if it is empty.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(n))) - 1
	return sorted[min(max(i, 0), n-1)]
}

// cpuPerOp is the process CPU time per measured command: all three nodes
// and the clients together.
func (r result) cpuPerOp() time.Duration {
	if r.ops == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.ops)
}

// requestIDs numbers commands across every run, so every command is unique
// (Synod and etcd raft rely on it: see their Propose).
var requestIDs atomic.Uint64

// newCommand returns a fresh command of size bytes: the request id,
// big-endian, then filler. Each command gets its own slice because the
// systems keep it (in their logs) after Propose returns.
func newCommand(size int) []byte {
	cmd := make([]byte, size)
	binary.BigEndian.PutUint64(cmd, requestIDs.Add(1))
	for i := 8; i < size; i++ {
		cmd[i] = byte('a' + i%26)
	}
	return cmd
}

// commandID returns the request id a command starts with.
func commandID(cmd []byte) (uint64, bool) {
	if len(cmd) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(cmd), true
}

// drive runs l.clients closed-loop clients against c: each proposes a
// command, waits until c says it is applied on the leader, and proposes the
// next. Clients run for l.warmup, then l.duration is measured; a command
// counts if it both starts and finishes inside the window. Every client stops
// at the end of the window (a command in flight then is abandoned after at
// most l.opTimeout).
func drive(c cluster, l load) result {
	start := time.Now()
	from := start.Add(l.warmup)
	to := from.Add(l.duration)
	ctx, cancel := context.WithDeadline(context.Background(), to.Add(l.opTimeout))
	defer cancel()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		errs     int
		firstErr error
	)
	for range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			nerr := 0
			var ferr error
			for {
				t0 := time.Now()
				if !t0.Before(to) {
					break
				}
				err := c.Propose(ctx, newCommand(l.size))
				t1 := time.Now()
				if err != nil {
					nerr++
					if ferr == nil {
						ferr = err
					}
					if ctx.Err() != nil {
						break
					}
					time.Sleep(10 * time.Millisecond) // pace retries against a cluster in trouble
					continue
				}
				if !t0.Before(from) && !t1.After(to) {
					lat = append(lat, t1.Sub(t0))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			errs += nerr
			if firstErr == nil {
				firstErr = ferr
			}
			mu.Unlock()
		}()
	}

	// Measure CPU time (and profile, if asked) over the window only.
	var cpu time.Duration
	windowDone := make(chan struct{})
	go func() {
		defer close(windowDone)
		time.Sleep(time.Until(from))
		var stop func()
		if l.cpuProfile != "" {
			stop = startProfile(l.cpuProfile)
		}
		if l.trace != "" {
			if stopTrace := startTrace(l.trace); stopTrace != nil {
				time.AfterFunc(min(time.Second, time.Until(to)), stopTrace)
			}
		}
		c0 := processCPU()
		time.Sleep(time.Until(to))
		cpu = processCPU() - c0
		if stop != nil {
			stop()
		}
	}()
	wg.Wait()
	<-windowDone

	slices.Sort(all)
	return result{
		clients: l.clients, ops: len(all), window: l.duration, latencies: all,
		cpu: cpu, errors: errs, firstErr: firstErr,
	}
}

// processCPU returns the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startTrace starts an execution trace into path and returns the function
// that stops it. A failure is reported and the run goes on untraced.
func startTrace(path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare: trace:", err)
		return nil
	}
	if err := trace.Start(f); err != nil {
		fmt.Fprintln(os.Stderr, "compare: trace:", err)
		f.Close()
		return nil
	}
	return func() {
		trace.Stop()
		f.Close()
	}
}

// startProfile starts a CPU profile into path and returns the function that
// stops it. A failure is reported and the run goes on unprofiled. It also
// writes the allocation profile at the start and at the end of the window,
// into path.allocs0 and path.allocs: "go tool pprof -sample_index
// alloc_objects -base path.allocs0 path.allocs" shows the window's
// allocations.
func startProfile(path string) (stop func()) {
	writeAllocs(path + ".allocs0")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare: cpuprofile:", err)
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "compare: cpuprofile:", err)
		f.Close()
		return nil
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		writeAllocs(path + ".allocs")
	}
}

// writeAllocs writes the allocation profile so far into path; a failure is
// reported and otherwise ignored.
func writeAllocs(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare: allocation profile:", err)
	}
}
