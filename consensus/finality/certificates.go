package finality

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// OnCertificate handles a certificate received from the network or from
// sync. Its shape (header, quorum, distinct ordered in-range signers) is
// checked before any signature; it is fully re-verified before it is
// trusted. A certificate whose source is not (yet) known justified is kept
// and applied when the source becomes justified. A valid certificate that
// contradicts the finalized chain is stored as conflicting-finality evidence
// and stops voting. The error is only for local (storage) failures.
func (g *CheckpointFinality) OnCertificate(ctx context.Context, c checkpoint.Certificate) (Verdict, error) {
	verdict, err := g.onCertificate(ctx, c)
	if err == nil {
		countVerdict(verdict, &g.m.certsAccepted, &g.m.certsIgnored, &g.m.certsRejected)
	}
	return verdict, err
}

func (g *CheckpointFinality) onCertificate(ctx context.Context, c checkpoint.Certificate) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return VerdictIgnore, err
	}
	if verdict := g.headerVerdict(c.Vote()); verdict != VerdictAccept {
		return verdict, nil
	}
	if err := g.auth.CheckCertificateShape(c); err != nil {
		g.log.Debug("Rejected checkpoint certificate", cpField("target", c.Target), zap.Error(err))
		return VerdictReject, nil
	}
	g.mu.RLock()
	verdict, _, alarm := g.precheckCertificateLocked(c)
	g.mu.RUnlock()
	if verdict != VerdictAccept && !alarm {
		return verdict, nil
	}
	g.m.certChecks.Add(1)
	if err := g.auth.VerifyCertificate(c); err != nil {
		g.log.Debug("Rejected checkpoint certificate", cpField("target", c.Target), zap.Error(err))
		return VerdictReject, nil
	}
	// Keep our own copy: the caller may reuse the signature slice.
	c.Signatures = append([]checkpoint.CertSignature(nil), c.Signatures...)

	g.mu.Lock()
	verdict, number, alarm := g.precheckCertificateLocked(c)
	var err error
	switch {
	case alarm:
		err = g.alarmLocked(ctx, c, number)
	case verdict == VerdictAccept:
		err = g.acceptCertificateLocked(ctx, c, true, false)
	}
	deliver := g.needsDeliveryLocked()
	g.mu.Unlock()
	if deliver {
		g.deliver(ctx)
	}
	if err != nil {
		return VerdictIgnore, err
	}
	return verdict, nil
}

// precheckCertificateLocked classifies a certificate without verifying its
// signatures. alarm reports that it would contradict the finalized chain at
// checkpoint number (the caller verifies it and raises the alarm).
func (g *CheckpointFinality) precheckCertificateLocked(c checkpoint.Certificate) (verdict Verdict, number uint64, alarm bool) {
	if n, bad := g.finalityConflictLocked(c); bad {
		if _, seen := g.alarmed[c.Vote().Link()]; seen {
			return VerdictIgnore, n, false
		}
		return VerdictIgnore, n, true
	}
	f := g.latestF
	switch {
	case c.Target.Number <= f.Number, g.aboveWindow(c.Target.Number):
		return VerdictIgnore, 0, false
	case c.Source.Number < f.Number:
		// A quorum linking from below the finalized checkpoint over it
		// surrounds (or double-votes against) the finalizing link; it can
		// never be applied.
		return VerdictIgnore, 0, false
	}
	if src, ok := g.justified[c.Target]; ok {
		if src == c.Source || !g.wouldFinalizeLocked(c) {
			return VerdictIgnore, 0, false
		}
	}
	if _, ok := g.pendingLinks[c.Vote().Link()]; ok {
		return VerdictIgnore, 0, false
	}
	if len(g.pendingLinks) >= maxPendingCertificates && !g.isJustified(c.Source) {
		return VerdictIgnore, 0, false
	}
	return VerdictAccept, 0, false
}

func (g *CheckpointFinality) wouldFinalizeLocked(c checkpoint.Certificate) bool {
	return c.Finalizes() && c.Source.Number > g.latestF.Number
}

// finalityConflictLocked reports whether c contradicts the finalized chain:
// its target, or the source it would finalize, is at or below the finalized
// number with a hash other than the finalized chain's checkpoint known there.
func (g *CheckpointFinality) finalityConflictLocked(c checkpoint.Certificate) (uint64, bool) {
	f := g.latestF.Number
	if c.Target.Number <= f {
		if h, ok := g.canon[c.Target.Number]; ok && h != c.Target.Hash {
			return c.Target.Number, true
		}
	}
	if c.Finalizes() && c.Source.Number <= f {
		if h, ok := g.canon[c.Source.Number]; ok && h != c.Source.Hash {
			return c.Source.Number, true
		}
	}
	return 0, false
}

