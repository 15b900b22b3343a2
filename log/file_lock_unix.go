//go:build unix

package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive flock on dir's LOCK file, held until
// unlockDir. Another open FileDB on dir, in this process or another, makes
// it fail with ErrLocked.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log: file lock: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		lerr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	}); err != nil {
		f.Close()
		return nil, err
	}
	if lerr != nil {
		f.Close()
		if errors.Is(lerr, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %q is in use by another open database (in this process or another)", ErrLocked, dir)
		}
		return nil, fmt.Errorf("log: file lock: %w", lerr)
	}
	return f, nil
}

// unlockDir releases lockDir's lock.
func unlockDir(f *os.File) {
	if f != nil {
		f.Close()
	}
}
