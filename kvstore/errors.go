package kvstore

import "errors"

// Errors returned by the Client (and by NewServer for ErrCorruptSnapshot).
// They are wrapped with details; test them with errors.Is. Each says what
// the caller should do.
var (
	// ErrNoKey: Get found no value for the key. It is an answer, not a
	// failure: the Get was decided through the log like any other.
	ErrNoKey = errors.New("kvstore: no such key")

	// ErrSessionExpired: the servers had dropped the client's session
	// (idle longer than Config.SessionTTL of log time) when a write
	// arrived, and an earlier attempt of that write had an unknown
	// outcome, so it may or may not have been applied. The client has
	// already opened a new session; retry only if the write may be
	// applied twice, or read the key to find out. (When no earlier attempt
	// could have been applied, the Client retries on its own and this
	// error is not returned.)
	ErrSessionExpired = errors.New("kvstore: session expired, outcome unknown")

	// ErrEmptyKey, ErrKeyTooLarge, ErrValueTooLarge and ErrUnknownOp:
	// the request was refused before anything was proposed. Do not retry
	// it unchanged.
	ErrEmptyKey      = errors.New("kvstore: empty key")
	ErrKeyTooLarge   = errors.New("kvstore: key too large")
	ErrValueTooLarge = errors.New("kvstore: value too large")
	ErrUnknownOp     = errors.New("kvstore: unknown operation")

	// ErrMalformed: a server could not decode a request, or a client could
	// not decode a reply: the peer runs an incompatible release. Do not
	// retry the same bytes.
	ErrMalformed = errors.New("kvstore: malformed message")

	// ErrClosed: the Client was closed. Give up.
	ErrClosed = errors.New("kvstore: client closed")

	// ErrCorruptSnapshot: the newest complete snapshot in the snapshot log
	// cannot be read back (checksum or format). NewServer refuses to start
	// rather than serve a state that lost acknowledged writes. Restore the
	// node from a backup, or empty its directories so that it fetches a
	// snapshot from its peers.
	ErrCorruptSnapshot = errors.New("kvstore: corrupt snapshot")
)
