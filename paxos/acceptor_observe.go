package paxos

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

const (
	observeBuffer      = 4096 // live events buffered per observer before it is cut off
	observeReplayChunk = 256  // entries per replayed event
)

var errObserverTooSlow = errors.New("paxos: observer fell behind; reconnect")

// observeSub is one observer's subscription to an acceptor.
type observeSub struct {
	a    *Acceptor
	ctx  context.Context
	stop context.CancelFunc
	live chan *ObserveEvent

	from Slot // the slot the observer asked for

	// replay state, used by the Recv goroutine only
	next      Slot
	replaying bool
	sentHead  bool

	mu  sync.Mutex
	err error
}

// Observe streams what this acceptor accepts and knows chosen, from
// req.From on: first a replay from its log, then live events. The stream
// ends when ctx ends, the acceptor stops, or the observer falls too far
// behind (it then reconnects from where it is).
func (a *Acceptor) Observe(ctx context.Context, req *ObserveRequest) (ObserveStream, error) {
	sctx, cancel := context.WithCancel(ctx)
	s := &observeSub{a: a, ctx: sctx, stop: cancel, live: make(chan *ObserveEvent, observeBuffer), from: req.From, next: req.From, replaying: true}
	// Checked under subsMu, which closeSubs holds too: a subscription is
	// either registered before closeSubs runs (and failed by it) or refused.
	a.subsMu.Lock()
	if a.subsClosed {
		a.subsMu.Unlock()
		cancel()
		return nil, ErrStopped
	}
	a.subs[s] = struct{}{}
	a.subsMu.Unlock()
	// Registered before the replay reads the log: an entry is either in the
	// log when replay reads it or published to s.live afterwards.
	return s, nil
}

func (a *Acceptor) publish(ev *ObserveEvent) {
	a.subsMu.Lock()
	defer a.subsMu.Unlock()
	for s := range a.subs {
		select {
		case s.live <- ev:
		default:
			delete(a.subs, s)
			s.fail(errObserverTooSlow)
		}
	}
}

func (a *Acceptor) closeSubs() {
	a.subsMu.Lock()
	defer a.subsMu.Unlock()
	a.subsClosed = true
	for s := range a.subs {
		delete(a.subs, s)
		s.fail(ErrStopped)
	}
}

func (s *observeSub) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.stop()
}

// Recv returns the next event.
func (s *observeSub) Recv() (*ObserveEvent, error) {
	if s.replaying {
		ev, err := s.replay()
		if err != nil {
			s.fail(err)
			return nil, err
		}
		if ev != nil {
			return ev, nil
		}
		s.replaying = false
	}
	for {
		select {
		case ev := <-s.live:
			if ev = s.filter(ev); ev != nil {
				return ev, nil
			}
		case <-s.ctx.Done():
			s.mu.Lock()
			err := s.err
			s.mu.Unlock()
			if err == nil {
				err = s.ctx.Err()
			}
			return nil, err
		}
	}
}

// filter drops entries below the slot the observer asked for.
func (s *observeSub) filter(ev *ObserveEvent) *ObserveEvent {
	keep := 0
	for _, e := range ev.Entries {
		if e.Slot >= s.from {
			keep++
		}
	}
	if keep == len(ev.Entries) {
		return ev
	}
	out := &ObserveEvent{Commit: ev.Commit, Forgotten: ev.Forgotten, Entries: make([]Entry, 0, keep)}
	for _, e := range ev.Entries {
		if e.Slot >= s.from {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

// replay returns the next chunk of the log replay, or nil when done.
func (s *observeSub) replay() (*ObserveEvent, error) {
	a := s.a
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	// Taken before reading the log: below it, what the read sees is the
	// chosen entry (see Acceptor.durablePrefix).
	durable := Slot(a.durablePrefix.Load())
	// A chunk is a page, like a promise's, so that a replay of large
	// values never makes a stream message larger than the transport
	// carries.
	entries, _, err := a.readPage(s.ctx, s.next, observeReplayChunk)
	if err != nil {
		return nil, fmt.Errorf("paxos: observe replay: %w", err)
	}
	a.mu.Lock()
	ev := &ObserveEvent{Commit: a.st.commit, Forgotten: a.st.forgotten}
	for i := range entries {
		entries[i].Chosen = a.st.chosenOnDisk(entries[i], durable)
	}
	a.mu.Unlock()
	if len(entries) > 0 {
		ev.Entries = entries
		s.next = entries[len(entries)-1].Slot + 1
	}
	if len(entries) == 0 {
		if s.sentHead {
			return nil, nil
		}
	}
	s.sentHead = true
	return ev, nil
}

// Close ends the subscription.
func (s *observeSub) Close() error {
	s.a.subsMu.Lock()
	delete(s.a.subs, s)
	s.a.subsMu.Unlock()
	s.fail(context.Canceled)
	return nil
}
