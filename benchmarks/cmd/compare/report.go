package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// printTable writes one row per run, grouped by store and client count
// (and, with several rounds, in round order within each group).
func printTable(w io.Writer, results []result) {
	rounds := 1
	for _, r := range results {
		rounds = max(rounds, r.round)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "store\tclients\tsystem\tops/s\tp50\tp99\tp99.9\tcpu/op\terrors\t"
	if rounds > 1 {
		head = "store\tclients\tround\tsystem\tops/s\tp50\tp99\tp99.9\tcpu/op\terrors\t"
	}
	fmt.Fprintln(tw, head)
	for _, r := range ordered(results) {
		if rounds > 1 {
			fmt.Fprintf(tw, "%s\t%d\t%d\t", r.store, r.clients, r.round)
		} else {
			fmt.Fprintf(tw, "%s\t%d\t", r.store, r.clients)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n",
			r.system, r.opsPerSec(),
			formatLatency(r.percentile(0.50)), formatLatency(r.percentile(0.99)),
			formatLatency(r.percentile(0.999)), formatLatency(r.cpuPerOp()), r.errors)
	}
	tw.Flush()
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(w, "first error of %s/%s/%d clients (round %d): %v\n", r.system, r.store, r.clients, r.round, r.firstErr)
		}
	}
	fmt.Fprintln(w)
}

// ratio is Synod against the better of the two peers in one round of one
// row: throughput against the higher, p99 against the lower.
type ratio struct {
	ops, p99         float64
	opsPeer, p99Peer string
}

// roundRatio compares Synod with the best peer among rs, the results of
// one round of one row. ok is false without Synod or a peer.
func roundRatio(rs []*result) (r ratio, ok bool) {
	var synod, bestOps, bestP99 *result
	for _, x := range rs {
		if x.ops == 0 {
			continue
		}
		if x.system == "synod" {
			synod = x
			continue
		}
		if strings.HasPrefix(x.system, "synod") {
			continue // a variant of Synod, not a peer
		}
		if bestOps == nil || x.opsPerSec() > bestOps.opsPerSec() {
			bestOps = x
		}
		if bestP99 == nil || x.percentile(0.99) < bestP99.percentile(0.99) {
			bestP99 = x
		}
	}
	if synod == nil || bestOps == nil {
		return ratio{}, false
	}
	return ratio{
		ops:     synod.opsPerSec() / bestOps.opsPerSec(),
		p99:     float64(synod.percentile(0.99)) / float64(bestP99.percentile(0.99)),
		opsPeer: bestOps.system, p99Peer: bestP99.system,
	}, true
}

// median returns the middle of xs (the mean of the two middle ones for an
// even count); xs is sorted in place.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// printRatios writes, for each store and client count, Synod's throughput
// and p99 against the better of the two peers, and whether the targets of
// issue 7 are met (ops/s ≥ 2× the best peer's, p99 ≤ the best peer's).
// Each round is compared within itself, so that the machine's drift
// between rounds cancels out; with several rounds the verdict is on the
// median ratio, and every round's ratio is listed after it.
func printRatios(w io.Writer, results []result, o *options) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "store\tclients\tops/s synod/best peer (target ≥ 2)\t\tp99 synod/best peer (target ≤ 1)\t")
	for _, store := range o.stores {
		for _, n := range o.clients {
			var ops, p99 []float64
			var opsPeers, p99Peers []string
			for round := 1; round <= o.rounds; round++ {
				var rs []*result
				for i := range results {
					if r := &results[i]; r.store == store && r.clients == n && r.round == round {
						rs = append(rs, r)
					}
				}
				if r, ok := roundRatio(rs); ok {
					ops, p99 = append(ops, r.ops), append(p99, r.p99)
					opsPeers, p99Peers = append(opsPeers, r.opsPeer), append(p99Peers, r.p99Peer)
				}
			}
			if len(ops) == 0 {
				fmt.Fprintf(tw, "%s\t%d\tn/a (needs synod and a peer with results)\t\t\t\n", store, n)
				continue
			}
			opsEach, p99Each := formatRatios(ops), formatRatios(p99)
			opsMed, p99Med := median(ops), median(p99)
			fmt.Fprintf(tw, "%s\t%d\t%.2f× (vs %s%s)\t%s\t%.2f× (vs %s%s)\t%s\n",
				store, n, opsMed, peers(opsPeers), opsEach, verdict(opsMed >= 2),
				p99Med, peers(p99Peers), p99Each, verdict(p99Med <= 1))
		}
	}
	tw.Flush()
}

// formatRatios lists the rounds' ratios, in round order, for a summary
// line; it is empty for a single round.
func formatRatios(xs []float64) string {
	if len(xs) < 2 {
		return ""
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return "; rounds " + strings.Join(parts, ", ")
}

// peers names the best peer, or the peers, of the rounds.
func peers(names []string) string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, "/")
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
