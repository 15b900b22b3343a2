package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// badgerMagic is stored by Badger in the header of the MANIFEST of every
// Synod database (Badger's "external magic"), so that Badger itself refuses
// to open a Synod database as another application's, and the reverse.
const badgerMagic uint16 = 0x5359 // "SY"

// formatVersion is the version of the key layout (see badger_key.go), stored
// under metaFormat behind formatTag. A build reads its own version and older.
const formatVersion uint32 = 1

var formatTag = []byte("synod-log")

// Badger's file names, for checkDir.
const (
	manifestFile   = "MANIFEST"
	manifestHeader = "Bdgr" // first 4 bytes of a MANIFEST
)

// checkDir refuses a dir that is unreadable, not a directory, or holds
// anything but a Synod Badger database, before Badger creates files in it.
func checkDir(dir string) error {
	if dir == "" {
		return errors.New("log: empty badger directory name")
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // Badger creates it.
	}
	if err != nil {
		return fmt.Errorf("log: badger directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %q is not a directory", ErrNotLog, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("log: reading badger directory: %w", err)
	}
	var badgerFiles, others []string
	hasManifest := false
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == manifestFile:
			hasManifest = true
		case name == "LOCK" || name == "MANIFEST-REWRITE":
			// Left by a first open that stopped before writing MANIFEST.
		case name == "KEYREGISTRY" || name == "DISCARD" || strings.HasSuffix(name, ".vlog") ||
			strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".mem"):
			badgerFiles = append(badgerFiles, name)
		default:
			others = append(others, name)
		}
	}
	switch {
	case hasManifest:
		if err := probeLock(dir); err != nil {
			return err
		}
		if err := checkManifest(dir); err != nil {
			return err
		}
		return checkTables(dir)
	case len(others) > 0:
		return fmt.Errorf("%w: %q holds %q (and %d more entries) but no Badger MANIFEST; refusing to create a log there",
			ErrNotLog, dir, others[0], len(entries)-1)
	case len(badgerFiles) > 0:
		return fmt.Errorf("%w: %q holds Badger files (%q, …) but no MANIFEST", ErrCorrupt, dir, badgerFiles[0])
	}
	return nil
}

// checkManifest reads the header of dir's MANIFEST: Badger's magic, then the
// application's magic, which must be Synod's.
func checkManifest(dir string) error {
	path := filepath.Join(dir, manifestFile)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("log: opening badger manifest: %w", err)
	}
	defer f.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return fmt.Errorf("%w: %s is %s", ErrCorrupt, path, describeShortRead(err))
	}
	if string(hdr[:4]) != manifestHeader {
		return fmt.Errorf("%w: %s does not start with Badger's header (found %q)", ErrCorrupt, path, hdr[:4])
	}
	if ext := binary.BigEndian.Uint16(hdr[4:6]); ext != badgerMagic {
		return fmt.Errorf("%w: %q holds a Badger database of another application (magic %#04x, Synod's is %#04x)",
			ErrNotLog, dir, ext, badgerMagic)
	}
	return nil
}

func describeShortRead(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "shorter than Badger's 8-byte header"
	}
	return "unreadable: " + err.Error()
}

// checkTables opens every table (.sst file) of dir read-only and verifies the
// checksums of its index and blocks, the way Badger will. Badger opens tables
// in goroutines of its own, where corrupt bytes make it panic beyond any
// recover; here a panic or error becomes ErrCorrupt. It reads the whole LSM
// tree once.
func checkTables(dir string) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return err
	}
	for _, path := range paths {
		if err := checkTable(path); err != nil {
			return fmt.Errorf("%w: table %s: %v", ErrCorrupt, path, err)
		}
	}
	return nil
}

func checkTable(path string) (err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable (Badger panicked: %s)", firstLine(fmt.Sprint(p)))
		}
		// OpenTable closes mf on some errors; a second close fails harmlessly.
		_ = mf.Close(-1)
	}()
	_, err = table.OpenTable(mf, table.Options{
		ReadOnly:    true,
		ChkMode:     options.OnTableRead,
		BlockSize:   4 << 10,
		Compression: options.None,
	})
	return err
}

// firstLine returns the first non-empty line of s.
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return s
}

// openBadger is badger.Open, turning a panic on bad data into an error.
func openBadger(opts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("%w: badger panicked while opening: %v", ErrCorrupt, p)
		}
	}()
	return badger.Open(opts)
}

