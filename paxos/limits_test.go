package paxos_test

import (
	"context"
	"testing"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
)

// TestDefaultValueFitsLogs: an acceptor writes a value of the default
// MaxValueSize, with its record around it, to either durable log in one
// write. (With 16 MiB, a FileDB refused it, and an acceptor whose log
// refuses a write stops answering for good.)
func TestDefaultValueFitsLogs(t *testing.T) {
	ctx := context.Background()
	rec := log.Record{Slot: 1 << 40, Value: make([]byte, paxos.DefaultMaxValueSize+64)}
	file, err := log.OpenFile(t.TempDir(), log.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	badger, err := log.OpenBadger(t.TempDir(), log.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer badger.Close()
	for name, db := range map[string]interface{ Log(string) (log.Log, error) }{"file": file, "badger": badger} {
		l, err := db.Log("accepted")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Write(ctx, rec); err != nil {
			t.Errorf("%s: writing a %d-byte record: %v", name, len(rec.Value), err)
		}
	}
}
