package finality

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality/tally"
)

// headerVerdict runs the cheapest checks of a vote or certificate header:
// chain, set id, link shape.
func (g *CheckpointFinality) headerVerdict(v checkpoint.Vote) Verdict {
	err := g.auth.CheckHeader(v)
	switch {
	case err == nil:
		return VerdictAccept
	case errors.Is(err, checkpoint.ErrWrongSet):
		return VerdictIgnore
	default: // wrong chain, bad link
		return VerdictReject
	}
}

// OnCheckpointBlock is called when checkpoint block cp was imported on the
// best chain. A validator that is not halted votes J -> cp when cp is above
// the latest justified checkpoint J and descends from it: the vote is signed
// through SafeSigner (record synced first), stored, counted, then broadcast.
// A refusal by the signer's safety rules is normal and returns nil.
func (g *CheckpointFinality) OnCheckpointBlock(ctx context.Context, cp checkpoint.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if g.signer == nil || g.halted.Load() || cp.Number == 0 {
		return nil
	}
	g.mu.RLock()
	j := g.latestJ
	far := g.aboveWindow(cp.Number)
	g.mu.RUnlock()
	if cp.Number <= j.Number || far {
		g.log.Debug("Not voting: checkpoint outside the voting range", cpField("checkpoint", cp), cpField("justified", j))
		return nil
	}
	if !g.anc.IsDescendant(cp.Hash, j) {
		g.log.Debug("Not voting: checkpoint does not descend from the latest justified checkpoint", cpField("checkpoint", cp), cpField("justified", j))
		return nil
	}
	vote := checkpoint.Vote{Genesis: g.auth.Genesis, SetID: g.auth.SetID, Source: j, Target: cp}
	sv, err := g.signer.SignVote(ctx, vote)
	if errors.Is(err, checkpoint.ErrSlashable) {
		g.log.Info("Not voting: the signer record forbids this vote", cpField("source", j), cpField("target", cp), zap.Error(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("sign checkpoint vote: %w", err)
	}
	g.m.ownVotes.Add(1)

	g.mu.RLock()
	store, persisting := g.store, g.persisting()
	g.mu.RUnlock()
	if persisting {
		if err := store.StoreVote(ctx, sv); err != nil {
			return fmt.Errorf("store own vote: %w", err)
		}
	}
	g.mu.Lock()
	err = g.countOwnVoteLocked(ctx, sv)
	g.mu.Unlock()
	if serr := g.settle(ctx); err == nil {
		err = serr
	}
	return err
}

// countOwnVoteLocked counts our own (stored) vote and queues its broadcast.
func (g *CheckpointFinality) countOwnVoteLocked(ctx context.Context, sv checkpoint.SignedVote) error {
	if g.halted.Load() {
		// A safety alarm was raised while we were signing: do not release.
		return nil
	}
	g.lastOwn = &sv
	g.log.Info("Voted for checkpoint", cpField("source", sv.Source), cpField("target", sv.Target), zap.Uint32("validator", uint32(sv.Validator)))
	// The vote is queued before any certificate it completes; both go out
	// once that certificate is persisted, after the lock is released.
	g.enqueue(event{kind: evVote, vote: sv})
	_, _, err := g.countVoteLocked(ctx, sv, true)
	return err
}

// OnVote handles a vote received from the network. Checks run cheapest
// first: chain, set id, link shape, validator index, checkpoint window,
// duplicate, and only then the signature. The error is only for local
// (storage) failures.
func (g *CheckpointFinality) OnVote(ctx context.Context, v checkpoint.SignedVote) (Verdict, error) {
	verdict, err := g.onVote(ctx, v)
	if err == nil {
		countVerdict(verdict, &g.m.votesAccepted, &g.m.votesIgnored, &g.m.votesRejected)
	}
	return verdict, err
}

func (g *CheckpointFinality) onVote(ctx context.Context, v checkpoint.SignedVote) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return VerdictIgnore, err
	}
	if verdict := g.headerVerdict(v.Vote); verdict != VerdictAccept {
		return verdict, nil
	}
	if g.auth.CheckIndex(v.Validator) != nil {
		return VerdictReject, nil
	}
	g.mu.RLock()
	verdict := g.precheckVoteLocked(v)
	g.mu.RUnlock()
	if verdict != VerdictAccept {
		return verdict, nil
	}
	g.m.voteChecks.Add(1)
	if err := v.Verify(g.auth.Keys[v.Validator]); err != nil {
		g.log.Debug("Rejected checkpoint vote", zap.Uint32("validator", uint32(v.Validator)), cpField("target", v.Target), zap.Error(err))
		return VerdictReject, nil
	}
	g.mu.Lock()
	verdict, counted, err := g.addVerifiedVoteLocked(ctx, v)
	store, persisting := g.store, g.persisting()
	if counted && persisting && g.certWrites > 0 {
		// A certificate write is in progress: its writer stores the vote.
		g.voteBuf = append(g.voteBuf, v)
		counted = false
	}
	settle := len(g.jobs) > 0 || g.needsDeliveryLocked()
	g.mu.Unlock()
	// The vote is written outside the lock (an unsynced write).
	if err == nil && counted && persisting {
		if serr := store.StoreVote(ctx, v); serr != nil {
			err = fmt.Errorf("store vote: %w", serr)
		}
	}
	if settle {
		if serr := g.settle(ctx); err == nil {
			err = serr
		}
	}
	return verdict, err
}

