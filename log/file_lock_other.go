//go:build !unix

package log

import "os"

// lockDir does nothing where flock is not available: the caller must not
// open one directory twice.
func lockDir(dir string) (*os.File, error) { return nil, nil }

// unlockDir releases lockDir's lock.
func unlockDir(f *os.File) {}
