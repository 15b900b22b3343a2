package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

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
//
// Direct writes: a sender (other than the reader's control frames), finding
// nothing queued and no one writing, writes its frame to the socket itself
// without blocking (until done or the socket is full), which saves waking
// the writer goroutine (a round trip's two
// hand-offs, one per side). Whatever the socket did not take goes to the
// front of pending for the writer, so a direct write never blocks on a slow
// peer and frames keep their order. Only plain TCP and unix sockets do this
// (raw is nil otherwise, as with TLS).
type link struct {
	nc      net.Conn
	raw     syscall.RawConn // for direct writes; nil if the conn has no fd
	log     *slog.Logger
	maxMsg  int // the largest payload sent or accepted (Options.MaxFrameSize)
	maxBody int // the largest frame body accepted: maxMsg plus a header
	wbufMax int // senders that may wait do so while pending is over this
	hardCap int // pending over this means the peer stopped reading: drop it

	wmu sync.Mutex
	// Invariant: every frame in pending has a body of at most maxBody bytes.
	// Invariant: pending is non-empty only if a token is in kick, or the
	// writer has yet to look at pending, or a goroutine holds writing and
	// will look at pending when it clears it.
	pending []byte
	// writing is set while a goroutine (the writer, or a sender writing
	// directly) owns the socket's write side. It starts set: the writer
	// owns the socket until, its first bytes (the preamble) written, it
	// finds pending empty. Whoever clears it looks at pending again, so a
	// frame queued meanwhile is not stranded.
	writing bool
	direct  []byte      // a direct writer's scratch buffer; owned while writing
	dw      directWrite // a direct write's state; owned while writing
	attempt func(uintptr) bool
	space   chan struct{} // closed when the writer takes pending; nil if no one waits
	kick    chan struct{} // capacity 1: wakes the writer

	done      chan struct{} // closed when the link is dead
	closeOnce sync.Once
	err       error // why it died; set before done is closed
}

func newLink(nc net.Conn, o *Options) *link {
	return &link{
		nc:      nc,
		raw:     fdConn(nc),
		writing: true,
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
	m := modeQueue
	if wait {
		m = modeWait
	}
	return l.sendMode(ctx, f, m)
}

// trySend queues one frame if there is room, without waiting; it fails
// with ErrWouldBlock if the queue is full.
func (l *link) trySend(f *frame) error { return l.sendMode(context.Background(), f, modeTry) }

// How sendMode treats a full queue.
type sendMode int

const (
	modeQueue sendMode = iota // queue anyway (control frames)
	modeWait                  // wait for room
	modeTry                   // fail with ErrWouldBlock
)

func (l *link) sendMode(ctx context.Context, f *frame, mode sendMode) error {
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
		if mode == modeQueue || len(l.pending) == 0 || len(l.pending)+lengthSize+n <= l.wbufMax {
			break
		}
		if mode == modeTry {
			queued := len(l.pending)
			l.wmu.Unlock()
			return fmt.Errorf("%w: %d bytes queued", transport.ErrWouldBlock, queued)
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
	if mode != modeQueue && l.raw != nil && !l.writing && len(l.pending) == 0 && n <= maxDirect {
		l.writing = true
		l.wmu.Unlock()
		return l.writeDirect(f)
	}
	wasEmpty := len(l.pending) == 0
	l.pending = appendFrame(l.pending, f)
	over := len(l.pending) > l.hardCap
	writing := l.writing
	l.wmu.Unlock()
	if over {
		l.log.Warn("tcp: dropping connection: peer is not reading", "queued", l.hardCap)
		l.fail(errors.New("peer not reading"))
		return l.deadErr()
	}
	if wasEmpty && !writing {
		notify(l.kick)
	}
	return nil
}

// maxDirect bounds the frames written directly: a larger one is handed to
// the writer, whose write may block.
const maxDirect = 64 << 10

// writeDirect writes f to the socket with one non-blocking write, on the
// caller's goroutine. The caller has set l.writing. The rest of the frame,
// if the socket took only part of it, goes to the front of pending.
func (l *link) writeDirect(f *frame) error {
	buf := appendFrame(l.direct[:0], f)
	n, err := l.tryWrite(buf)
	l.wmu.Lock()
	if err == nil && n < len(buf) {
		rest := make([]byte, 0, len(buf)-n+len(l.pending))
		rest = append(rest, buf[n:]...)
		l.pending = append(rest, l.pending...)
	}
	if cap(buf) <= 4<<10 {
		l.direct = buf[:0]
	}
	l.writing = false
	more := len(l.pending) > 0
	l.wmu.Unlock()
	if err != nil {
		l.fail(err)
		return l.deadErr()
	}
	if more {
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
	// l.writing starts set: this goroutine owns the socket (owned) until it
	// finds pending empty, and takes it again only when no direct writer
	// has it.
	owned := true
	for {
		l.wmu.Lock()
		for len(l.pending) == 0 || (!owned && l.writing) {
			if owned {
				l.writing, owned = false, false
			}
			l.wmu.Unlock()
			select {
			case <-l.kick:
			case <-l.done:
				return
			}
			l.wmu.Lock()
		}
		l.writing, owned = true, true
		buf := l.pending
		l.pending = spare[:0]
		if l.space != nil {
			close(l.space)
			l.space = nil
		}
		l.wmu.Unlock()
		if _, err := l.nc.Write(buf); err != nil {
			l.fail(err)
			return
		}
		spare = nil
		if cap(buf) <= l.wbufMax {
			spare = buf[:0]
		}
	}
}
