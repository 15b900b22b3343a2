//go:build unix

package tcp

import (
	"errors"
	"net"
	"syscall"
)

// fdConn returns the conn's raw file descriptor access for direct writes,
// or nil unless it is a plain *net.TCPConn or *net.UnixConn: a TLS conn
// has its own framing, and a wrapper (from Serve's listener) may override
// Write, which raw writes would bypass.
func fdConn(nc net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := nc.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// directWrite is one attempt to write without blocking: write syscalls
// until the buffer is written or the socket is full (EAGAIN). A method, so
// that its function value is made once per link rather than once per
// write.
type directWrite struct {
	buf []byte
	n   int
	err error
}

func (d *directWrite) attempt(fd uintptr) bool {
	for d.n < len(d.buf) {
		m, err := syscall.Write(int(fd), d.buf[d.n:])
		if m > 0 {
			d.n += m
		}
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return true // the socket is full; the writer takes the rest
		case err != nil:
			d.err = err
			return true
		case m <= 0:
			return true
		}
	}
	return true // true: never wait for the socket to become writable
}

// tryWrite writes as much of b as the socket takes without blocking and
// returns how much that was. l.writing must be held.
func (l *link) tryWrite(b []byte) (int, error) {
	if l.attempt == nil {
		l.attempt = l.dw.attempt
	}
	l.dw = directWrite{buf: b}
	err := l.raw.Write(l.attempt)
	n := l.dw.n
	if err == nil {
		err = l.dw.err
	}
	l.dw.buf = nil
	return n, err
}
