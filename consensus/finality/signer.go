package finality

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Signer signs with the local validator key.
type Signer interface {
	PublicKey() ed25519.PublicKey
	Sign(msg []byte) checkpoint.Signature
}

// KeySigner is a Signer over an in-memory ed25519 private key.
type KeySigner struct{ key ed25519.PrivateKey }

// NewKeySigner wraps key.
func NewKeySigner(key ed25519.PrivateKey) *KeySigner { return &KeySigner{key: key} }

// PublicKey returns the public key.
func (k *KeySigner) PublicKey() ed25519.PublicKey { return k.key.Public().(ed25519.PublicKey) }

// Sign signs msg.
func (k *KeySigner) Sign(msg []byte) checkpoint.Signature {
	var s checkpoint.Signature
	copy(s[:], ed25519.Sign(k.key, msg))
	return s
}

// ErrSignerFailed is returned by every call after a signer record could not
// be persisted: the durable state is unknown, so the signer fails closed until
// the process restarts and reloads the record from disk.
var ErrSignerFailed = errors.New("signer stopped after a failed signer-record write")

// SafeSigner signs votes only when the persisted signer record allows it,
// and persists the new record with a synced write before the signature is
// returned (record before release). Asking again for the identical vote
// returns the identical stored signature. Safe for concurrent use: calls are
// serialized, so of many concurrent conflicting requests exactly one is
// signed.
type SafeSigner struct {
	mu      sync.Mutex
	store   CheckpointStorage
	signer  Signer
	index   checkpoint.ValidatorIndex
	genesis checkpoint.Hash
	rec     *checkpoint.SignerRecord // cached; nil until loaded
	failed  error
	mut     SignerMutations
	// deferred is the record a DeferRecordWrite mutant has not written yet.
	deferred *checkpoint.SignerRecord
	// sched, when set, gives the index per set id and the hand-off rules
	// (SetSchedule).
	sched *checkpoint.Schedule
}

// SetSchedule makes the signer follow an authority schedule: each vote is
// signed with the key's index in the vote's set (a key outside that set
// signs nothing) and checked with SignerRecord.CheckInSchedule.
func (s *SafeSigner) SetSchedule(sched checkpoint.Schedule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sched = &sched
}

// ErrNotInSet: the key is not in the authority set a vote names.
var ErrNotInSet = errors.New("the signing key is not in the vote's authority set")

// SignerMutations are deliberately broken signer rules for the
// deterministic simulator's mutants. Production code never sets them.
type SignerMutations struct {
	// SkipSourceCheck signs votes whose source is below an earlier own
	// source (so a new vote may surround an old one).
	SkipSourceCheck bool
	// DeferRecordWrite releases the signature before the record is written
	// (it is written at the next signing).
	DeferRecordWrite bool
}

// NewSafeSigner returns a signer for validator index of the chain genesis.
// Mutations are for the simulator only.
func NewSafeSigner(store CheckpointStorage, signer Signer, index checkpoint.ValidatorIndex, genesis checkpoint.Hash, mutations ...SignerMutations) *SafeSigner {
	s := &SafeSigner{store: store, signer: signer, index: index, genesis: genesis}
	if len(mutations) > 0 {
		s.mut = mutations[0]
	}
	return s
}

// Index returns the validator index the signer signs as.
func (s *SafeSigner) Index() checkpoint.ValidatorIndex { return s.index }

// PublicKey returns the signing key.
func (s *SafeSigner) PublicKey() ed25519.PublicKey { return s.signer.PublicKey() }

func (s *SafeSigner) load(ctx context.Context) (*checkpoint.SignerRecord, error) {
	if s.rec != nil {
		return s.rec, nil
	}
	rec, found, err := s.store.LoadSignerRecord(ctx, s.signer.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("load signer record: %w", err)
	}
	if !found {
		rec = checkpoint.SignerRecord{PublicKey: s.signer.PublicKey(), Genesis: s.genesis}
	}
	if rec.Genesis != s.genesis {
		return nil, fmt.Errorf("signer record belongs to another chain: %w", checkpoint.ErrWrongChain)
	}
	s.rec = &rec
	return s.rec, nil
}

// Record returns a copy of the current signer record.
func (s *SafeSigner) Record(ctx context.Context) (checkpoint.SignerRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.load(ctx)
	if err != nil {
		return checkpoint.SignerRecord{}, err
	}
	return rec.Clone(), nil
}

// SignVote returns a signed vote for v, or an error wrapping
// checkpoint.ErrSlashable when the signer record forbids it.
func (s *SafeSigner) SignVote(ctx context.Context, v checkpoint.Vote) (checkpoint.SignedVote, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return checkpoint.SignedVote{}, s.failed
	}
	if err := ctx.Err(); err != nil {
		return checkpoint.SignedVote{}, err
	}
	rec, err := s.load(ctx)
	if err != nil {
		return checkpoint.SignedVote{}, err
	}
	check := rec
	if s.mut.SkipSourceCheck {
		c := rec.Clone()
		c.MinSource = 0
		if c.Last != nil {
			c.Last.Source.Number = 0
		}
		check = &c
	}
	index := s.index
	var decision checkpoint.Decision
	if s.sched != nil {
		set, ok := s.sched.Set(v.SetID)
		if !ok {
			return checkpoint.SignedVote{}, fmt.Errorf("%w: set %d is not scheduled", ErrNotInSet, v.SetID)
		}
		i, in := set.IndexOf(s.signer.PublicKey())
		if !in {
			return checkpoint.SignedVote{}, fmt.Errorf("%w: set %d", ErrNotInSet, v.SetID)
		}
		index = i
		decision, err = check.CheckInSchedule(v, *s.sched)
	} else {
		decision, err = check.Check(v)
	}
	if err != nil {
		return checkpoint.SignedVote{}, err
	}
	if decision == checkpoint.ReturnStored {
		return *rec.Last, nil
	}
	sv := checkpoint.SignedVote{Vote: v, Validator: index, Signature: s.signer.Sign(v.SigningBytes())}
	next := rec.Clone()
	next.Last = &sv
	if s.mut.DeferRecordWrite {
		if d := s.deferred; d != nil {
			if err := s.store.StoreSignerRecord(ctx, *d); err != nil {
				return checkpoint.SignedVote{}, err
			}
		}
		s.deferred = &next
		s.rec = &next
		return sv, nil
	}
	if err := s.store.StoreSignerRecord(ctx, next); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Cancelled before the write was attempted: nothing changed.
			return checkpoint.SignedVote{}, err
		}
		s.failed = fmt.Errorf("%w: %w", ErrSignerFailed, err)
		return checkpoint.SignedVote{}, s.failed
	}
	s.rec = &next
	return sv, nil
}

// Initialise raises the record's low watermarks to at least minSource and
// minTarget with a synced write (never lowering anything): the first-use
// step of a fresh record, after the node listened for its key. Later votes
// need source >= minSource and target > minTarget.
func (s *SafeSigner) Initialise(ctx context.Context, minSource, minTarget uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	rec, err := s.load(ctx)
	if err != nil {
		return err
	}
	next := rec.Clone()
	next.MinSource = max(next.MinSource, minSource)
	next.MinTarget = max(next.MinTarget, minTarget)
	if next.MinSource == rec.MinSource && next.MinTarget == rec.MinTarget && rec.Last != nil {
		return nil
	}
	if err := s.store.StoreSignerRecord(ctx, next); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return err
		}
		s.failed = fmt.Errorf("%w: %w", ErrSignerFailed, err)
		return s.failed
	}
	s.rec = &next
	return nil
}
