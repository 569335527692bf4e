package sim

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// checker holds the ground truth the invariants are checked against.
type checker struct {
	violations []Violation
	// votes are the votes each honest key broadcast (own publications of
	// honest nodes, every incarnation: restarts, purges and re-installs on
	// a new machine with a fresh record all add to the same key's list),
	// for the slashable-pair check and invariant 10.
	votes map[int][]checkpoint.SignedVote
	// votesByNode counts own votes per node (the doppelganger must have
	// none).
	votesByNode map[int]int
	// final is the highest checkpoint finalized by any honest node; every
	// other honest finalization must be its ancestor or descendant.
	final    checkpoint.Checkpoint
	hasFinal bool
	// conflictSeen: honest nodes finalized conflicting checkpoints (only
	// allowed, and then expected to halt them, in a conflicting scenario).
	conflictSeen bool
	conflictAt   time.Duration

	// liveness
	healed        bool
	healAt        time.Time
	healFinal     uint64
	livenessDone  bool
	stepsSinceMem int
	// progressAt: when the honest finality last advanced (or the heal);
	// progressMax: the honest finality then (see scenario.maxStall).
	progressAt  time.Time
	progressMax uint64
	// voteFromCP: the first checkpoint number counted by invariant 10 (the
	// one after the honest best block at the end of the warm-up; 0: not
	// sampled yet).
	voteFromCP uint64

	// st is invariant 11's reference model of the finalized state.
	st *stateModel
	// ho is invariant 12: the authority set hand-offs (handoffcheck.go).
	ho *hoCheck
}

func newChecker(w *world) *checker {
	c := &checker{votes: make(map[int][]checkpoint.SignedVote), votesByNode: make(map[int]int), st: newStateModel(w), ho: newHoCheck()}
	if w.sc.voteFrom > 0 && (w.sc.peerFaultsOnly || w.sc.minVoteShare > 0) {
		w.after(w.sc.voteFrom, -1, "warm-up over", func() {
			c.voteFromCP = c.honestBest(w)/w.spec.CheckpointInterval + 1
			w.record("own votes counted from checkpoint %d", c.voteFromCP)
		})
	}
	return c
}

// honestBest is the highest best block number among up honest nodes.
func (c *checker) honestBest(w *world) uint64 {
	var m uint64
	for _, nd := range w.nodes {
		if nd.up && nd.honest && nd.chain != nil && nd.id != w.sc.doppelganger {
			m = max(m, nd.chain.Best().Number)
		}
	}
	return m
}

// onSent: a node published a message of its own.
func (c *checker) onSent(w *world, from int, m gossipMsg) {
	nd := w.nodes[from]
	if len(w.history) < maxHistory {
		w.history = append(w.history, m)
	}
	if m.kind == kindCert && c.ho.on(w) {
		c.ho.onOwnCert(w, nd, m.cert)
	}
	if m.kind != kindVote || nd.key < 0 || !w.ownVote(nd.key, m.vote) {
		return
	}
	c.votesByNode[nd.id]++
	if nd.id == w.sc.doppelganger {
		w.violation("%s, a second instance of validator %d's key, broadcast a vote %s -> %s", nd.name, nd.key, m.vote.Source, m.vote.Target)
		return
	}
	if c.ho.on(w) {
		c.ho.onOwnVote(w, nd, m.vote)
		if w.stopped {
			return
		}
	}
	if !nd.honest {
		return
	}
	for _, prior := range c.votes[nd.key] {
		if kind, bad := checkpoint.Conflicts(prior, m.vote); bad {
			w.violation("honest validator %d signed a slashable pair (%s): %s -> %s and %s -> %s",
				nd.key, kind, prior.Source, prior.Target, m.vote.Source, m.vote.Target)
			return
		}
	}
	c.votes[nd.key] = append(c.votes[nd.key], m.vote)
}

