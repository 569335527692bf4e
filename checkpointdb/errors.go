package checkpointdb

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Sentinel errors. Errors returned by this package wrap one of them (test
// with errors.Is); refusals of Open are single-line messages that say what to
// do.
var (
	// ErrCorrupted: a file or a record of the database cannot be trusted
	// (Pebble checksum or format errors, undecodable records, keys that do
	// not match their values).
	ErrCorrupted = errors.New("checkpoint database corrupted")
	// ErrSchemaVersion: the database was written with a schema version this
	// build does not know.
	ErrSchemaVersion = errors.New("unsupported checkpoint database schema version")
	// ErrWrongChain: the database (or a record given to it) belongs to a
	// chain with another genesis hash.
	ErrWrongChain = errors.New("checkpoint database belongs to another chain")
	// ErrClosed: the database was closed.
	ErrClosed = errors.New("checkpoint database closed")
	// ErrLocked: another process (or another CheckpointDB in this process)
	// holds the database directory.
	ErrLocked = errors.New("checkpoint database in use by another process")
	// ErrReadOnly: a write on a database opened with Options.ReadOnly.
	ErrReadOnly = errors.New("checkpoint database opened read-only")
	// ErrNotExist: ReadOnly open of a path that holds no checkpoint database.
	ErrNotExist = errors.New("checkpoint database does not exist")
	// ErrFatal: Pebble reported a fatal error (Logger.Fatalf, for example a
	// failed WAL sync). The write in progress may not be durable; every later
	// call returns this error until the process reopens the database.
	ErrFatal = errors.New("checkpoint database stopped after a fatal storage error")
	// ErrSignerRegression: StoreSignerRecord was given a record that would
	// move the stored record backwards (lower watermarks, or a different
	// vote for the same target). The signer's durable state is kept.
	ErrSignerRegression = errors.New("signer record would move backwards")
	// ErrHandOffGap: StoreHandOff was given the hand-off of a set that is
	// neither stored nor next to the stored ones (the stored set ids would
	// not be consecutive, which Open and Restore take for corruption).
	ErrHandOffGap = errors.New("hand-off would leave a gap in the stored set ids")
)

// refusal is a one-line error that refuses to open (or use) a database and
// says what to do. It unwraps to its sentinel and to its cause.
type refusal struct {
	msg  string
	errs []error
}

func (r *refusal) Error() string   { return r.msg }
func (r *refusal) Unwrap() []error { return r.errs }

const backupHint = "restore a backup or move the directory away to resync (the signer record inside protects against double signing)"

// oneLine flattens a (possibly multi-line) Pebble error message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func corruptedError(path string, cause error) error {
	return &refusal{
		msg:  fmt.Sprintf("checkpoint database at %s is corrupted (%s): refusing to start; %s", path, oneLine(cause.Error()), backupHint),
		errs: []error{ErrCorrupted, cause},
	}
}

func schemaVersionError(path string, got uint32) error {
	return &refusal{
		msg: fmt.Sprintf("checkpoint database at %s has schema version %d, this build supports version %d: refusing to start; run a flare-node release that supports version %d or %s",
			path, got, SchemaVersion, got, backupHint),
		errs: []error{ErrSchemaVersion},
	}
}

func wrongChainError(path string, stored, want checkpoint.Hash) error {
	return &refusal{
		msg: fmt.Sprintf("checkpoint database at %s belongs to the chain with genesis %s, not %s: refusing to start; point the node at this chain's data directory, or move the directory away (keep it: its signer record protects the other chain's key)",
			path, stored, want),
		errs: []error{ErrWrongChain, checkpoint.ErrWrongChain},
	}
}

func lockedError(path string, cause error) error {
	return &refusal{
		msg:  fmt.Sprintf("checkpoint database at %s is in use by another process (%s): stop the other flare-node first", path, oneLine(cause.Error())),
		errs: []error{ErrLocked, cause},
	}
}

// corruptRecord reports an undecodable or inconsistent record read at run
// time (wrapped in ErrCorrupted).
func corruptRecord(kind KeyKind, key []byte, cause error) error {
	return fmt.Errorf("%w: %s record %x: %w", ErrCorrupted, kind, key, cause)
}

// isPebbleCorruption reports whether err is one of Pebble's corruption
// signals: its corruption marker, or a record-level format error of the WAL
// or MANIFEST.
func isPebbleCorruption(err error) bool {
	return pebble.IsCorruptionError(err) ||
		errors.Is(err, pebble.ErrCorruption) ||
		errors.Is(err, record.ErrInvalidChunk) ||
		errors.Is(err, record.ErrZeroedChunk) ||
		errors.Is(err, record.ErrUnexpectedEOF)
}

// isInconsistent reports Pebble's start-up consistency check failures: an
// sstable the MANIFEST lists is missing or has another size on disk. Pebble
// does not mark these as corruption.
func isInconsistent(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "object size mismatch") ||
		(strings.Contains(msg, "(type sstable) unknown to the objstorage provider") && errors.Is(err, os.ErrNotExist))
}

// storageError maps an error of a Pebble operation: corruption becomes
// ErrCorrupted, everything else is wrapped with what was being done.
func storageError(op string, err error) error {
	if err == nil {
		return nil
	}
	if isPebbleCorruption(err) && !errors.Is(err, ErrCorrupted) {
		return fmt.Errorf("%s: %w: %w", op, ErrCorrupted, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
