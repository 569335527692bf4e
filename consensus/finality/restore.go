package finality

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// RestoreFromStorage rebuilds the in-memory state from the database: the
// justified and finalized pointers, the certificates at or above the
// finalized checkpoint (replayed in target order, pending ones included),
// the votes above it (re-tallied) and the evidence marks. Stored data is
// trusted (it was verified before it was written), so nothing is
// re-verified. Without persistence it does nothing.
func (g *CheckpointFinality) RestoreFromStorage(ctx context.Context) error {
	g.mu.Lock()
	store := g.store
	persisting := g.persisting()
	g.mu.Unlock()
	if !persisting {
		return nil
	}
	start := time.Now()
	g.log.Info("Restoring checkpoint state from storage")
	st, err := store.Restore(ctx)
	if err != nil {
		return fmt.Errorf("restore checkpoint state: %w", err)
	}
	var lastOwn *checkpoint.SignedVote
	if g.signer != nil {
		rec, err := g.signer.Record(ctx)
		if err != nil {
			return fmt.Errorf("restore own signer record: %w", err)
		}
		lastOwn = rec.Last
	}

	g.mu.Lock()
	err = g.replayLocked(ctx, st, lastOwn)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	// Certificates completed by re-tallied votes (a write interrupted by a
	// crash) are persisted now.
	if err := g.settle(ctx); err != nil {
		return err
	}
	g.mu.RLock()
	f, j, pending := g.latestF, g.latestJ, len(g.pendingLinks)
	g.mu.RUnlock()
	g.log.Info(fmt.Sprintf("Checkpoint state restored successfully: last_finalized=%d", f.Number),
		zap.Uint64("last_finalized", f.Number), zap.Uint64("last_justified", j.Number),
		zap.Int("certificates", len(st.Certificates)), zap.Int("votes", len(st.Votes)), zap.Int("evidence", len(st.Evidence)),
		zap.Int("pending_certificates", pending), zap.Duration("duration", time.Since(start)))
	return nil
}

func (g *CheckpointFinality) replayLocked(ctx context.Context, st RestoredState, lastOwn *checkpoint.SignedVote) error {
	f, j := g.genesis, g.genesis
	if st.Finalized != nil && st.Finalized.Number > 0 {
		f = *st.Finalized
	}
	if st.Justified != nil && st.Justified.Number > f.Number {
		j = *st.Justified
	} else {
		j = f
	}
	g.resetLocked(f, j)
	g.log.Info(fmt.Sprintf("Last finalized checkpoint: %d", f.Number), zap.Uint64("checkpoint", f.Number), zap.Stringer("hash", f.Hash),
		cpField("justified", j))
	for _, e := range st.Evidence {
		switch e.Kind {
		case checkpoint.EvidenceConflictingFinality:
			g.halted.Store(true)
			if e.Certificate != nil && len(g.alarmed) < maxAlarms {
				g.alarmed[e.Certificate.Vote().Link()] = struct{}{}
			}
			g.log.Error("Stored conflicting-finality evidence found; voting stays stopped", zap.Uint64("checkpoint", e.Checkpoint))
		case checkpoint.EvidenceDoubleVote, checkpoint.EvidenceSurroundVote:
			if e.Second != nil {
				g.tally.MarkOffender(e.Validator, e.Second.Target.Number)
			}
		}
	}
	for _, c := range st.Certificates {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.Target == f {
			g.certs[f.Number] = c
			continue
		}
		if c.Target.Number <= f.Number || c.Source.Number < f.Number || g.aboveWindow(c.Target.Number) {
			continue
		}
		if src, ok := g.justified[c.Target]; ok && src == c.Target {
			// The justified pointer itself: record its real source.
			g.justified[c.Target] = c.Source
			if _, ok := g.certs[c.Target.Number]; !ok {
				g.certs[c.Target.Number] = c
			}
			if err := g.foldCertificateVotesLocked(ctx, c); err != nil {
				return err
			}
			if err := g.applyPendingLocked(ctx, c.Target, false); err != nil {
				return err
			}
			continue
		}
		if err := g.submitLocked(ctx, c, submission{}); err != nil {
			return err
		}
	}
	for _, v := range st.Votes {
		if v.Target.Number <= g.latestF.Number || g.aboveWindow(v.Target.Number) {
			continue
		}
		if g.auth.CheckHeader(v.Vote) != nil || g.auth.CheckIndex(v.Validator) != nil {
			continue
		}
		if g.isOwn(v.Validator) && lastOwn != nil && !ownVoteConsistent(checkpoint.SignerRecord{Last: lastOwn}, v) {
			continue
		}
		if _, _, err := g.countVoteLocked(ctx, v, true); err != nil {
			return err
		}
	}
	if lastOwn != nil {
		own := *lastOwn
		g.lastOwn = &own
	}
	// Pointers raised by replay beyond the stored ones are written back.
	if err := g.persistReplayedPointersLocked(ctx, st); err != nil {
		return err
	}
	// Nothing of the replay is announced.
	g.outbox = nil
	g.lastProgress = g.clock.Now()
	return nil
}

func (g *CheckpointFinality) persistReplayedPointersLocked(ctx context.Context, st RestoredState) error {
	var jp, fp *checkpoint.Checkpoint
	if st.Justified == nil || g.latestJ.Number > st.Justified.Number {
		if g.latestJ.Number > 0 {
			j := g.latestJ
			jp = &j
		}
	}
	if st.Finalized == nil || g.latestF.Number > st.Finalized.Number {
		if g.latestF.Number > 0 {
			f := g.latestF
			fp = &f
		}
	}
	if jp == nil && fp == nil {
		return nil
	}
	c, ok := g.certs[g.latestJ.Number]
	if !ok {
		return nil
	}
	if err := g.store.StoreCertificate(ctx, c, jp, fp); err != nil {
		return fmt.Errorf("store replayed checkpoint pointers: %w", err)
	}
	return nil
}