// onStart: the node's persisted signer record must cover every vote its key
// broadcast (record before release), and finality must not have gone back.
func (c *checker) onStart(w *world, nd *simNode) {
	if nd.honest && nd.eng != nil && nd.id != w.sc.doppelganger {
		// Invariant 11: the restarted node's state equals the replay.
		c.compareState(w, nd, nd.eng.Gadget().LatestFinalized(), true)
		if w.stopped {
			return
		}
	}
	if nd.key < 0 || !nd.honest || nd.id == w.sc.doppelganger || nd.cpdb == nil {
		return
	}
	if nd.fresh {
		// A fresh record (a new validator, or one re-installed on a new
		// machine) covers nothing by design; invariant 1 checks its votes
		// against everything the key signed before.
		return
	}
	pub := w.keys[nd.key].Public().(ed25519.PublicKey)
	rec, found, err := nd.cpdb.LoadSignerRecord(context.Background(), pub)
	if err != nil {
		w.violation("%s: read signer record: %v", nd.name, err)
		return
	}
	var maxT uint64
	for _, v := range c.votes[nd.key] {
		maxT = max(maxT, v.Target.Number)
	}
	if len(c.votes[nd.key]) == 0 {
		return
	}
	target := rec.MinTarget
	if rec.Last != nil {
		target = max(target, rec.Last.Target.Number)
	}
	if !found || target < maxT {
		w.violation("%s restarted with a signer record (target %d, found %v) below the vote with target %d it broadcast", nd.name, target, found, maxT)
	}
}

func (c *checker) onCrash(w *world, nd *simNode) {}

// onHeal starts the liveness check: an honest quorum is up and connected.
func (c *checker) onHeal(w *world) {
	if c.healed || w.sc.conflicting {
		return
	}
	c.healed = true
	c.healAt = w.now
	c.healFinal = c.maxHonestFinalized(w)
	c.progressAt, c.progressMax = w.now, c.healFinal
	w.after(c.livenessWindow(w), -1, "liveness check", func() { c.checkLiveness(w) })
}

// livenessWindow is the time an honest quorum (or a node that came up) gets
// to make progress: K checkpoint intervals and 40 s of catch-up.
func (c *checker) livenessWindow(w *world) time.Duration {
	return time.Duration(w.sc.livenessK*w.sc.interval)*time.Duration(w.sc.slotMs)*time.Millisecond + 40*time.Second
}

func (c *checker) checkLiveness(w *world) {
	c.livenessDone = true
	now := c.maxHonestFinalized(w)
	if now < c.healFinal+2 {
		c.stallOr(w, fmt.Sprintf("liveness: %d checkpoint intervals and 40 s after the network healed, honest finality moved from %d to %d only",
			w.sc.livenessK, c.healFinal, now))
		return
	}
	for _, nd := range w.nodes {
		c.checkNodeCaughtUp(w, nd)
	}
}

// checkNodeCaughtUp: an honest node that has been up for the liveness
// window since the heal (or since it came up, for a node started or
// restarted later: a late joiner gets the same window from its start) holds
// at least the finality the network had when it healed.
func (c *checker) checkNodeCaughtUp(w *world, nd *simNode) {
	if !nd.up || !nd.honest || nd.passive || nd.id == w.sc.doppelganger || nd.eng == nil {
		return
	}
	if due := nd.upSince.Add(c.livenessWindow(w)); due.After(w.now) {
		w.after(due.Sub(w.now), -1, "liveness check "+nd.name, func() { c.checkNodeCaughtUp(w, nd) })
		return
	}
	if f := nd.eng.Gadget().LatestFinalized().Number; f < c.healFinal {
		w.violation("liveness: %s is at finalized %d, below the %d the network had when it healed (up for %s)", nd.name, f, c.healFinal, w.now.Sub(nd.upSince))
	}
}

func (c *checker) maxHonestFinalized(w *world) uint64 {
	var m uint64
	for _, nd := range w.nodes {
		if nd.honest && !nd.passive && nd.id != w.sc.doppelganger {
			m = max(m, nd.maxFinalized)
		}
	}
	return m
}

