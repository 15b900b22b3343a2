package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printTable writes one row per run, grouped by store and client count.
func printTable(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "store\tclients\tsystem\tops/s\tp50\tp99\tp99.9\tcpu/op\terrors\t")
	for _, r := range ordered(results) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n",
			r.store, r.clients, r.system, r.opsPerSec(),
			formatLatency(r.percentile(0.50)), formatLatency(r.percentile(0.99)),
			formatLatency(r.percentile(0.999)), formatLatency(r.cpuPerOp()), r.errors)
	}
	tw.Flush()
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(w, "first error of %s/%s/%d clients: %v\n", r.system, r.store, r.clients, r.firstErr)
		}
	}
	fmt.Fprintln(w)
}

// printRatios writes, for each store and client count, Synod's throughput
// and p99 against the better of the two peers, and whether the targets of
// issue 7 are met (ops/s ≥ 2× the best peer's, p99 ≤ the best peer's).
func printRatios(w io.Writer, results []result, o *options) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "store\tclients\tops/s synod/best peer (target ≥ 2)\t\tp99 synod/best peer (target ≤ 1)\t")
	for _, store := range o.stores {
		for _, n := range o.clients {
			var synod, bestOps, bestP99 *result
			for i := range results {
				r := &results[i]
				if r.store != store || r.clients != n || r.ops == 0 {
					continue
				}
				if r.system == "synod" {
					synod = r
					continue
				}
				if strings.HasPrefix(r.system, "synod") {
					continue // a variant of Synod, not a peer
				}
				if bestOps == nil || r.opsPerSec() > bestOps.opsPerSec() {
					bestOps = r
				}
				if bestP99 == nil || r.percentile(0.99) < bestP99.percentile(0.99) {
					bestP99 = r
				}
			}
			if synod == nil || bestOps == nil {
				fmt.Fprintf(tw, "%s\t%d\tn/a (needs synod and a peer with results)\t\t\t\n", store, n)
				continue
			}
			opsRatio := synod.opsPerSec() / bestOps.opsPerSec()
			p99Ratio := float64(synod.percentile(0.99)) / float64(bestP99.percentile(0.99))
			fmt.Fprintf(tw, "%s\t%d\t%.2f× (vs %s)\t%s\t%.2f× (vs %s)\t%s\n",
				store, n, opsRatio, bestOps.system, verdict(opsRatio >= 2),
				p99Ratio, bestP99.system, verdict(p99Ratio <= 1))
		}
	}
	tw.Flush()
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

// ordered returns the results grouped by store and client count, in the
// order they ran.
func ordered(results []result) []result {
	var out []result
	seen := map[string]bool{}
	for _, r := range results {
		key := fmt.Sprintf("%s/%d", r.store, r.clients)
		if seen[key] {
			continue
		}
		seen[key] = true
		for _, s := range results {
			if s.store == r.store && s.clients == r.clients {
				out = append(out, s)
			}
		}
	}
	return out
}

// formatLatency prints microseconds below 10 ms and milliseconds above.
func formatLatency(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}