// precheckVoteLocked runs the checks that need state but no signature:
// window (old or too far in the future), duplicate, and repeated
// equivocation already recorded as evidence.
func (g *CheckpointFinality) precheckVoteLocked(v checkpoint.SignedVote) Verdict {
	if v.Target.Number <= g.latestF.Number || g.aboveWindow(v.Target.Number) {
		return VerdictIgnore
	}
	if prior, ok := g.tally.Lookup(v.Validator, v.Target.Number); ok {
		if prior.Vote == v.Vote || g.tally.IsOffender(v.Validator, v.Target.Number) {
			return VerdictIgnore
		}
	}
	return VerdictAccept
}

// addVerifiedVoteLocked counts a vote whose signature was verified; counted
// says the caller must store it.
func (g *CheckpointFinality) addVerifiedVoteLocked(ctx context.Context, v checkpoint.SignedVote) (Verdict, bool, error) {
	if verdict := g.precheckVoteLocked(v); verdict != VerdictAccept {
		return verdict, false, nil // the state moved while the signature was checked
	}
	if g.isOwn(v.Validator) {
		ours, err := g.checkOwnVoteLocked(ctx, v)
		if err != nil || !ours {
			return VerdictIgnore, false, err
		}
	}
	return g.countVoteLocked(ctx, v, true)
}

func (g *CheckpointFinality) isOwn(i checkpoint.ValidatorIndex) bool {
	return g.signer != nil && i == g.ownIndex
}

// checkOwnVoteLocked decides whether v, signed with our own key, is a vote
// this node signed. With the minimal signer record (last vote, targets
// strictly increasing, sources never decreasing) a vote is ours only if it
// is the last one, or older than it and consistent with it and with the own
// votes still counted. Anything else was signed by another instance running
// with our key: voting stops.
func (g *CheckpointFinality) checkOwnVoteLocked(ctx context.Context, v checkpoint.SignedVote) (bool, error) {
	rec, err := g.signer.Record(ctx)
	if err != nil {
		return false, fmt.Errorf("read own signer record: %w", err)
	}
	if ownVoteConsistent(rec, v) {
		if prior, ok := g.tally.Lookup(v.Validator, v.Target.Number); !ok || prior.Vote == v.Vote {
			return true, nil
		}
	}
	g.halted.Store(true)
	fields := []zap.Field{zap.Uint32("validator", uint32(v.Validator)), cpField("source", v.Source), cpField("target", v.Target)}
	if rec.Last != nil {
		fields = append(fields, cpField("last_signed_source", rec.Last.Source), cpField("last_signed_target", rec.Last.Target))
	}
	g.log.Error("found conflicting vote from ourselves", fields...)
	return false, nil
}

func ownVoteConsistent(rec checkpoint.SignerRecord, v checkpoint.SignedVote) bool {
	if rec.Last == nil {
		return false
	}
	last := *rec.Last
	if last.Vote == v.Vote {
		return true
	}
	if v.Target.Number >= last.Target.Number || v.Source.Number > last.Source.Number {
		return false
	}
	_, conflict := checkpoint.Conflicts(last, v)
	return !conflict
}

// countVoteLocked classifies v against the tally and counts it (counted
// reports that it did). Conflicts become evidence (stored once per validator
// and target number). form says whether reaching a quorum builds a
// certificate.
func (g *CheckpointFinality) countVoteLocked(ctx context.Context, v checkpoint.SignedVote, form bool) (verdict Verdict, counted bool, err error) {
	r := g.tally.Classify(v)
	switch r.Outcome {
	case tally.Counted:
	case tally.DoubleVote, tally.SurroundVote:
		return VerdictIgnore, false, g.recordEquivocationLocked(ctx, v, r)
	default: // stale, duplicate
		return VerdictIgnore, false, nil
	}
	_, weight := g.tally.Add(v)
	if ce := g.log.Check(zapcore.DebugLevel, ""); ce != nil {
		ce.Message = fmt.Sprintf("Stored signature: checkpoint=%d, validator=%d, total=%d", v.Target.Number, v.Validator, weight)
		ce.Write(zap.Uint64("checkpoint", v.Target.Number), zap.Uint32("validator", uint32(v.Validator)), zap.Int("total", weight))
	}
	if form && weight >= g.quorum {
		if err := g.formCertificateLocked(ctx, v.Link()); err != nil {
			return VerdictAccept, true, err
		}
	}
	return VerdictAccept, true, nil
}

func (g *CheckpointFinality) recordEquivocationLocked(ctx context.Context, v checkpoint.SignedVote, r tally.Result) error {
	if !g.tally.MarkOffender(v.Validator, v.Target.Number) {
		return nil
	}
	first, second := r.Prior, v
	ev := checkpoint.Evidence{Kind: r.Outcome.EvidenceKind(), Validator: v.Validator, First: &first, Second: &second, Checkpoint: v.Target.Number}
	if g.persisting() {
		if err := g.store.StoreEvidence(ctx, ev); err != nil {
			return fmt.Errorf("store evidence: %w", err)
		}
	}
	g.m.evidence.Add(1)
	g.log.Warn("Stored evidence of validator misbehaviour",
		zap.Stringer("kind", ev.Kind), zap.Uint32("validator", uint32(v.Validator)), zap.Uint64("checkpoint", ev.Checkpoint),
		cpField("first_source", first.Source), cpField("first_target", first.Target),
		cpField("second_source", second.Source), cpField("second_target", second.Target))
	return nil
}
