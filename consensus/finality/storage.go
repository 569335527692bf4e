package finality

import (
	"context"
	"crypto/ed25519"
	"errors"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// CheckpointStorage is what the gadget needs from its database
// (implemented by checkpointdb.CheckpointDB). Durability contract:
//
//   - StoreSignerRecord is synced (pebble.Sync) before it returns; the gadget
//     releases an own vote only after it returned nil.
//   - StoreCertificate writes the certificate and the new justified/finalized
//     pointers in one synced batch; pointers never move backwards (a lower
//     pointer is ignored, not an error).
//   - StoreVote may be unsynced; Flush makes every earlier write durable.
//   - StoreEvidence is synced.
//
// Implementations are safe for concurrent use.
type CheckpointStorage interface {
	// LoadSignerRecord returns the record of pub; found is false when the key
	// never signed on this database.
	LoadSignerRecord(ctx context.Context, pub ed25519.PublicKey) (rec checkpoint.SignerRecord, found bool, err error)
	// StoreSignerRecord persists rec with a synced write.
	StoreSignerRecord(ctx context.Context, rec checkpoint.SignerRecord) error
	// StoreVote stores a peer (or own) vote keyed by (target number, validator).
	// Storing a vote for an existing key keeps the first one.
	StoreVote(ctx context.Context, v checkpoint.SignedVote) error
	// StoreCertificate stores cert (keyed by target number) and, when non-nil,
	// raises the justified and finalized pointers, in one synced batch.
	StoreCertificate(ctx context.Context, cert checkpoint.Certificate, justified, finalized *checkpoint.Checkpoint) error
	// StoreEvidence persists evidence (synced).
	StoreEvidence(ctx context.Context, e checkpoint.Evidence) error
	// StoreHalt persists a safety alarm (synced); it stays until an
	// operator clears it.
	StoreHalt(ctx context.Context, h checkpoint.Halt) error
	// StoreHandOff persists the hand-off certificate of set cert.SetID (the
	// certificate that finalized the checkpoint at which set cert.SetID+1
	// took over) with a synced write. Hand-offs are never pruned: every
	// finality proof carries them. Storing the same set's hand-off again is
	// a no-op; a different certificate for a set already stored is an error
	// wrapping ErrHandOffConflict.
	StoreHandOff(ctx context.Context, cert checkpoint.Certificate) error
	// Restore returns what the gadget needs at start-up, without scanning
	// retained history.
	Restore(ctx context.Context) (RestoredState, error)
	// Flush makes every earlier write durable (WAL sync).
	Flush(ctx context.Context) error
	// Prune keeps exactly the last keep checkpoints at and below the
	// finalized one (and everything above it) and returns how many
	// checkpoints were removed.
	Prune(ctx context.Context, keep uint64) (int, error)
}

// RestoredState is the state read back at start-up.
type RestoredState struct {
	// Justified and Finalized are the latest justified and finalized
	// checkpoints; nil means "none beyond genesis".
	Justified *checkpoint.Checkpoint
	Finalized *checkpoint.Checkpoint
	// Certificates are the stored certificates whose target is at or above
	// the finalized checkpoint number (including the finalized and justified
	// ones), in increasing target order.
	Certificates []checkpoint.Certificate
	// Votes are the stored votes whose target is above the finalized
	// checkpoint number.
	Votes []checkpoint.SignedVote
	// Evidence holds stored evidence about checkpoints above finalized (for
	// offender bookkeeping).
	Evidence []checkpoint.Evidence
	// Halts are the persisted safety alarms (never pruned): while any is
	// present the validator must not vote. Only an operator clears them.
	Halts []checkpoint.Halt
	// HandOffs are the stored hand-off certificates in set id order.
	HandOffs []checkpoint.Certificate
}

// ErrHandOffConflict: a second, different hand-off certificate for a set
// whose hand-off is stored.
var ErrHandOffConflict = errors.New("a different hand-off certificate is stored for this set")
