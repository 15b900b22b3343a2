package paxostest

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/synod-go/synod/log"
)

// BadgerStore keeps one Badger database per node in a test's temporary
// directory, for clusters whose nodes crash and restart from disk. Use its
// Logs and Close as Options.Logs and Options.CloseLogs.
type BadgerStore struct {
	t    testing.TB
	dirs []string

	mu   sync.Mutex
	dbs  []*log.BadgerDB
	logs [][]log.Log // node i's three logs while its database is open
}

// NewBadgerStore returns a store for n nodes. Open databases are closed at
// the end of the test.
func NewBadgerStore(t testing.TB, n int) *BadgerStore {
	b := &BadgerStore{t: t, dbs: make([]*log.BadgerDB, n), logs: make([][]log.Log, n)}
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
func (b *BadgerStore) Logs(i int) (promise, accepted, recorded log.Log) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.logs[i]; l != nil {
		return l[0], l[1], l[2]
	}
	if b.dbs[i] == nil {
		db, err := log.OpenBadger(b.dirs[i], log.BadgerOptions{Identity: fmt.Sprintf("paxostest/node-%d", i)})
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
func (b *BadgerStore) Close(i int) {
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
// that open more prefixes in it or read its Stats.
func (b *BadgerStore) DB(i int) *log.BadgerDB {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dbs[i]
}