// classifyOpenError wraps an error of badger.Open in the sentinel it stands
// for. Badger does not wrap its causes (it formats them into the message),
// so this matches the message texts of Badger v4.
func classifyOpenError(dir string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("log: opening badger database %q: %w", dir, err)
	case strings.Contains(msg, "Another process is using this Badger database"):
		return fmt.Errorf("%w: %q: %v", ErrLocked, dir, err)
	case strings.Contains(msg, "external magic number doesn't match"):
		return fmt.Errorf("%w: %q: %v", ErrNotLog, dir, err)
	case errors.Is(err, fs.ErrPermission) || strings.Contains(msg, "permission denied"):
		return fmt.Errorf("log: opening badger database %q: %w: %v", dir, fs.ErrPermission, err)
	case strings.Contains(msg, "no space left on device"):
		return fmt.Errorf("log: opening badger database %q: %w", dir, err)
	}
	// The directory passed checkDir: it is a Synod database (or becoming
	// one) that Badger cannot read back.
	return fmt.Errorf("%w: %q: %v", ErrCorrupt, dir, err)
}

// checkFormat checks the format marker and the identity of a freshly opened
// database, writing them if the database is new. It runs before the
// committer starts.
func (db *BadgerDB) checkFormat(identity string) error {
	format, err := db.getMeta(metaFormat)
	if err != nil {
		return err
	}
	var writes [][2][]byte
	if format == nil {
		empty, err := db.isEmpty()
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%w: %q holds keys but no Synod format marker", ErrNotLog, db.dir)
		}
		writes = append(writes, [2][]byte{metaFormat, encodeFormat(formatVersion)})
	} else {
		v, ok := decodeFormat(format)
		if !ok {
			return fmt.Errorf("%w: %q: format marker %q is malformed", ErrCorrupt, db.dir, format)
		}
		if v > formatVersion {
			return fmt.Errorf("%w: %q has format version %d, this build reads up to %d", ErrNotLog, db.dir, v, formatVersion)
		}
	}
	stored, err := db.getMeta(metaIdentity)
	if err != nil {
		return err
	}
	switch {
	case len(stored) > 0 && identity != "" && string(stored) != identity:
		return fmt.Errorf("%w: %q belongs to %q, opened as %q", ErrIdentityMismatch, db.dir, stored, identity)
	case len(stored) == 0 && identity != "":
		writes = append(writes, [2][]byte{metaIdentity, []byte(identity)})
	}
	if len(writes) == 0 {
		return nil
	}
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	for _, w := range writes {
		if err := txn.Set(w[0], w[1]); err != nil {
			return fmt.Errorf("log: writing metadata to %q: %w", db.dir, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("log: writing metadata to %q: %w", db.dir, err)
	}
	// Make the marker durable even with UnsafeNoSync.
	if err := db.bdb.Sync(); err != nil {
		return fmt.Errorf("log: syncing %q: %w", db.dir, err)
	}
	return nil
}

func encodeFormat(v uint32) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(formatTag), v)
}

func decodeFormat(b []byte) (uint32, bool) {
	if len(b) != len(formatTag)+4 || !bytes.HasPrefix(b, formatTag) {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[len(formatTag):]), true
}

// getMeta returns a copy of the value at key, or nil if there is none.
func (db *BadgerDB) getMeta(key []byte) ([]byte, error) {
	var v []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		if v == nil {
			v = []byte{}
		}
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log: reading metadata %q from %q: %w", key, db.dir, err)
	}
	return v, nil
}

// isEmpty reports whether the database holds no key at all.
func (db *BadgerDB) isEmpty() (bool, error) {
	empty := true
	err := db.bdb.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	return empty, err
}

// readFirst returns the stored truncation point of prefix.
func (db *BadgerDB) readFirst(prefix string) (uint64, error) {
	v, err := db.getMeta(firstKey(prefix))
	if err != nil || v == nil {
		return 0, err
	}
	first, ok := decodeSlot(v)
	if !ok {
		return 0, fmt.Errorf("%w: %q: truncation point of prefix %q is %d bytes, want %d",
			ErrCorrupt, db.dir, prefix, len(v), slotLen)
	}
	return first, nil
}

// dirSizes adds up the sizes of Badger's table (.sst) and value-log (.vlog)
// files in dir.
func dirSizes(dir string) (lsm, vlog int64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		var n *int64
		switch filepath.Ext(e.Name()) {
		case ".sst":
			n = &lsm
		case ".vlog":
			n = &vlog
		default:
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return 0, 0, err
		}
		*n += fi.Size()
	}
	return lsm, vlog, nil
}
