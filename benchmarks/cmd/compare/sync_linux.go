package main

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data, and the metadata needed to read it back, to
// stable storage, as etcd's WAL and bbolt do on Linux.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// preallocate extends f to size bytes of allocated space, as etcd's
// fileutil.Preallocate does on Linux (fallocate, mode 0).
func preallocate(f *os.File, size int64) error {
	return syscall.Fallocate(int(f.Fd()), 0, 0, size)
}