// afterStep checks the per-step invariants.
func (c *checker) afterStep(w *world) {
	if w.stopped {
		return
	}
	if stall := w.sc.maxStall; stall > 0 && c.healed {
		if m := c.maxHonestFinalized(w); m > c.progressMax {
			c.progressAt, c.progressMax = w.now, m
		} else if w.now.Sub(c.progressAt) > stall {
			w.violation("liveness: honest finality stayed at %d for %s (the scenario allows %s)", m, w.now.Sub(c.progressAt), stall)
			return
		}
	}
	c.stepsSinceMem++
	checkMem := c.stepsSinceMem >= 200
	if checkMem {
		c.stepsSinceMem = 0
	}
	for _, nd := range w.nodes {
		if !nd.up || nd.eng == nil {
			continue
		}
		g := nd.eng.Gadget()
		f := g.LatestFinalized()
		if f.Number < nd.maxFinalized {
			w.violation("%s finality went back from %d to %d", nd.name, nd.maxFinalized, f.Number)
			return
		}
		if f.Number > nd.maxFinalized {
			nd.maxFinalized = f.Number
			if nd.honest && nd.id != w.sc.doppelganger {
				c.onFinalized(w, nd, f)
				if w.stopped {
					return
				}
			}
		}
		if g.Halted() {
			nd.halted = true
			if nd.honest && nd.id != w.sc.doppelganger {
				c.checkHalt(w, nd, g.Halts())
				if w.stopped {
					return
				}
			}
		}
		if checkMem {
			c.checkMemory(w, nd)
		}
	}
	if c.ho.on(w) {
		c.ho.afterStep(w, c)
	}
}

// checkHalt (invariant 9): an honest node halts only on signed evidence:
// conflicting finality only in a scenario where at least a third of the
// signers are byzantine (scenario.conflicting), a doppelganger alarm only
// when the scenario runs a second instance of the node's key. Whatever a
// keyless peer claims or relays cannot be such evidence.
func (c *checker) checkHalt(w *world, nd *simNode, halts []checkpoint.Halt) {
	for _, h := range halts {
		switch h.Reason {
		case checkpoint.HaltConflictingFinality:
			if w.sc.conflicting {
				continue
			}
			w.violation("%s halted on conflicting finality without signed conflicting evidence (fewer than a third byzantine): checkpoint %d: %s",
				nd.name, h.Checkpoint, h.Detail)
		case checkpoint.HaltDoppelganger:
			if d := w.sc.doppelganger; d >= 0 && w.nodes[d].key == nd.key {
				continue
			}
			w.violation("%s halted on a doppelganger alarm, but no other instance of validator %d's key runs: checkpoint %d: %s",
				nd.name, nd.key, h.Checkpoint, h.Detail)
		default:
			w.violation("%s halted (%s) in a run without a reason to: checkpoint %d: %s", nd.name, h.Reason, h.Checkpoint, h.Detail)
		}
		return
	}
}

// checkVotes (invariant 10, and the scenario's minVoteShare): every honest
// validator voted on the checkpoints after the warm-up — from voteFromCP to
// two below the honest best checkpoint at the end (the last ones may still
// be in flight) — leaving at most maxVoteGap consecutive ones without an own
// vote (any incarnation, any fork: a vote for the number counts).
func (c *checker) checkVotes(w *world) {
	if c.voteFromCP == 0 {
		return
	}
	to := c.honestBest(w) / w.spec.CheckpointInterval
	if to < c.voteFromCP+2 {
		w.violation("honest validators silenced: the honest chain did not grow after the warm-up (best checkpoint %d, counted from %d)", to, c.voteFromCP)
		return
	}
	to -= 2
	for i := range w.keys {
		offered := to - c.voteFromCP + 1
		if _, byz := w.sc.byzantine[i]; byz || slices.Contains(w.sc.turncoats, i) {
			continue
		}
		voted := make(map[uint64]bool)
		for _, v := range c.votes[i] {
			voted[v.Target.Number] = true
		}
		var n, gap, longest, gapEnd uint64
		for cp := c.voteFromCP; cp <= to; cp++ {
			if !c.ho.voteDuty(w, i, cp) {
				// Not in the set in force there, or around a hand-off.
				offered--
				gap = 0
				continue
			}
			if voted[cp] {
				n++
				gap = 0
				continue
			}
			gap++
			if gap > longest {
				longest, gapEnd = gap, cp
			}
		}
		if w.sc.peerFaultsOnly && longest > maxVoteGap {
			w.violation("invariant 10: validator %d cast no vote for %d consecutive checkpoints (%d..%d; K = %d) with only keyless peers and message loss as faults (%d of %d checkpoints voted)",
				i, longest, gapEnd-longest+1, gapEnd, maxVoteGap, n, offered)
			return
		}
		if share := w.sc.minVoteShare; share > 0 && float64(n) < share*float64(offered) {
			w.violation("validator %d voted on %d of the %d checkpoints %d..%d after the warm-up (%.0f %%, the scenario requires %.0f %%)",
				i, n, offered, c.voteFromCP, to, 100*float64(n)/float64(offered), 100*share)
			return
		}
	}
}

