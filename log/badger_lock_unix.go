//go:build unix

package log

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// probeLock reports ErrLocked if another open database, in this process or
// another, holds Badger's lock on dir (an flock on the directory). It takes
// and drops the lock at once, so that OpenBadger reads no file of a database
// that is being written; Badger takes the lock for real when it opens.
func probeLock(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("log: badger directory: %w", err)
	}
	defer f.Close() // drops the lock
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("%w: %q is in use by another open database (in this process or another)", ErrLocked, dir)
	}
	return nil // any other failure: let Badger report it
}
