package log

import (
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Group commit.
//
// Every change to a BadgerDB goes through one goroutine, the committer
// (commitLoop). It takes the first waiting request, then every request that
// queued up meanwhile (up to maxGroup), and writes them in as few Badger
// transactions as the transaction size limit allows — usually one. Badger
// runs with SyncWrites, so each transaction commit writes and fsyncs the
// value log and the memtable's write-ahead log once for all the requests in
// it. While one group is being fsynced, the next one queues up.
//
// The alternative, SyncWrites off and one db.Sync per group, costs the same
// two fsyncs (memtable WAL and value log) per group and measured within the
// noise of this one (both about 5,000 fsynced appends/s from one writer and
// 85,000-110,000 from 64 writers on the development VM). It was rejected
// because Badger's value-log garbage collector then rewrites live values
// without an fsync before deleting the file they came from.
//
// Lazy requests (WriteLazy) do not start a group of their own: they wait
// for the next group that has another request in it and go first in it (so
// one Log's requests keep their order), or, if none comes within lazyDelay
// or lazyMax of them queue up, are committed alone. Under load they cost no
// fsync round of their own.
//
// A request is atomic: it is never split across transactions. Requests of
// one group may be, and are acknowledged only after their own transaction
// is committed.

// maxGroup bounds the requests the committer takes at once.
const maxGroup = 1024

// lazyDelay and lazyMax bound how long, and how many, lazy requests wait
// for a group to join.
const (
	lazyDelay = 5 * time.Millisecond
	lazyMax   = 256
)

// entry is one key to set (or, with del, to delete) in a transaction.
type entry struct {
	slot  uint64 // for the truncation filter; unused by deletes
	key   []byte
	value []byte
	del   bool
}

// commitReq is one unit of work for the committer.
type commitReq struct {
	ctx context.Context // checked before the request is applied; nil = never cancelled
	log *badgerLog      // the Log whose truncation point filters sets; nil for none

	entries []entry
	// truncate, if above log's truncation point, moves it there in the same
	// transaction.
	truncate uint64
	// internal requests (deletes of truncated records) are not counted in
	// Stats.Writes.
	internal bool
	// flush asks the committer to flush Badger's memtables (CollectGarbage).
	flush bool
	// lazy: the request may wait for a group to join (WriteLazy).
	lazy bool

	done chan error // buffered; receives exactly one result
}

// submit hands r to the committer and waits for its result or for ctx. If
// ctx ends after r was queued, r may still be applied (see Log).
func (db *BadgerDB) submit(ctx context.Context, r *commitReq) error {
	r.ctx = ctx
	r.done = make(chan error, 1)
	select {
	case db.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the committer goroutine. It runs until Close, which stops it
// only after every caller of submit has returned.
func (db *BadgerDB) commitLoop() {
	defer close(db.committerDone)
	group := make([]*commitReq, 0, maxGroup)
	var lazy []*commitReq // waiting for a group to join
	timer := time.NewTimer(lazyDelay)
	timer.Stop()
	for {
		var expired <-chan time.Time
		if len(lazy) > 0 {
			expired = timer.C
		}
		select {
		case r := <-db.reqs:
			group = append(group, r)
		case <-expired:
			db.commitGroup(lazy)
			lazy = nil
			continue
		case <-db.stop:
			return
		}
	drain:
		for len(group) < maxGroup {
			select {
			case r := <-db.reqs:
				group = append(group, r)
			default:
				break drain
			}
		}
		allLazy := true
		for _, r := range group {
			allLazy = allLazy && r.lazy
		}
		if allLazy && len(lazy)+len(group) < lazyMax {
			if len(lazy) == 0 {
				timer.Reset(lazyDelay)
			}
			lazy = append(lazy, group...)
		} else {
			if len(lazy) > 0 {
				timer.Stop()
				group = append(lazy, group...)
				lazy = nil
			}
			db.commitGroup(group)
		}
		clear(group)
		group = group[:0]
	}
}

// txnBatch is the requests going into one Badger transaction.
type txnBatch struct {
	db          *BadgerDB
	txn         *badger.Txn
	reqs        []*commitReq
	count, size int64
	// truncation points set by the requests of this transaction, to filter
	// the later requests' sets.
	truncated map[*badgerLog]uint64
	// deletes reports whether the transaction deletes records.
	deletes bool
}

// commitGroup applies a group of requests in order.
func (db *BadgerDB) commitGroup(group []*commitReq) {
	b := &txnBatch{db: db}
	for _, r := range group {
		if r.ctx != nil {
			if err := r.ctx.Err(); err != nil {
				r.done <- err
				continue
			}
		}
		if r.flush {
			b.commit()
			r.done <- db.flushMemtables()
			continue
		}
		b.add(r)
	}
	b.commit()
}

// first returns the truncation point in force for l's sets in this batch.
func (b *txnBatch) first(l *badgerLog) uint64 {
	return max(l.first.Load(), b.truncated[l])
}

// add puts r into the open transaction, committing that first if r does not
// fit beside what it holds.
func (b *txnBatch) add(r *commitReq) {
	ents := r.entries
	if r.log != nil {
		// Drop sets below the truncation point, now that it is known for
		// sure: a TruncateBelow may have been committed since the Write
		// looked.
		first := b.first(r.log)
		n := 0
		for _, e := range ents {
			if e.del || e.slot >= first {
				n++
			}
		}
		if n < len(ents) {
			kept := make([]entry, 0, n)
			for _, e := range ents {
				if e.del || e.slot >= first {
					kept = append(kept, e)
				}
			}
			ents = kept
		}
	}
	truncates := r.log != nil && r.truncate > b.first(r.log)
	if len(ents) == 0 && !truncates {
		r.done <- nil
		return
	}
	count, size := int64(len(ents)), int64(0)
	for _, e := range ents {
		size += b.db.entrySize(e)
	}
	if truncates {
		count++
		size += b.db.entrySize(entry{key: firstKey(r.log.prefix), value: make([]byte, slotLen)})
	}
	if count > b.db.maxTxnCount || size > b.db.maxTxnSize {
		r.done <- fmt.Errorf("%w: %d records, %d bytes counted against Badger's limits of %d records, %d bytes",
			ErrTooLarge, count, size, b.db.maxTxnCount, b.db.maxTxnSize)
		return
	}
	if b.count+count > b.db.maxTxnCount || b.size+size > b.db.maxTxnSize {
		b.commit()
	}
	if b.txn == nil {
		b.txn = b.db.bdb.NewTransaction(true)
	}
	if err := b.apply(r, ents, truncates); err != nil {
		// Badger refused although the estimate said it fits. The open
		// transaction holds part of r: drop it, failing its requests.
		b.fail(fmt.Errorf("log: badger write in %q: %w", b.db.dir, err))
		r.done <- fmt.Errorf("log: badger write in %q: %w", b.db.dir, err)
		return
	}
	b.reqs = append(b.reqs, r)
	b.count += count
	b.size += size
}

func (b *txnBatch) apply(r *commitReq, ents []entry, truncates bool) error {
	for _, e := range ents {
		var err error
		if e.del {
			err = b.txn.Delete(e.key)
			b.deletes = true
		} else {
			err = b.txn.Set(e.key, e.value)
		}
		if err != nil {
			return err
		}
	}
	if truncates {
		if err := b.txn.Set(firstKey(r.log.prefix), encodeSlot(r.truncate)); err != nil {
			return err
		}
		if b.truncated == nil {
			b.truncated = make(map[*badgerLog]uint64)
		}
		b.truncated[r.log] = r.truncate
	}
	return nil
}

// commit commits the open transaction, if any, and answers its requests.
func (b *txnBatch) commit() {
	if b.txn == nil {
		return
	}
	start := time.Now()
	err := b.txn.Commit()
	if err != nil {
		b.fail(fmt.Errorf("log: badger commit in %q: %w", b.db.dir, err))
		return
	}
	if !b.db.opts.UnsafeNoSync {
		d := time.Since(start)
		b.db.syncs.Add(1)
		b.db.syncHist[syncBucketOf(d)].Add(1)
		b.db.syncNanos.Add(int64(d))
	}
	// The new truncation points are durable: publish them to readers.
	for l, first := range b.truncated {
		l.raiseFirst(first)
	}
	if b.deletes || len(b.truncated) > 0 {
		b.db.truncations.Add(1) // garbage for the next collection
	}
	for _, r := range b.reqs {
		if !r.internal {
			b.db.writes.Add(1)
		}
		r.done <- nil
	}
	b.reset()
}

// fail discards the open transaction and fails its requests with err.
func (b *txnBatch) fail(err error) {
	if b.txn != nil {
		b.txn.Discard()
	}
	for _, r := range b.reqs {
		r.done <- err
	}
	b.reset()
}

func (b *txnBatch) reset() {
	b.txn, b.reqs, b.count, b.size, b.deletes = nil, nil, 0, 0, false
	clear(b.truncated)
}

// entrySize is what Badger counts for e against its transaction size limit
// (see badger.Txn.checkSize).
func (db *BadgerDB) entrySize(e entry) int64 {
	n := int64(len(e.key)) + 2 + 10 // two meta bytes, the version
	if int64(len(e.value)) < db.opts.ValueThreshold {
		return n + int64(len(e.value))
	}
	return n + 12 // a value pointer
}

// flushMemtables makes Badger flush its memtables to level-0 tables and
// compact those into the levels below, so that deleted keys are dropped
// and their value-log space counts as garbage. Badger has no direct call
// for this; DropPrefix of a key that exists does both. It runs on the
// committer, so that no write of ours meets Badger's blocked writes.
func (db *BadgerDB) flushMemtables() error {
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(metaFlush, []byte{1})
	})
	if err == nil {
		err = db.bdb.DropPrefix(metaFlush)
	}
	if err != nil {
		return fmt.Errorf("log: flushing badger memtables in %q: %w", db.dir, err)
	}
	return nil
}
