package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// badgerLog is one Log of a BadgerDB, returned by BadgerDB.Log.
//
// Reads hide every record below first, so a truncation takes effect for
// readers the moment its truncation point is durable, even though deleting
// the records themselves takes further transactions (and a crash in between
// leaves some behind, deleted when the Log is next opened).
type badgerLog struct {
	db     *BadgerDB
	prefix string
	kp     []byte // keyPrefix(prefix)

	// first is the durable truncation point.
	// Invariant: first only increases, and no record below it is visible.
	first atomic.Uint64

	truncMu sync.Mutex // serializes TruncateBelow
	// clean: no record below it is left on disk, tombstones aside (the
	// deletions of an earlier truncation completed). The scan for records
	// to delete starts there, not at slot 0, so it does not step over the
	// tombstones of every truncation so far. Guarded by truncMu.
	clean  uint64
	closed atomic.Bool
}

var (
	_ Log           = (*badgerLog)(nil)
	_ LazyWriter    = (*badgerLog)(nil)
	_ Durable       = (*badgerLog)(nil)
	_ StatsReporter = (*badgerLog)(nil)
)

// begin checks ctx and that the Log is open, and registers the call with
// the database; the caller must call the returned release.
func (l *badgerLog) begin(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.closed.Load() || !l.db.acquire() {
		return nil, ErrClosed
	}
	return l.db.release, nil
}

// raiseFirst moves the truncation point up to v (never down).
func (l *badgerLog) raiseFirst(v uint64) {
	for {
		cur := l.first.Load()
		if v <= cur || l.first.CompareAndSwap(cur, v) {
			return
		}
	}
}

// Durable reports whether the database fsyncs every Write.
func (l *badgerLog) Durable() bool { return l.db.Durable() }

// Stats returns the counters of the whole database (see BadgerDB.Stats).
func (l *badgerLog) Stats() Stats { return l.db.Stats() }

// Write implements Log.Write. One Write is at most about 15% of
// BadgerOptions.MemTableSize in keys and small values; a larger one fails
// with ErrTooLarge and writes nothing.
func (l *badgerLog) Write(ctx context.Context, recs ...Record) error {
	return l.write(ctx, false, recs)
}

// WriteLazy implements LazyWriter: the records join the next group commit
// that has a Write in it, or are committed on their own after lazyDelay.
func (l *badgerLog) WriteLazy(ctx context.Context, recs ...Record) error {
	return l.write(ctx, true, recs)
}

func (l *badgerLog) write(ctx context.Context, lazy bool, recs []Record) error {
	release, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	first := l.first.Load()
	n, size := 0, 0
	for _, r := range recs {
		if r.Slot >= first {
			n++
			size += len(l.kp) + slotLen + valueCRCLen + len(r.Value)
		}
	}
	if n == 0 {
		return nil
	}
	// One buffer for all keys and values: the caller's slices are free
	// again when Write returns, even if ctx ends first.
	buf := make([]byte, 0, size)
	ents := make([]entry, 0, n)
	for _, r := range recs {
		if r.Slot < first {
			continue
		}
		k := len(buf)
		buf = appendRecordKey(buf, l.kp, r.Slot)
		v := len(buf)
		buf = appendValue(buf, r.Value)
		ents = append(ents, entry{slot: r.Slot, key: buf[k:v:v], value: buf[v:len(buf):len(buf)]})
	}
	return l.db.submit(ctx, &commitReq{log: l, entries: ents, lazy: lazy})
}

// Get implements Log.Get.
func (l *badgerLog) Get(ctx context.Context, slot uint64) ([]byte, error) {
	release, err := l.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if slot < l.first.Load() {
		return nil, ErrNotFound
	}
	var v []byte
	err = l.db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(l.kp, slot))
		if err != nil {
			return err
		}
		v, err = l.value(item, slot)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("log: badger get %q/%d: %w", l.prefix, slot, err)
	}
	return v, nil
}

