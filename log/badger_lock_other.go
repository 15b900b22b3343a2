//go:build !unix

package log

// probeLock does nothing where flock is missing; Badger's own lock check
// still refuses a directory in use.
func probeLock(dir string) error { return nil }
