package log_test

import (
	"context"
	"fmt"
	"os"

	"github.com/synod-go/synod/log"
)

// A node keeps its three paxos Logs in one FileDB: they share its file and
// its group commit.
func ExampleOpenFile() {
	dir, err := os.MkdirTemp("", "synod-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	db, err := log.OpenFile(dir, log.FileOptions{SegmentSize: 1 << 20})
	if err != nil {
		fmt.Println(err) // ErrLocked, ErrNotLog, ErrCorrupt, or an I/O error
		return
	}
	accepted, err := db.Log("accepted")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	// Durable (fdatasynced) when Write returns.
	if err := accepted.Write(ctx, log.Record{Slot: 1, Value: []byte("hello")}); err != nil {
		fmt.Println(err)
		return
	}
	if err := db.Close(); err != nil {
		fmt.Println(err)
		return
	}

	// Reopened, the database replays its segment.
	db, err = log.OpenFile(dir, log.FileOptions{SegmentSize: 1 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	accepted, _ = db.Log("accepted")
	v, err := accepted.Get(ctx, 1)
	fmt.Println(string(v), err, log.IsDurable(accepted))
	// Output: hello <nil> true
}