// chainConflictLocked walks the justification chain of s (a justified
// checkpoint about to be finalized) down to the finalized number and reports
// whether it passes a finalized number with another hash.
func (g *CheckpointFinality) chainConflictLocked(s checkpoint.Checkpoint) (uint64, bool) {
	f := g.latestF.Number
	cur := s
	for cur.Number > f {
		src, ok := g.justified[cur]
		if !ok || src == cur {
			return 0, false
		}
		cur = src
	}
	if h, ok := g.canon[cur.Number]; ok && h != cur.Hash {
		return cur.Number, true
	}
	return 0, false
}

// alarmLocked stores conflicting-finality evidence for the valid
// certificate c and stops voting.
func (g *CheckpointFinality) alarmLocked(ctx context.Context, c checkpoint.Certificate, number uint64) error {
	link := c.Vote().Link()
	if _, seen := g.alarmed[link]; seen {
		return nil
	}
	if len(g.alarmed) < maxAlarms {
		g.alarmed[link] = struct{}{}
	}
	g.halted.Store(true)
	cert := c
	ev := checkpoint.Evidence{Kind: checkpoint.EvidenceConflictingFinality, Certificate: &cert, Checkpoint: number}
	g.log.Error("Conflicting finality: a valid certificate contradicts the finalized chain; voting stopped",
		zap.Uint64("checkpoint", number), cpField("source", c.Source), cpField("target", c.Target),
		cpField("finalized", g.latestF), zap.Int("signatures", len(c.Signatures)))
	if g.persisting() {
		if err := g.store.StoreEvidence(ctx, ev); err != nil {
			return fmt.Errorf("store conflicting-finality evidence: %w", err)
		}
	}
	g.m.evidence.Add(1)
	return nil
}

// formCertificateLocked builds the certificate of link from counted votes
// once they reach a quorum, persists it and schedules its broadcast.
func (g *CheckpointFinality) formCertificateLocked(ctx context.Context, link checkpoint.Link) error {
	if src, ok := g.justified[link.Target]; ok && (src == link.Source || !(link.Target.Number == link.Source.Number+1 && link.Source.Number > g.latestF.Number)) {
		return nil
	}
	if _, ok := g.pendingLinks[link]; ok {
		return nil
	}
	if link.Source.Number < g.latestF.Number {
		return nil
	}
	cert, err := checkpoint.NewCertificate(g.tally.Votes(link))
	if err != nil {
		return fmt.Errorf("form certificate: %w", err) // cannot happen: one link, verified votes
	}
	if _, bad := g.finalityConflictLocked(cert); !bad {
		g.m.certsFormed.Add(1)
	}
	return g.acceptCertificateLocked(ctx, cert, true, true)
}

// acceptCertificateLocked takes a verified certificate: it raises the alarm
// if it contradicts finality, keeps it pending while its source is not
// justified, and otherwise applies it and every pending certificate that
// becomes applicable. persist writes to the database (false while
// restoring); broadcast schedules its broadcast once persisted.
func (g *CheckpointFinality) acceptCertificateLocked(ctx context.Context, c checkpoint.Certificate, persist, broadcast bool) error {
	if n, bad := g.finalityConflictLocked(c); bad {
		return g.alarmLocked(ctx, c, n)
	}
	if err := g.foldCertificateVotesLocked(ctx, c); err != nil {
		return err
	}
	if !g.isJustified(c.Source) {
		if persist && g.persisting() {
			if err := g.store.StoreCertificate(ctx, c, nil, nil); err != nil {
				return fmt.Errorf("store pending certificate: %w", err)
			}
		}
		g.pending[c.Source] = append(g.pending[c.Source], c)
		g.pendingLinks[c.Vote().Link()] = struct{}{}
		g.log.Debug("Certificate kept until its source is justified", cpField("source", c.Source), cpField("target", c.Target))
		if broadcast {
			g.enqueue(event{kind: evCertificate, cert: c})
		}
		return nil
	}
	applied, err := g.applyCertificateLocked(ctx, c, persist)
	if err != nil || !applied {
		return err
	}
	if broadcast {
		g.enqueue(event{kind: evCertificate, cert: c})
	}
	return g.applyPendingLocked(ctx, c.Target, persist)
}

// applyPendingLocked applies the pending certificates unlocked by newly
// justified checkpoint j, transitively.
func (g *CheckpointFinality) applyPendingLocked(ctx context.Context, j checkpoint.Checkpoint, persist bool) error {
	work := []checkpoint.Checkpoint{j}
	for len(work) > 0 {
		src := work[len(work)-1]
		work = work[:len(work)-1]
		certs := g.pending[src]
		delete(g.pending, src)
		for _, c := range certs {
			delete(g.pendingLinks, c.Vote().Link())
			if n, bad := g.finalityConflictLocked(c); bad {
				if err := g.alarmLocked(ctx, c, n); err != nil {
					return err
				}
				continue
			}
			if c.Target.Number <= g.latestF.Number || c.Source.Number < g.latestF.Number {
				continue
			}
			applied, err := g.applyCertificateLocked(ctx, c, persist)
			if err != nil {
				return err
			}
			if applied {
				work = append(work, c.Target)
			}
		}
	}
	return nil
}

