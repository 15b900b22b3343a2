package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestProbeDisk: the probe completes fdatasyncs with one and with three
// writers, leaves no file behind, and prints a bound of the three writers'
// rate over two.
func TestProbeDisk(t *testing.T) {
	dir := t.TempDir()
	p, err := probeDisk(dir, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []probeRun{p.one, p.three} {
		if r.syncs == 0 || r.rate() <= 0 || r.p50 <= 0 || r.p99 < r.p50 {
			t.Errorf("%d writer(s): %+v", r.writers, r)
		}
	}
	if p.one.writers != 1 || p.three.writers != 3 {
		t.Errorf("writers %d and %d, want 1 and 3", p.one.writers, p.three.writers)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Errorf("probe left %d files (%v)", len(left), err)
	}
	var buf bytes.Buffer
	printDisk(&buf, diskProbe{
		one:   probeRun{writers: 1, syncs: 6000, elapsed: time.Second, p50: 150 * time.Microsecond, p99: 400 * time.Microsecond},
		three: probeRun{writers: 3, syncs: 6000, elapsed: time.Second, p50: 450 * time.Microsecond, p99: 2 * time.Millisecond},
	})
	if out := buf.String(); !strings.Contains(out, "at most 3000 commands/s") {
		t.Errorf("bound not printed as the three writers' rate over two:\n%s", out)
	}
}