// onFinalized checks a new honest finalization against the ground truth.
func (c *checker) onFinalized(w *world, nd *simNode, f checkpoint.Checkpoint) {
	info, ok := w.blocks[f.Hash]
	if !ok || info.number != f.Number*w.spec.CheckpointInterval {
		w.violation("%s finalized %s, which is not a block at height %d", nd.name, f, f.Number*w.spec.CheckpointInterval)
		return
	}
	if !c.hasFinal {
		c.final, c.hasFinal = f, true
		c.advanceModel(w, nd)
		if !w.stopped {
			c.compareState(w, nd, f, false)
		}
		return
	}
	switch {
	case w.isAncestor(c.final.Hash, f.Hash):
		c.final = f
		c.advanceModel(w, nd)
		if !w.stopped {
			c.compareState(w, nd, f, false)
		}
	case w.isAncestor(f.Hash, c.final.Hash):
		c.compareState(w, nd, f, false)
	default:
		if w.sc.conflicting {
			if !c.conflictSeen {
				c.conflictSeen = true
				c.conflictAt = w.elapsed()
				w.record("conflicting finality: %s finalized %s, another honest node %s", nd.name, f, c.final)
			}
			return
		}
		w.violation("conflicting finality among honest nodes: %s finalized %s, not on the chain of %s", nd.name, f, c.final)
	}
}

func (c *checker) checkMemory(w *world, nd *simNode) {
	sz := nd.eng.Gadget().Sizes()
	n := len(w.auth.Keys)
	for _, ch := range w.sched.Changes {
		n = max(n, len(ch.Keys))
	}
	switch {
	case sz.Votes > n*finality.DefaultVotesPerValidator:
		w.violation("%s holds %d votes, bound %d", nd.name, sz.Votes, n*finality.DefaultVotesPerValidator)
	case sz.Pending > finality.DefaultMaxPending:
		w.violation("%s holds %d pending certificates", nd.name, sz.Pending)
	case sz.Justified > finality.DefaultMaxJustified+2:
		w.violation("%s holds %d justified checkpoints", nd.name, sz.Justified)
	case nd.chain.Stats().Tips.Count > asf.MaxTips:
		w.violation("%s has %d chain tips", nd.name, nd.chain.Stats().Tips.Count)
	}
}

// atEnd checks what must hold once the run is over.
func (c *checker) atEnd(w *world) {
	if w.sc.healAt > 0 && c.healed && !c.livenessDone && !w.sc.conflicting {
		c.checkLiveness(w)
		if w.stopped {
			return
		}
	}
	c.checkHandOffLiveness(w)
	if w.stopped {
		return
	}
	c.checkVotes(w)
	if w.stopped {
		return
	}
	if w.sc.conflicting {
		if !c.conflictSeen {
			w.violation("conflicting-finality scenario: the byzantine third did not make the honest nodes finalize conflicting checkpoints (scenario broken)")
			return
		}
		for _, nd := range w.nodes {
			if nd.honest && nd.up && nd.eng != nil && !nd.eng.Gadget().Halted() {
				w.violation("%s holds conflicting finality but did not halt", nd.name)
				return
			}
		}
	}
	if d := w.sc.doppelganger; d >= 0 {
		nd := w.nodes[d]
		if nd.eng == nil || !nd.eng.Gadget().Halted() {
			w.violation("%s, a second instance of a live key, did not halt", nd.name)
		}
	}
}