// applyCertificateLocked justifies c's target (its source is justified) and,
// for c_t = c_s+1, finalizes the source. The certificate and the raised
// pointers are persisted in one synced batch before memory changes.
func (g *CheckpointFinality) applyCertificateLocked(ctx context.Context, c checkpoint.Certificate, persist bool) (bool, error) {
	t, s := c.Target, c.Source
	newJ := t.Number > g.latestJ.Number
	newF := g.wouldFinalizeLocked(c)
	if newF {
		if n, bad := g.chainConflictLocked(s); bad {
			return false, g.alarmLocked(ctx, c, n)
		}
	}
	_, known := g.justified[t]
	if known && !newF {
		return false, nil
	}
	var jp, fp *checkpoint.Checkpoint
	if newJ {
		jp = &t
	}
	if newF {
		fp = &s
	}
	if persist && g.persisting() {
		if err := g.store.StoreCertificate(ctx, c, jp, fp); err != nil {
			return false, fmt.Errorf("store certificate: %w", err)
		}
		g.log.Info(fmt.Sprintf("Stored certificate: checkpoint=%d, signatures=%d", t.Number, len(c.Signatures)),
			zap.Uint64("checkpoint", t.Number), zap.Int("signatures", len(c.Signatures)), cpField("source", s), cpField("target", t))
	}
	if !known {
		g.justified[t] = s
		g.enqueue(event{kind: evJustified, cp: t})
	}
	if old, ok := g.certs[t.Number]; !ok || (c.Finalizes() && !old.Finalizes() && old.Target == t) {
		g.certs[t.Number] = c
	}
	if newJ {
		g.latestJ = t
	}
	if newF {
		g.finalizeLocked(s)
	}
	return true, nil
}

// finalizeLocked makes s (justified, above the finalized checkpoint) the
// latest finalized checkpoint, records the finalized chain's justified
// checkpoints it was reached through, and drops state below it.
func (g *CheckpointFinality) finalizeLocked(s checkpoint.Checkpoint) {
	old := g.latestF
	for cur := s; cur.Number > old.Number; {
		g.canon[cur.Number] = cur.Hash
		src, ok := g.justified[cur]
		if !ok || src == cur {
			break
		}
		cur = src
	}
	g.latestF = s
	g.lastProgress = g.clock.Now()
	g.enqueue(event{kind: evFinalized, cp: s})
	g.log.Info(fmt.Sprintf("Updated last finalized checkpoint: %d", s.Number),
		zap.Uint64("checkpoint", s.Number), zap.Stringer("hash", s.Hash), cpField("previous", old))
	g.pruneMemoryLocked()
}

// foldCertificateVotesLocked counts the votes inside a verified certificate
// like received votes (without storing them again: the certificate holds
// them), so equivocations against them are detected and weights are right.
func (g *CheckpointFinality) foldCertificateVotesLocked(ctx context.Context, c checkpoint.Certificate) error {
	if c.Target.Number <= g.tally.Floor() {
		return nil
	}
	for _, sv := range c.SignedVotes() {
		if prior, ok := g.tally.Lookup(sv.Validator, sv.Target.Number); ok && prior.Vote == sv.Vote {
			continue
		}
		if g.isOwn(sv.Validator) {
			ours, err := g.checkOwnVoteLocked(ctx, sv)
			if err != nil {
				return err
			}
			if !ours {
				continue
			}
		}
		if _, err := g.countVoteLocked(ctx, sv, false, false); err != nil {
			return err
		}
	}
	return nil
}

// pruneMemoryLocked drops state below the finalized checkpoint: votes and
// offender marks at or below it, justified checkpoints and certificates
// below it, pending certificates that can no longer apply, and finalized
// chain entries more than a window below it.
func (g *CheckpointFinality) pruneMemoryLocked() {
	f := g.latestF.Number
	g.tally.Raise(f)
	for cp := range g.justified {
		if cp.Number < f {
			delete(g.justified, cp)
		}
	}
	for n := range g.certs {
		if n < f {
			delete(g.certs, n)
		}
	}
	for src, cs := range g.pending {
		keep := cs[:0]
		for _, c := range cs {
			if c.Target.Number > f && src.Number >= f {
				keep = append(keep, c)
			} else {
				delete(g.pendingLinks, c.Vote().Link())
			}
		}
		if len(keep) == 0 {
			delete(g.pending, src)
		} else {
			g.pending[src] = keep
		}
	}
	for n := range g.canon {
		if n < f && f-n > g.window {
			delete(g.canon, n)
		}
	}
}
