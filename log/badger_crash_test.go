package log_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synod-go/synod/log"
)

// crashDirEnv names the directory the helper process writes to.
const crashDirEnv = "SYNOD_LOG_CRASH_HELPER_DIR"

func crashValue(s uint64) []byte { return fmt.Appendf(nil, "crash-value-%d", s) }

// TestBadgerCrashHelper is not a test: TestBadgerCrashKeepsAckedWrites runs
// the test binary again with crashDirEnv set, and this writes records to
// that directory, printing each acknowledged slot, until it is killed. It
// never closes the database.
func TestBadgerCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestBadgerCrashKeepsAckedWrites")
	}
	db, err := log.OpenBadger(dir, log.BadgerOptions{})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	l, err := db.Log("accepted")
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	ctx := context.Background()
	for s := uint64(0); s < 100_000; s++ { // bounded, in case the parent is gone
		if err := l.Write(ctx, log.Record{Slot: s, Value: crashValue(s)}); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", s)
		if s == 100 {
			if err := l.TruncateBelow(ctx, 40); err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(1)
			}
			fmt.Printf("truncated 40\n")
		}
	}
	os.Exit(0)
}

// TestBadgerCrashKeepsAckedWrites kills (SIGKILL) a process in the middle of
// its writes and checks that everything it was told is written is there
// after reopening, the truncation point included. This is a process crash:
// the page cache survives it, so it shows that Badger recovers an unclosed
// database, not that fsync reached the disk (that would need a power cut,
// e.g. a dm-flakey device, which this test cannot set up).
func TestBadgerCrashKeepsAckedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBadgerCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		acked     = int64(-1)
		truncated bool
	)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "acked "):
			n, err := strconv.ParseInt(strings.TrimPrefix(line, "acked "), 10, 64)
			if err != nil {
				t.Fatalf("helper printed %q", line)
			}
			acked = n
		case line == "truncated 40":
			truncated = true
		case strings.HasPrefix(line, "error "):
			t.Fatalf("helper: %s", line)
		}
		if acked >= 400 {
			break
		}
	}
	// The running process holds the directory.
	if db, err := log.OpenBadger(dir, log.BadgerOptions{}); !errors.Is(err, log.ErrLocked) {
		if err == nil {
			_ = db.Close()
		}
		t.Errorf("OpenBadger of a directory another process has open = %v, want ErrLocked", err)
	}
	// Kill it in the middle of its next writes.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if acked < 400 || !truncated {
		t.Fatalf("helper stopped after %d acknowledged writes (truncated: %v)", acked, truncated)
	}

	db := openDB(t, dir, log.BadgerOptions{})
	l := openLog(t, db, "accepted")
	ctx = context.Background()
	if first, err := l.First(ctx); err != nil || first != 40 {
		t.Fatalf("after the crash, First() = %d, %v; want 40", first, err)
	}
	for s := uint64(40); s <= uint64(acked); s++ {
		v, err := l.Get(ctx, s)
		if err != nil || string(v) != string(crashValue(s)) {
			t.Fatalf("after the crash, Get(%d) = %q, %v; want %q (acknowledged)", s, v, err, crashValue(s))
		}
	}
	last, err := l.Last(ctx)
	if err != nil || last.Slot < uint64(acked) {
		t.Fatalf("after the crash, Last() = %d, %v; want at least %d", last.Slot, err, acked)
	}
	t.Logf("%d writes acknowledged before the kill, %d found after", acked+1, last.Slot+1)
}
