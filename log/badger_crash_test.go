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

// crashDirEnv names the directory the helper process writes to, and
// crashBackendEnv the backend ("badger" or "file").
const (
	crashDirEnv     = "SYNOD_LOG_CRASH_HELPER_DIR"
	crashBackendEnv = "SYNOD_LOG_CRASH_HELPER_BACKEND"
)

func crashValue(s uint64) []byte { return fmt.Appendf(nil, "crash-value-%d", s) }

// crashSegmentSize is the FileDB segment size of the crash test: small, so
// that the writes before the kill roll through several segments.
const crashSegmentSize = 1 << 20

// openCrashLog opens the "accepted" Log of the backend in dir, never to be
// closed (the helper is killed).
func openCrashLog(backend, dir string) (log.Log, error) {
	if backend == "file" {
		db, err := log.OpenFile(dir, log.FileOptions{SegmentSize: crashSegmentSize})
		if err != nil {
			return nil, err
		}
		return db.Log("accepted")
	}
	db, err := log.OpenBadger(dir, log.BadgerOptions{})
	if err != nil {
		return nil, err
	}
	return db.Log("accepted")
}

// TestCrashHelper is not a test: TestBadgerCrashKeepsAckedWrites and
// TestFileCrashKeepsAckedWrites run the test binary again with crashDirEnv
// set, and this writes records to that directory, printing each
// acknowledged slot, until it is killed. It never closes the database.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of the crash tests")
	}
	l, err := openCrashLog(os.Getenv(crashBackendEnv), dir)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	ctx := context.Background()
	filler := make([]byte, 4000)           // rolls a FileDB's 1 MiB segments every 250 writes
	for s := uint64(0); s < 100_000; s++ { // bounded, in case the parent is gone
		if err := l.Write(ctx, log.Record{Slot: s, Value: crashValue(s)}, log.Record{Slot: s + 1<<40, Value: filler}); err != nil {
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
	testCrashKeepsAckedWrites(t, "badger", func(dir string) (log.Log, error) {
		db, err := log.OpenBadger(dir, log.BadgerOptions{})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = db.Close() })
		return db.Log("accepted")
	})
}

// TestFileCrashKeepsAckedWrites is TestBadgerCrashKeepsAckedWrites for a
// FileDB whose small segments roll during the writes.
func TestFileCrashKeepsAckedWrites(t *testing.T) {
	testCrashKeepsAckedWrites(t, "file", func(dir string) (log.Log, error) {
		db, err := log.OpenFile(dir, log.FileOptions{SegmentSize: crashSegmentSize})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = db.Close() })
		return db.Log("accepted")
	})
}

func testCrashKeepsAckedWrites(t *testing.T, backend string, open func(dir string) (log.Log, error)) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashBackendEnv+"="+backend)
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
	if _, err := open(dir); !errors.Is(err, log.ErrLocked) {
		t.Errorf("opening a directory another process has open = %v, want ErrLocked", err)
	}
	// Kill it in the middle of its next writes.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if acked < 400 || !truncated {
		t.Fatalf("helper stopped after %d acknowledged writes (truncated: %v)", acked, truncated)
	}

	l, err := open(dir)
	if err != nil {
		t.Fatalf("reopening after the crash: %v", err)
	}
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
	var last uint64
	if err := l.Range(ctx, 0, 1<<40, func(r log.Record) error { last = r.Slot; return nil }); err != nil {
		t.Fatal(err)
	}
	if last < uint64(acked) {
		t.Fatalf("after the crash, the last record is at %d; want at least %d", last, acked)
	}
	for s := uint64(40); s <= last; s++ {
		if v, err := l.Get(ctx, s+1<<40); err != nil || len(v) != 4000 {
			t.Fatalf("after the crash, Get(%d) = %d bytes, %v; want the 4000-byte filler written with slot %d", s+1<<40, len(v), err, s)
		}
	}
	t.Logf("%d writes acknowledged before the kill, %d found after", acked+1, last+1)
}