// value returns a copy of the value of item, the record at slot, checking
// its checksum.
func (l *badgerLog) value(item *badger.Item, slot uint64) ([]byte, error) {
	var v []byte
	err := item.Value(func(stored []byte) error {
		inner, ok := checkValue(stored)
		if !ok {
			return fmt.Errorf("%w: %q: record %q/%d fails its checksum (%d bytes read)",
				ErrCorrupt, l.db.dir, l.prefix, slot, len(stored))
		}
		v = append(make([]byte, 0, len(inner)), inner...)
		return nil
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("log: badger read %q/%d: %w", l.prefix, slot, err)
	}
	return v, err
}

// ctxCheckEvery is how many records Range visits between checks of ctx.
const ctxCheckEvery = 64

// Range implements Log.Range. It reads one consistent snapshot, taken when
// it starts; fn may call methods of this Log.
func (l *badgerLog) Range(ctx context.Context, from, to uint64, fn func(Record) error) error {
	release, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	from = max(from, l.first.Load())
	if to != 0 && from >= to {
		return nil
	}
	var fnErr error
	err = l.db.bdb.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = l.kp
		it := txn.NewIterator(opts)
		defer it.Close()
		n := 0
		for it.Seek(recordKey(l.kp, from)); it.Valid(); it.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			slot, ok := parseRecordKey(l.kp, item.Key())
			if !ok {
				return fmt.Errorf("%w: %q: malformed record key %q under prefix %q", ErrCorrupt, l.db.dir, item.Key(), l.prefix)
			}
			if to != 0 && slot >= to {
				return nil
			}
			v, err := l.value(item, slot)
			if err != nil {
				return err
			}
			if err := fn(Record{Slot: slot, Value: v}); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// Last implements Log.Last.
func (l *badgerLog) Last(ctx context.Context) (Record, error) {
	release, err := l.begin(ctx)
	if err != nil {
		return Record{}, err
	}
	defer release()
	first := l.first.Load()
	var rec Record
	err = l.db.bdb.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Reverse = true
		opts.Prefix = l.kp
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(recordKey(l.kp, math.MaxUint64))
		if !it.Valid() {
			return ErrNotFound
		}
		item := it.Item()
		slot, ok := parseRecordKey(l.kp, item.Key())
		if !ok {
			return fmt.Errorf("%w: %q: malformed record key %q under prefix %q", ErrCorrupt, l.db.dir, item.Key(), l.prefix)
		}
		if slot < first {
			return ErrNotFound
		}
		v, err := l.value(item, slot)
		if err != nil {
			return err
		}
		rec = Record{Slot: slot, Value: v}
		return nil
	})
	return rec, err
}

// TruncateBelow implements Log.TruncateBelow. The new truncation point and
// the deletion of the first few thousand records are one atomic, durable
// transaction; more records are deleted in further transactions before it
// returns. Their disk space comes back with compaction and CollectGarbage.
func (l *badgerLog) TruncateBelow(ctx context.Context, slot uint64) error {
	release, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	if slot <= l.first.Load() {
		return nil
	}
	dels, _, err := l.deletesBelow(l.clean, slot)
	if err != nil {
		return err
	}
	if err := l.db.submit(ctx, &commitReq{log: l, truncate: slot, entries: dels}); err != nil {
		return err
	}
	// Records a concurrent Write committed below slot after the scan, and
	// those beyond the first transaction's share.
	_, err = l.deleteBelow(ctx, slot)
	return err
}

// deleteBelow deletes the records below slot, which is at or below the
// truncation point, in as many transactions as it takes, and returns how
// many it deleted. The caller holds truncMu (or has the Log to itself).
func (l *badgerLog) deleteBelow(ctx context.Context, slot uint64) (int, error) {
	n := 0
	from := l.clean
	for {
		dels, next, err := l.deletesBelow(from, slot)
		if err != nil {
			return n, err
		}
		if len(dels) == 0 {
			// The committer drops sets below the truncation point, so
			// nothing can appear below slot any more.
			l.clean = max(l.clean, slot)
			return n, nil
		}
		// Lazy: these deletes need no fsync round of their own (the
		// truncation point is durable already; what a crash leaves below
		// it is deleted at open).
		if err := l.db.submit(ctx, &commitReq{entries: dels, internal: true, lazy: true}); err != nil {
			return n, err
		}
		n += len(dels)
		from = next
	}
}

// deleteChunk bounds the deletes of one request, so that a truncation of
// many records is spread over many group commits instead of stalling one.
const deleteChunk = 512

// deletesBelow returns deletes for the first records in [from, slot), as
// many as fit comfortably in one transaction, and the slot to scan from
// next.
func (l *badgerLog) deletesBelow(from, slot uint64) ([]entry, uint64, error) {
	keySize := l.db.entrySize(entry{key: recordKey(l.kp, 0)})
	limit := min(deleteChunk, l.db.maxTxnCount/2, l.db.maxTxnSize/2/keySize)
	end := recordKey(l.kp, slot)
	var dels []entry
	next := from
	err := l.db.bdb.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = l.kp
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(recordKey(l.kp, from)); it.Valid() && int64(len(dels)) < limit; it.Next() {
			// Byte order is slot order; a malformed key that sorts below
			// end can only be garbage and goes too.
			key := it.Item().KeyCopy(nil)
			if bytes.Compare(key, end) >= 0 {
				return nil
			}
			dels = append(dels, entry{key: key, del: true})
			if s, ok := parseRecordKey(l.kp, key); ok {
				next = max(next, s+1)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("log: badger scan %q below %d: %w", l.prefix, slot, err)
	}
	return dels, next, nil
}

// First implements Log.First.
func (l *badgerLog) First(ctx context.Context) (uint64, error) {
	release, err := l.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	return l.first.Load(), nil
}

// Close implements Log.Close. It releases the prefix, so that BadgerDB.Log
// may open it again; the database stays open.
func (l *badgerLog) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	l.db.forget(l)
	return nil
}
