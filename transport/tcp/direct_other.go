//go:build !unix

package tcp

import (
	"errors"
	"net"
	"syscall"
)

// fdConn returns nil: direct writes are for unix systems only.
func fdConn(net.Conn) syscall.RawConn { return nil }

type directWrite struct{}

// tryWrite is never called where fdConn returns nil.
func (l *link) tryWrite([]byte) (int, error) {
	return 0, errors.New("tcp: no direct writes on this system")
}
