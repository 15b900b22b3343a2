package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/synod-go/synod/transport"
)

// link is one framed connection, shared by the client and the server side:
// a queue of outgoing frames drained by one writer goroutine, and the
// once-only teardown.
//
// Write coalescing: senders append encoded frames to pending under wmu and
// wake the writer only when pending was empty. The writer takes everything
// queued at once and writes it in one call, so under load many frames share
// a write, while a lone frame is written as soon as the writer is scheduled
// (no timer).
type link struct {
	nc      net.Conn
	log     *slog.Logger
	maxMsg  int // the largest payload sent or accepted (Options.MaxFrameSize)
	maxBody int // the largest frame body accepted: maxMsg plus a header
	wbufMax int // senders that may wait do so while pending is over this
	hardCap int // pending over this means the peer stopped reading: drop it

	wmu sync.Mutex
	// Invariant: every frame in pending has a body of at most maxBody bytes.
	// Invariant: pending is non-empty only if a token is in kick or the
	// writer has yet to look at pending.
	pending []byte
	space   chan struct{} // closed when the writer takes pending; nil if no one waits
	kick    chan struct{} // capacity 1: wakes the writer

	done      chan struct{} // closed when the link is dead
	closeOnce sync.Once
	err       error // why it died; set before done is closed
}

func newLink(nc net.Conn, o *Options) *link {
	return &link{
		nc:      nc,
		log:     o.Logger.With("remote", remoteName(nc)),
		maxMsg:  o.MaxFrameSize,
		maxBody: o.MaxFrameSize + maxHeaderLen,
		wbufMax: o.WriteBuffer,
		hardCap: 2*o.WriteBuffer + o.MaxFrameSize + lengthSize,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

func remoteName(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return nc.LocalAddr().String()
}

// errLinkClosed is the cause of a link closed on purpose (Close, or the
// last Conn of a peer released).
var errLinkClosed = errors.New("connection closed")

// fail kills the link, once, recording why.
func (l *link) fail(err error) {
	l.closeOnce.Do(func() {
		l.err = err
		close(l.done)
		l.nc.Close()
	})
}

// deadErr is the error for operations on a dead link.
func (l *link) deadErr() error {
	<-l.done
	return fmt.Errorf("%w: %w", transport.ErrUnreachable, l.err)
}

func (l *link) dead() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// send queues one frame. A frame over the size limit fails with
// ErrTooLarge and leaves the link up. When wait is set and the queue is
// full, send waits for room (or ctx, or the link's death); control frames
// pass wait=false and are always queued, so the reader goroutine never
// blocks on the socket.
func (l *link) send(ctx context.Context, f *frame, wait bool) error {
	if len(f.payload) > l.maxMsg {
		return fmt.Errorf("%w: message of %d bytes, limit %d", transport.ErrTooLarge, len(f.payload), l.maxMsg)
	}
	n := f.encodedLen()
	l.wmu.Lock()
	for {
		if l.dead() {
			l.wmu.Unlock()
			return l.deadErr()
		}
		if !wait || len(l.pending) == 0 || len(l.pending)+lengthSize+n <= l.wbufMax {
			break
		}
		if l.space == nil {
			l.space = make(chan struct{})
		}
		space := l.space
		l.wmu.Unlock()
		select {
		case <-space:
		case <-l.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		l.wmu.Lock()
	}
	wasEmpty := len(l.pending) == 0
	l.pending = appendFrame(l.pending, f)
	over := len(l.pending) > l.hardCap
	l.wmu.Unlock()
	if over {
		l.log.Warn("tcp: dropping connection: peer is not reading", "queued", l.hardCap)
		l.fail(errors.New("peer not reading"))
		return l.deadErr()
	}
	if wasEmpty {
		notify(l.kick)
	}
	return nil
}

// writeLoop is the link's writer goroutine. If first is not nil it is
// written before any frame.
func (l *link) writeLoop(first []byte) {
	var spare []byte
	if len(first) > 0 {
		if _, err := l.nc.Write(first); err != nil {
			l.fail(err)
			return
		}
	}
	for {
		select {
		case <-l.kick:
		case <-l.done:
			return
		}
		l.wmu.Lock()
		buf := l.pending
		l.pending = spare[:0]
		if l.space != nil {
			close(l.space)
			l.space = nil
		}
		l.wmu.Unlock()
		if len(buf) > 0 {
			if _, err := l.nc.Write(buf); err != nil {
				l.fail(err)
				return
			}
		}
		spare = nil
		if cap(buf) <= l.wbufMax {
			spare = buf[:0]
		}
	}
}
