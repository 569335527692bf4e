package finality

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// pendingCert is a verified certificate whose source is not known justified
// yet.
type pendingCert struct {
	cert checkpoint.Certificate
	// broadcast: formed here, to be broadcast once persisted and applied.
	broadcast bool
}

// certJob is a verified certificate to persist outside the lock (synced
// StoreCertificate) and then complete under the lock.
type certJob struct {
	cert checkpoint.Certificate
	// justified and finalized are the pointers the certificate raises.
	justified, finalized *checkpoint.Checkpoint
	// pending: the source is not justified; stored without pointers and
	// kept pending.
	pending   bool
	broadcast bool
}

// submission says how a verified certificate entered the gadget.
type submission struct {
	// persist is false while replaying the database.
	persist bool
	// broadcast after it is persisted (certificates formed here).
	broadcast bool
	// storePending stores it even while its source is not justified
	// (received certificates; a certificate formed here is re-formed from
	// the stored votes instead).
	storePending bool
}

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
		err = g.submitLocked(ctx, c, submission{persist: true, storePending: true})
	}
	g.mu.Unlock()
	if serr := g.settle(ctx); err == nil {
		err = serr
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
	link := c.Vote().Link()
	if n, bad := g.finalityConflictLocked(c); bad {
		if _, seen := g.alarmed[link]; seen {
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
	if _, ok := g.pendingLinks[link]; ok {
		return VerdictIgnore, 0, false
	}
	if _, ok := g.inflight[link]; ok {
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
// once they reach a quorum. It is persisted (outside the lock, see settle)
// and broadcast afterwards.
func (g *CheckpointFinality) formCertificateLocked(ctx context.Context, link checkpoint.Link) error {
	if src, ok := g.justified[link.Target]; ok && (src == link.Source || !(link.Target.Number == link.Source.Number+1 && link.Source.Number > g.latestF.Number)) {
		return nil
	}
	if _, ok := g.pendingLinks[link]; ok {
		return nil
	}
	if _, ok := g.inflight[link]; ok {
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
	return g.submitLocked(ctx, cert, submission{persist: true, broadcast: true})
}

// submitLocked takes a verified certificate: it raises the alarm if it
// contradicts finality, keeps it pending while its source is not justified,
// and otherwise queues it to be persisted with the pointers it raises (or,
// while replaying, applies it at once).
func (g *CheckpointFinality) submitLocked(ctx context.Context, c checkpoint.Certificate, sub submission) error {
	if n, bad := g.finalityConflictLocked(c); bad {
		return g.alarmLocked(ctx, c, n)
	}
	if err := g.foldCertificateVotesLocked(ctx, c); err != nil {
		return err
	}
	persist := sub.persist && g.persisting()
	link := c.Vote().Link()
	if !g.isJustified(c.Source) {
		if persist && sub.storePending {
			g.inflight[link] = struct{}{}
			g.jobs = append(g.jobs, certJob{cert: c, pending: true, broadcast: sub.broadcast})
			return nil
		}
		g.addPendingLocked(c, sub.broadcast)
		return nil
	}
	t, s := c.Target, c.Source
	newF := g.wouldFinalizeLocked(c)
	if newF {
		if n, bad := g.chainConflictLocked(s); bad {
			return g.alarmLocked(ctx, c, n)
		}
	}
	if _, known := g.justified[t]; known && !newF {
		return nil
	}
	job := certJob{cert: c, broadcast: sub.broadcast}
	if t.Number > g.latestJ.Number {
		job.justified = &t
	}
	if newF {
		job.finalized = &s
	}
	if !persist {
		return g.completeLocked(ctx, job, sub.persist)
	}
	g.inflight[link] = struct{}{}
	g.jobs = append(g.jobs, job)
	return nil
}

func (g *CheckpointFinality) addPendingLocked(c checkpoint.Certificate, broadcast bool) {
	link := c.Vote().Link()
	if _, ok := g.pendingLinks[link]; ok {
		return
	}
	g.pending[c.Source] = append(g.pending[c.Source], pendingCert{cert: c, broadcast: broadcast})
	g.pendingLinks[link] = struct{}{}
	g.log.Debug("Certificate kept until its source is justified", cpField("source", c.Source), cpField("target", c.Target))
}

// settle persists the queued certificates outside the lock, in order, each
// with one synced StoreCertificate, then completes them under the lock
// (which may queue more: pending certificates they unlock), and finally
// delivers queued broadcasts and notifications.
func (g *CheckpointFinality) settle(ctx context.Context) error {
	for {
		g.mu.Lock()
		jobs, store := g.jobs, g.store
		g.jobs = nil
		if len(jobs) == 0 {
			deliver := g.needsDeliveryLocked()
			g.mu.Unlock()
			if deliver {
				g.deliver(ctx)
			}
			return nil
		}
		g.certWrites++
		g.mu.Unlock()
		var err error
		done := 0
		for _, j := range jobs {
			if err = store.StoreCertificate(ctx, j.cert, j.justified, j.finalized); err != nil {
				err = fmt.Errorf("store certificate: %w", err)
				break
			}
			t := j.cert.Target
			g.log.Info(fmt.Sprintf("Stored certificate: checkpoint=%d, signatures=%d", t.Number, len(j.cert.Signatures)),
				zap.Uint64("checkpoint", t.Number), zap.Int("signatures", len(j.cert.Signatures)),
				cpField("source", j.cert.Source), cpField("target", t), zap.Bool("pending", j.pending))
			done++
		}
		g.mu.Lock()
		for _, j := range jobs[:done] {
			if cerr := g.completeLocked(ctx, j, true); cerr != nil && err == nil {
				err = cerr
			}
		}
		for _, j := range jobs[done:] {
			delete(g.inflight, j.cert.Vote().Link())
		}
		g.certWrites--
		var votes []checkpoint.SignedVote
		if g.certWrites == 0 {
			votes, g.voteBuf = g.voteBuf, nil
		}
		g.mu.Unlock()
		for _, v := range votes {
			if verr := store.StoreVote(ctx, v); verr != nil && err == nil {
				err = fmt.Errorf("store vote: %w", verr)
			}
		}
		if err != nil {
			g.deliver(ctx)
			return err
		}
	}
}

// completeLocked finishes a persisted (or replayed) certificate: a pending
// one is kept (or re-submitted with pointers if its source got justified
// meanwhile); otherwise it is applied, broadcast if formed here, and the
// pending certificates it unlocks are submitted.
func (g *CheckpointFinality) completeLocked(ctx context.Context, job certJob, persist bool) error {
	c := job.cert
	delete(g.inflight, c.Vote().Link())
	if job.pending {
		if g.isJustified(c.Source) {
			return g.submitLocked(ctx, c, submission{persist: persist, broadcast: job.broadcast, storePending: true})
		}
		g.addPendingLocked(c, job.broadcast)
		return nil
	}
	applied, err := g.applyCertificateLocked(ctx, c)
	if err != nil || !applied {
		return err
	}
	if job.broadcast {
		g.enqueue(event{kind: evCertificate, cert: c})
	}
	return g.applyPendingLocked(ctx, c.Target, persist)
}

// applyPendingLocked submits the pending certificates whose source is the
// newly justified checkpoint j.
func (g *CheckpointFinality) applyPendingLocked(ctx context.Context, j checkpoint.Checkpoint, persist bool) error {
	certs := g.pending[j]
	delete(g.pending, j)
	for _, p := range certs {
		delete(g.pendingLinks, p.cert.Vote().Link())
	}
	for _, p := range certs {
		c := p.cert
		if c.Target.Number <= g.latestF.Number || c.Source.Number < g.latestF.Number {
			if _, bad := g.finalityConflictLocked(c); !bad {
				continue
			}
		}
		if err := g.submitLocked(ctx, c, submission{persist: persist, broadcast: p.broadcast, storePending: true}); err != nil {
			return err
		}
	}
	return nil
}

// applyCertificateLocked justifies c's target (its source is justified) and,
// for c_t = c_s+1, finalizes the source, in memory (the database already
// holds it).
func (g *CheckpointFinality) applyCertificateLocked(ctx context.Context, c checkpoint.Certificate) (bool, error) {
	t, s := c.Target, c.Source
	if !g.isJustified(s) {
		g.addPendingLocked(c, false)
		return false, nil
	}
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
	if t.Number <= g.latestF.Number {
		return false, nil
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
		if _, _, err := g.countVoteLocked(ctx, sv, false); err != nil {
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
	for src, ps := range g.pending {
		keep := ps[:0]
		for _, p := range ps {
			if p.cert.Target.Number > f && src.Number >= f {
				keep = append(keep, p)
			} else {
				delete(g.pendingLinks, p.cert.Vote().Link())
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
