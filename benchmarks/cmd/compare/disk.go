package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// diskProbe is what the disk under the durable cases' data can do: small
// appends, each followed by an fdatasync, first by one writer and then by
// three at once (one per node, as in the durable runs, where the three
// nodes of a cluster share this disk).
type diskProbe struct {
	one, three probeRun
}

// probeRun is one probe's figures.
type probeRun struct {
	writers int
	syncs   int           // fdatasyncs completed, all writers together
	elapsed time.Duration // the probe's length
	p50     time.Duration // of one append+fdatasync
	p99     time.Duration
}

// rate is the fdatasyncs per second of all writers together.
func (r probeRun) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.syncs) / r.elapsed.Seconds()
}

// probeRecord is the size of each append: about one small command's
// accepted record.
const probeRecord = 256

// probeDisk measures fdatasyncs in dir for d with one writer, then d with
// three.
func probeDisk(dir string, d time.Duration) (diskProbe, error) {
	var p diskProbe
	var err error
	if p.one, err = probeWriters(dir, 1, d); err != nil {
		return p, err
	}
	p.three, err = probeWriters(dir, 3, d)
	return p, err
}

// probeWriters runs n writers for d, each appending probeRecord bytes to
// its own preallocated file in dir and fdatasyncing after every append, as
// a log does for every write it acknowledges.
func probeWriters(dir string, n int, d time.Duration) (probeRun, error) {
	r := probeRun{writers: n}
	lat := make([][]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[i], errs[i] = probeWriter(filepath.Join(dir, fmt.Sprintf("probe-%d-%d", n, i)), start.Add(d))
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	r.syncs = len(all)
	r.p50, r.p99 = nearestRank(all, 0.50), nearestRank(all, 0.99)
	return r, nil
}

// probeWriter appends and fdatasyncs until end, and returns the latency of
// each append+fdatasync. The file is removed afterwards.
func probeWriter(path string, end time.Time) (lat []time.Duration, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() {
		err = errors.Join(err, f.Close(), os.Remove(path))
	}()
	const size = 16 << 20 // reused from the start when full: more than 2 s of appends
	if err := preallocate(f, size); err != nil {
		return nil, err
	}
	if err := fdatasync(f); err != nil {
		return nil, err
	}
	rec := make([]byte, probeRecord)
	var off int64
	for time.Now().Before(end) {
		t := time.Now()
		if _, err := f.WriteAt(rec, off); err != nil {
			return lat, err
		}
		if err := fdatasync(f); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t))
		off = (off + probeRecord) % size
	}
	return lat, nil
}

// printDisk writes the probe's figures and what they bound: a command is
// durable on a majority of three only once two nodes have fdatasynced it,
// and with one client (one command at a time) no two commands share an
// fdatasync on those two, so no system can make more commands durable per
// second than the three writers' rate over two. (The third node may lag
// and group several commands into one fdatasync, so three per command is
// no bound.)
func printDisk(w io.Writer, p diskProbe) {
	fmt.Fprintf(w, "disk (durable data's filesystem), %d-byte appends each followed by fdatasync:\n", probeRecord)
	for _, r := range []probeRun{p.one, p.three} {
		fmt.Fprintf(w, "  %d writer(s): %.0f fdatasyncs/s in all, p50 %v, p99 %v each\n",
			r.writers, r.rate(), formatLatency(r.p50), formatLatency(r.p99))
	}
	fmt.Fprintf(w, "  at 1 client, durable on 2 of 3 nodes: at most %.0f commands/s\n", p.three.rate()/2)
	fmt.Fprintln(w)
}
