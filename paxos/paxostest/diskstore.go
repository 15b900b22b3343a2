package paxostest

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/synod-go/synod/log"
)

// Database is what a DiskStore keeps per node: a *log.BadgerDB or a
// *log.FileDB.
type Database interface {
	Log(name string) (log.Log, error)
	Stats() log.Stats
	Close() error
}

// DiskStore keeps one durable database per node in a test's temporary
// directory, for clusters whose nodes crash and restart from disk. Use its
// Logs and Close as Options.Logs and Options.CloseLogs.
type DiskStore struct {
	t    testing.TB
	dirs []string
	open func(i int, dir string) (Database, error)

	mu   sync.Mutex
	dbs  []Database
	logs [][]log.Log // node i's three logs while its database is open
}

// BadgerStore is the DiskStore of NewBadgerStore (the name predates
// NewFileStore).
type BadgerStore = DiskStore

// NewBadgerStore returns a store of n Badger databases (log.OpenBadger).
// Open databases are closed at the end of the test.
func NewBadgerStore(t testing.TB, n int) *DiskStore {
	return newDiskStore(t, n, func(i int, dir string) (Database, error) {
		return log.OpenBadger(dir, log.BadgerOptions{Identity: fmt.Sprintf("paxostest/node-%d", i)})
	})
}

// NewFileStore returns a store of n file logs (log.OpenFile) with 1 MiB
// segments, so that a test's load rolls them. Open databases are closed at
// the end of the test.
func NewFileStore(t testing.TB, n int) *DiskStore {
	return newDiskStore(t, n, func(i int, dir string) (Database, error) {
		return log.OpenFile(dir, log.FileOptions{SegmentSize: 1 << 20})
	})
}

func newDiskStore(t testing.TB, n int, open func(i int, dir string) (Database, error)) *DiskStore {
	b := &DiskStore{t: t, open: open, dbs: make([]Database, n), logs: make([][]log.Log, n)}
	root := t.TempDir()
	for i := range n {
		b.dirs = append(b.dirs, filepath.Join(root, fmt.Sprintf("node-%d", i)))
	}
	t.Cleanup(func() {
		for i := range n {
			b.Close(i)
		}
	})
	return b
}

// Logs opens node i's database (if it is not open) and returns its three
// logs. While the database stays open (a Stop, not a Crash, in between), it
// returns the same logs again.
func (b *DiskStore) Logs(i int) (promise, accepted, recorded log.Log) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.logs[i]; l != nil {
		return l[0], l[1], l[2]
	}
	if b.dbs[i] == nil {
		db, err := b.open(i, b.dirs[i])
		if err != nil {
			b.t.Fatalf("node %d: opening %s: %v", i, b.dirs[i], err)
		}
		b.dbs[i] = db
	}
	db := b.dbs[i]
	open := func(prefix string) log.Log {
		l, err := db.Log(prefix)
		if err != nil {
			b.t.Fatalf("node %d: log %q: %v", i, prefix, err)
		}
		return l
	}
	b.logs[i] = []log.Log{open("promise"), open("accepted"), open("recorded")}
	return b.logs[i][0], b.logs[i][1], b.logs[i][2]
}

// Close closes node i's database, wherever its node is.
func (b *DiskStore) Close(i int) {
	b.mu.Lock()
	db := b.dbs[i]
	b.dbs[i], b.logs[i] = nil, nil
	b.mu.Unlock()
	if db != nil {
		if err := db.Close(); err != nil {
			b.t.Logf("node %d: closing database: %v", i, err)
		}
	}
}

// DB returns node i's open database (nil while it is closed), for tests
// that open more logs in it or read its Stats.
func (b *DiskStore) DB(i int) Database {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dbs[i]
}
