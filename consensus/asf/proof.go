package asf

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// ErrStaleProof is returned by StoreFinalityProof for a proof that would
// lower what is stored: its finalized checkpoint is below the chain's
// finalized checkpoint or the stored proof's, or it finalizes the same
// checkpoint as the stored proof with a lower justified checkpoint. Nothing
// is written; callers racing with a newer proof can ignore it.
var ErrStaleProof = errors.New("finality proof is older than the stored finality")

// authorities returns the authority set the chain's proofs are checked
// against: the spec's keys and set id, bound to the genesis block hash.
func (c *Chain) authorities() checkpoint.AuthoritySet {
	return checkpoint.AuthoritySet{Genesis: c.genesisHash, SetID: c.spec.SetID, Keys: c.keys}
}

// schedule is the authority schedule proofs are checked against: the
// spec's genesis set and its scheduled hand-offs.
func (c *Chain) schedule() checkpoint.Schedule {
	sched := c.spec.Schedule()
	sched.Genesis = c.authorities()
	if len(c.changes) > 0 {
		// ChainOptions.AuthorityChanges (the simulator's chains).
		sched.Changes = c.changes
	}
	return sched
}

// verifyProof verifies p through every hand-off (checkpoint.Schedule.
// VerifyFinalityProof) and returns what it finalizes and justifies.
func (c *Chain) verifyProof(p checkpoint.FinalityProof) (fin, just checkpoint.Checkpoint, err error) {
	fin, just, _, err = c.schedule().VerifyFinalityProof(p)
	return fin, just, err
}

// storedProof is the finality proof kept in the chain database, with what
// it proves.
type storedProof struct {
	proof     checkpoint.FinalityProof
	finalized checkpoint.Checkpoint
	justified checkpoint.Checkpoint
}

// StoreFinalityProof verifies p in full against the chain spec's authority
// set (checkpoint.AuthoritySet.VerifyFinalityProof; failures wrap
// checkpoint.ErrBadProof) and stores it with a synced write, replacing the
// stored proof, so that a node can serve and resume from its latest
// finality with the chain database alone. With F the checkpoint p finalizes
// and J the one it justifies, p is stored when:
//
//   - F is at or above the chain's finalized checkpoint: at the same number
//     it must be the same block, above it F's block, if stored, must be at
//     F's height and descend from the finalized block (else
//     ErrConflictsFinalized or ErrInvalidCheckpoint). F's block need not be
//     stored: a node catching up by proof stores the proof before the
//     blocks;
//   - p does not lower the stored proof: F is above the stored proof's
//     finalized checkpoint, or it is that checkpoint (another block at that
//     number is ErrConflictsFinalized) and J is at or above the stored
//     justified checkpoint (another block at the same number is
//     ErrInvalidCheckpoint).
//
// A proof below either is ErrStaleProof and writes nothing. Storing the same
// proof again writes it again. StoreFinalityProof does not move the chain's
// finalized or justified checkpoints (SetFinalized, SetJustified do).
func (c *Chain) StoreFinalityProof(ctx context.Context, p checkpoint.FinalityProof) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.readOnly {
		return ErrReadOnly
	}
	fin, just, err := c.verifyProof(p)
	if err != nil {
		return err
	}
	enc, err := checkpoint.EncodeFinalityProof(p)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	switch {
	case fin.Number < c.finalized.Number:
		return fmt.Errorf("%w: proof finalizes %s, the chain's finalized checkpoint is %s", ErrStaleProof, fin, c.finalized)
	case fin.Number == c.finalized.Number && fin.Hash != c.finalized.Hash:
		return fmt.Errorf("%w: proof finalizes %s, the chain finalized %s", ErrConflictsFinalized, fin, c.finalized)
	case fin.Number > c.finalized.Number:
		if _, err := c.checkCheckpoint(fin); err != nil {
			return fmt.Errorf("proof finalizes %s: %w", fin, err)
		}
	}
	if s := c.proof; s != nil {
		switch {
		case fin.Number < s.finalized.Number:
			return fmt.Errorf("%w: proof finalizes %s, the stored proof %s", ErrStaleProof, fin, s.finalized)
		case fin.Number == s.finalized.Number && fin.Hash != s.finalized.Hash:
			return fmt.Errorf("%w: proof finalizes %s, the stored proof %s", ErrConflictsFinalized, fin, s.finalized)
		case fin.Number == s.finalized.Number && just.Number < s.justified.Number:
			return fmt.Errorf("%w: proof justifies %s, the stored proof %s", ErrStaleProof, just, s.justified)
		case fin.Number == s.finalized.Number && just.Number == s.justified.Number && just.Hash != s.justified.Hash:
			return fmt.Errorf("%w: proof justifies %s, the stored proof justifies %s", ErrInvalidCheckpoint, just, s.justified)
		}
	}
	b := c.db.NewBatch()
	defer b.Close()
	if err := b.Set(keyFinalProof, enc, nil); err != nil {
		return err
	}
	if err := c.commit(b); err != nil {
		return fmt.Errorf("store finality proof of %s: %w", fin, err)
	}
	c.proof = &storedProof{proof: cloneProof(p), finalized: fin, justified: just}
	c.log.Debug("Stored finality proof", zap.Stringer("finalized", fin), zap.Stringer("justified", just))
	return nil
}

// FinalityProof returns the stored finality proof; found is false when none
// was stored.
func (c *Chain) FinalityProof() (p checkpoint.FinalityProof, found bool, err error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return checkpoint.FinalityProof{}, false, ErrClosed
	}
	if c.proof == nil {
		return checkpoint.FinalityProof{}, false, nil
	}
	return cloneProof(c.proof.proof), true, nil
}

// loadProof reads and re-verifies the stored finality proof at open.
func (c *Chain) loadProof() error {
	v, found, err := get(c.db, keyFinalProof)
	if err != nil {
		return c.corrupted("read finality proof: %s", oneLine(err))
	}
	if !found {
		return nil
	}
	p, err := checkpoint.DecodeFinalityProof(v)
	if err != nil {
		return c.corrupted("finality proof: %s", oneLine(err))
	}
	fin, just, err := c.verifyProof(p)
	if err != nil {
		return c.corrupted("finality proof: %s", oneLine(err))
	}
	c.proof = &storedProof{proof: p, finalized: fin, justified: just}
	return nil
}

func cloneProof(p checkpoint.FinalityProof) checkpoint.FinalityProof {
	out := p
	out.Finalizing.Signatures = slices.Clone(p.Finalizing.Signatures)
	if p.Justified != nil {
		j := *p.Justified
		j.Signatures = slices.Clone(j.Signatures)
		out.Justified = &j
	}
	return out
}
