package paxos

import (
	"context"

	"github.com/synod-go/synod/log"
)

// SetAcceptorFault installs f to be asked at each stage of every Prepare
// and Accept that p's acceptor handles ("received": nothing persisted yet;
// "persisted": on disk, no reply sent). An error fails the request there
// without a reply, as a crash at that point would. Nil removes it.
func SetAcceptorFault(p *Paxos, f func(stage string) error) {
	if f == nil {
		p.acceptor.fault.Store(nil)
		return
	}
	p.acceptor.fault.Store(&f)
}

// Promised returns the ballot p's acceptor has promised.
func Promised(p *Paxos) Ballot {
	b, _ := p.acceptor.status()
	return b
}

// DoneMark returns p's done watermark (one more than its highest Done).
func DoneMark(p *Paxos) Slot { return p.doneMark() }

// Sync waits until p's acceptor has persisted every change decided so far
// (including the done watermark).
func Sync(ctx context.Context, p *Paxos) error {
	if err := p.acceptor.sync(ctx); err != nil {
		return err
	}
	return p.observer.flush(ctx)
}

// QueueLen returns how many values wait in p's proposer for the window, as
// its loop sees them (0 if the loop is not running).
func QueueLen(ctx context.Context, p *Paxos) int {
	n := make(chan int, 1)
	p.proposer.post(ctx, func() { n <- len(p.proposer.queue) })
	select {
	case v := <-n:
		return v
	case <-ctx.Done():
		return 0
	}
}

// RecordedCovers reports whether the recorded log l holds slot: a copy of
// its entry, or a references record (into the accepted log) covering it.
func RecordedCovers(ctx context.Context, l log.Log, slot Slot) (bool, error) {
	covered := false
	err := l.Range(ctx, 0, uint64(slot)+1, func(r log.Record) error {
		end, _, err := decodeRecorded(Slot(r.Slot), r.Value)
		if err != nil {
			return err
		}
		covered = covered || end > slot
		return nil
	})
	return covered, err
}

// RecordedRefs counts the references records in the recorded log l.
func RecordedRefs(ctx context.Context, l log.Log) (int, error) {
	n := 0
	err := l.Range(ctx, 0, 0, func(r log.Record) error {
		_, refs, err := decodeRecorded(Slot(r.Slot), r.Value)
		if refs {
			n++
		}
		return err
	})
	return n, err
}

// AcceptedEntries returns the entries in an acceptor's accepted log l, in
// slot order.
func AcceptedEntries(ctx context.Context, l log.Log) ([]Entry, error) {
	var out []Entry
	err := l.Range(ctx, 0, 0, func(r log.Record) error {
		e, err := decodeEntry(Slot(r.Slot), r.Value)
		out = append(out, e)
		return err
	})
	return out, err
}
