package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// hoCheck is invariant 12 (docs/simulation.md): the authority set
// hand-offs of the honest nodes against the reference schedule.
//
//	(a) no two honest nodes hand off at different links: their hand-off
//	    lists agree on every prefix they share (set id, source, target),
//	    and a node's set in force is the one its hand-offs and its
//	    finality give;
//	(b) every certificate an honest node holds (its finality proof, the
//	    certificate of its latest justified checkpoint) or broadcasts, at
//	    or above the first hand-off, verifies with the set in force there
//	    per the reference hand-offs (the honest nodes' own, replayed);
//	(d) liveness after every hand-off (checked with invariant 7): once
//	    the network healed and the chain passed a hand-off checkpoint, the
//	    old set finalizes a hand-off link, honest finality ends above it
//	    and every honest node ends in the same set. A stall because more
//	    than a third of a set spent its single hand-off vote on links that
//	    never reach a quorum (protocol.md's split limit) is reported as a
//	    hand-off stall, not a violation.
//
// The honest keys' votes also keep the hand-off rule of the signer (part
// of invariant 1): a key that signed its set's hand-off link signs nothing
// else for that set, and never signs for a set below one it signed for.
type hoCheck struct {
	// ref[i] is the hand-off certificate of set genesis+i as the first
	// honest node that handed off there holds it; refAt and refBy say when
	// and who.
	ref   []checkpoint.Certificate
	refAt []time.Time
	refBy []string
	// seen: per node, the pointers and incarnation last checked.
	seen map[int]hoSeen
	// verified caches certificate verifications by message id.
	verified map[msgID]error
	// queue: certificates honest nodes broadcast in this step; waiting:
	// those whose set had no reference hand-off yet (its upper bound).
	queue, waiting []pubCert
	// hoVotes: per set id, per hand-off link, the keys that signed it;
	// spent: per set id, the keys that signed one of its hand-off links
	// (own votes of every node that runs an engine).
	hoVotes map[uint64]map[checkpoint.Link]map[int]bool
	spent   map[uint64]map[int]bool
	// keys: per honest key, the vote rule state.
	keys map[int]*keyRule
	// reached[i]: when the honest best checkpoint first reached change i's
	// hand-off number.
	reached []time.Time
	// triggers: faults timed by the hand-offs (handoffPlan).
	triggers []*trigger
	// turned: turncoats already turned byzantine.
	turned map[int]bool
	// stall describes a hand-off stall (the split limit), if the run ended
	// on one.
	stall string
}

type hoSeen struct {
	gen  int
	f, j checkpoint.Checkpoint
}

type pubCert struct {
	node int
	cert checkpoint.Certificate
}

type keyRule struct {
	maxSet uint64
	// handOff[set] is the hand-off link the key signed for set.
	handOff map[uint64]checkpoint.Vote
}

func newHoCheck() *hoCheck {
	return &hoCheck{seen: map[int]hoSeen{}, verified: map[msgID]error{},
		hoVotes: map[uint64]map[checkpoint.Link]map[int]bool{}, spent: map[uint64]map[int]bool{},
		keys: map[int]*keyRule{}, turned: map[int]bool{}}
}

// on reports whether the run has set changes.
func (h *hoCheck) on(w *world) bool { return len(w.sched.Changes) > 0 }

// nodeSet is the set in force at key k's node (0 when it is not up).
func (h *hoCheck) nodeSet(w *world, k int) uint64 {
	nd := w.nodeOfKey(k)
	if nd == nil || !nd.up || nd.eng == nil {
		return 0
	}
	return nd.eng.Gadget().Authorities().Set.SetID
}

// honestJustified is the highest latest justified checkpoint number among
// up honest nodes.
func (c *checker) honestJustified(w *world) uint64 {
	var m uint64
	for _, nd := range w.nodes {
		if nd.up && nd.honest && nd.eng != nil && nd.id != w.sc.doppelganger {
			m = max(m, nd.eng.Gadget().LatestJustified().Number)
		}
	}
	return m
}

// ownVote reports whether v is signed with key k's index in v's set.
func (w *world) ownVote(k int, v checkpoint.SignedVote) bool {
	idx, ok := w.indexIn(k, v.SetID)
	return ok && idx == v.Validator
}

// onOwnVote records an own vote of key k (any node that runs an engine)
// and applies the hand-off vote rule to honest keys.
func (h *hoCheck) onOwnVote(w *world, nd *simNode, v checkpoint.SignedVote) {
	if w.sched.IsHandOffLink(v.SetID, v.Vote) {
		links := h.hoVotes[v.SetID]
		if links == nil {
			links = map[checkpoint.Link]map[int]bool{}
			h.hoVotes[v.SetID] = links
		}
		if links[v.Link()] == nil {
			links[v.Link()] = map[int]bool{}
		}
		links[v.Link()][nd.key] = true
		if h.spent[v.SetID] == nil {
			h.spent[v.SetID] = map[int]bool{}
		}
		h.spent[v.SetID][nd.key] = true
	}
	if !nd.honest || nd.id == w.sc.doppelganger {
		return
	}
	r := h.keys[nd.key]
	if r == nil {
		r = &keyRule{handOff: map[uint64]checkpoint.Vote{}}
		h.keys[nd.key] = r
	}
	if prior, ok := r.handOff[v.SetID]; ok && prior != v.Vote {
		w.violation("honest validator %d broke the hand-off rule: it signed %s -> %s for set %d after that set's hand-off link %s -> %s",
			nd.key, v.Source, v.Target, v.SetID, prior.Source, prior.Target)
		return
	}
	if v.SetID < r.maxSet {
		w.violation("honest validator %d broke the hand-off rule: it signed %s -> %s for set %d after a vote for set %d",
			nd.key, v.Source, v.Target, v.SetID, r.maxSet)
		return
	}
	r.maxSet = v.SetID
	if w.sched.IsHandOffLink(v.SetID, v.Vote) {
		r.handOff[v.SetID] = v.Vote
	}
}

// onOwnCert queues a certificate an honest node broadcast (checked after
// the step, once the step's hand-offs are in the reference).
func (h *hoCheck) onOwnCert(w *world, nd *simNode, cert checkpoint.Certificate) {
	if nd.honest && nd.id != w.sc.doppelganger {
		h.queue = append(h.queue, pubCert{node: nd.id, cert: cert})
	}
}

// verify checks cert's signatures with the scheduled set it names (cached).
func (h *hoCheck) verify(w *world, cert checkpoint.Certificate) error {
	id := certMsg(cert).id
	if err, ok := h.verified[id]; ok {
		return err
	}
	var err error
	if set, ok := w.sched.Set(cert.SetID); !ok {
		err = fmt.Errorf("set %d is not scheduled", cert.SetID)
	} else {
		err = set.VerifyCertificate(cert)
	}
	if len(h.verified) >= 1<<14 {
		clear(h.verified)
	}
	h.verified[id] = err
	return err
}

// checkCert (12b) judges a certificate an honest node holds or broadcast:
// it must verify with its set's keys and lie where the reference
// hand-offs put that set (source at or above the target of the previous
// set's hand-off, target at or below the target of its own). judged is
// false when its set's own hand-off is not in the reference yet.
func (h *hoCheck) checkCert(w *world, nd *simNode, what string, cert checkpoint.Certificate) (judged bool) {
	gen := w.sched.Genesis.SetID
	if len(h.ref) == 0 || (cert.SetID == gen && cert.Target.Number < h.ref[0].Target.Number) {
		return true // below the first hand-off
	}
	if err := h.verify(w, cert); err != nil {
		w.violation("invariant 12b: %s %s %s -> %s of set %d does not verify with that set: %v", nd.name, what, cert.Source, cert.Target, cert.SetID, err)
		return true
	}
	i := int(cert.SetID - gen)
	if cert.SetID < gen || i > len(h.ref) {
		w.violation("invariant 12b: %s %s %s -> %s of set %d, but only %d hand-offs happened (set %d in force)", nd.name, what, cert.Source, cert.Target, cert.SetID, len(h.ref), gen+uint64(len(h.ref)))
		return true
	}
	if i > 0 && cert.Source.Number < h.ref[i-1].Target.Number {
		prev := h.ref[i-1]
		w.violation("invariant 12b: %s %s %s -> %s of set %d below that set's start: set %d handed off with %s -> %s",
			nd.name, what, cert.Source, cert.Target, cert.SetID, prev.SetID, prev.Source, prev.Target)
		return true
	}
	if i < len(h.ref) {
		if own := h.ref[i]; cert.Target.Number > own.Target.Number {
			w.violation("invariant 12b: %s %s %s -> %s of set %d above that set's hand-off %s -> %s (set %d in force there)",
				nd.name, what, cert.Source, cert.Target, cert.SetID, own.Source, own.Target, cert.SetID+1)
			return true
		}
		return true
	}
	_, more := w.sched.Next(cert.SetID)
	return !more
}

// afterStep runs invariant 12's per-step checks: the timed faults, the
// hand-offs of every node whose pointers moved (or that restarted), the
// certificates broadcast in the step, and when the chain reached each
// hand-off checkpoint.
func (h *hoCheck) afterStep(w *world, c *checker) {
	for _, t := range h.triggers {
		if !t.done && t.when(w) {
			t.done = true
			w.record("timed fault: %s", t.name)
			t.do(w)
		}
	}
	for _, nd := range w.nodes {
		if w.stopped {
			return
		}
		if !nd.up || nd.eng == nil || !nd.honest || nd.id == w.sc.doppelganger {
			continue
		}
		g := nd.eng.Gadget()
		s := hoSeen{gen: nd.gen, f: g.LatestFinalized(), j: g.LatestJustified()}
		if h.seen[nd.id] == s {
			continue
		}
		h.seen[nd.id] = s
		h.checkNode(w, nd)
	}
	if w.stopped {
		return
	}
	q := h.queue
	h.queue = nil
	for _, p := range q {
		if !h.checkCert(w, w.nodes[p.node], "broadcast the certificate", p.cert) && len(h.waiting) < 4096 {
			h.waiting = append(h.waiting, p)
		}
		if w.stopped {
			return
		}
	}
	if len(h.reached) < len(w.sched.Changes) {
		best := c.honestBest(w) / w.spec.CheckpointInterval
		for len(h.reached) < len(w.sched.Changes) && best >= w.sched.Changes[len(h.reached)].HandOff {
			h.reached = append(h.reached, w.now)
			w.record("the honest chain reached hand-off checkpoint %d of set %d", w.sched.Changes[len(h.reached)-1].HandOff, w.sched.Changes[len(h.reached)-1].SetID)
		}
	}
}

// checkNode checks one honest node's hand-offs (12a) and the certificates
// it holds (12b); its new hand-offs extend the reference.
func (h *hoCheck) checkNode(w *world, nd *simNode) {
	g := nd.eng.Gadget()
	hs := g.HandOffs()
	st := g.Authorities()
	gen := w.sched.Genesis.SetID
	if st.Set.SetID != gen+uint64(len(hs)) {
		w.violation("invariant 12a: %s is in set %d with %d hand-offs (from set %d)", nd.name, st.Set.SetID, len(hs), gen)
		return
	}
	grew := false
	for i, hc := range hs {
		want := gen + uint64(i)
		if hc.SetID != want || !w.sched.IsHandOffLink(want, hc.Vote()) {
			w.violation("invariant 12a: %s's hand-off %d, %s -> %s of set %d, is not set %d's hand-off link", nd.name, i, hc.Source, hc.Target, hc.SetID, want)
			return
		}
		if err := h.verify(w, hc); err != nil {
			w.violation("invariant 12b: %s's hand-off certificate %s -> %s does not verify with set %d: %v", nd.name, hc.Source, hc.Target, want, err)
			return
		}
		if i < len(h.ref) {
			if ref := h.ref[i]; ref.Vote() != hc.Vote() {
				w.violation("invariant 12a: honest nodes hand off at different links: %s handed set %d over with %s -> %s, %s with %s -> %s (at %s)",
					nd.name, want, hc.Source, hc.Target, h.refBy[i], ref.Source, ref.Target, h.refAt[i].Sub(w.start))
				return
			}
			continue
		}
		h.ref = append(h.ref, hc)
		h.refAt = append(h.refAt, w.now)
		h.refBy = append(h.refBy, nd.name)
		grew = true
		w.record("hand-off: set %d in force after %s (certificate %s -> %s, first at %s)", want+1, hc.Target, hc.Source, hc.Target, nd.name)
		h.turn(w, want+1)
	}
	// Its finality and its set: a node that finalized the source of a
	// reference hand-off is past it.
	f := g.LatestFinalized()
	for i, ref := range h.ref {
		if i >= len(hs) && f.Number >= ref.Source.Number {
			w.violation("invariant 12a: %s finalized %s but is still in set %d: set %d handed off with %s -> %s (%s, at %s)",
				nd.name, f, st.Set.SetID, ref.SetID, ref.Source, ref.Target, h.refBy[i], h.refAt[i].Sub(w.start))
			return
		}
	}
	if grew {
		waiting := h.waiting
		h.waiting = nil
		for _, p := range waiting {
			if !h.checkCert(w, w.nodes[p.node], "broadcast the certificate", p.cert) {
				h.waiting = append(h.waiting, p)
			}
			if w.stopped {
				return
			}
		}
	}
	if p, ok := g.FinalityProof(); ok {
		if len(p.HandOffs) != len(hs) {
			w.violation("invariant 12a: %s's finality proof carries %d hand-offs, it holds %d", nd.name, len(p.HandOffs), len(hs))
			return
		}
		h.checkCert(w, nd, "holds the finalizing certificate", p.Finalizing)
		if p.Justified != nil && !w.stopped {
			h.checkCert(w, nd, "holds the justified certificate", *p.Justified)
		}
	}
	if cert, ok := g.Certificate(g.LatestJustified().Number); ok && !w.stopped {
		h.checkCert(w, nd, "holds the certificate", cert)
	}
}

// turn makes the turncoats removed by the hand-off to set setID byzantine:
// from now on their node signs, for every vote of a later set it receives,
// the same link with its old set id and index, and with the vote's set id
// and its old index (byzantine.go, removedVote). Their votes must count
// for nothing.
func (h *hoCheck) turn(w *world, setID uint64) {
	set, _ := w.sched.Set(setID)
	for _, k := range w.sc.turncoats {
		if h.turned[k] {
			continue
		}
		if _, in := set.IndexOf(w.pub(k)); in {
			continue
		}
		nd := w.nodeOfKey(k)
		if nd == nil {
			continue
		}
		h.turned[k] = true
		nd.honest = false
		b := w.sc.turnInto[k]
		b.removedVotes = true
		nd.byz = &byzState{b: b}
		w.record("%s, removed from set %d, turns byzantine", nd.name, setID)
	}
}

// splitStall diagnoses a liveness failure while a hand-off is pending:
// the set in force at the most advanced honest node has a hand-off whose
// checkpoint the chain reached (pending is false otherwise). documented
// reports the split limit of protocol.md (more than a third of the old set
// spends its one hand-off vote on links that never reach a quorum): more
// than a third of its keys signed a hand-off link, none of those links has
// a quorum, and fewer than a quorum of its honest keys are left that
// signed none (a new link needs a quorum of them; an old link is one no
// validator votes any more, its target is far below the head).
func (c *checker) splitStall(w *world) (why string, pending, documented bool) {
	h := c.ho
	if !h.on(w) {
		return "", false, false
	}
	var k uint64
	for _, nd := range w.nodes {
		if nd.up && nd.honest && nd.eng != nil && nd.id != w.sc.doppelganger {
			k = max(k, nd.eng.Gadget().Authorities().Set.SetID)
		}
	}
	ch, ok := w.sched.Next(k)
	if !ok || int(k-w.sched.Genesis.SetID) >= len(h.reached) {
		return "", false, false
	}
	set, _ := w.sched.Set(k)
	var left, others []int
	for _, pub := range set.Keys {
		for key := range w.keys {
			if !w.pub(key).Equal(pub) || h.spent[k][key] {
				continue
			}
			if nd := w.nodeOfKey(key); nd != nil && nd.honest {
				left = append(left, key)
			} else {
				others = append(others, key)
			}
		}
	}
	best, links := 0, 0
	var bestLink checkpoint.Link
	for l, keys := range h.hoVotes[k] {
		links++
		if len(keys) > best || (len(keys) == best && linkLess(l, bestLink)) {
			best, bestLink = len(keys), l
		}
	}
	spent := 0
	for key := range h.spent[k] {
		if _, in := set.IndexOf(w.pub(key)); in {
			spent++
		}
	}
	why = fmt.Sprintf("set %d (quorum %d of %d) has not handed off from %d: %d keys spent their one hand-off vote on %d links (the best, %s -> %s, has %d); keys left: honest %v, others %v",
		k, set.Quorum(), set.Len(), ch.HandOff, spent, links, bestLink.Source, bestLink.Target, best, left, others)
	documented = best < set.Quorum() && len(left) < set.Quorum() && 3*spent > set.Len()
	return why, true, documented
}

func linkLess(a, b checkpoint.Link) bool {
	if a.Target.Number != b.Target.Number {
		return a.Target.Number < b.Target.Number
	}
	return slices.Compare(a.Target.Hash[:], b.Target.Hash[:]) < 0
}

// checkHandOffLiveness (12d) runs at the end of a run that healed: every
// change whose hand-off checkpoint the honest chain reached a liveness
// window before the end (and after the heal) was enacted, honest finality
// ends above the last of them, and every honest node that has been up for
// the window ends in the same set (one behind is allowed only when that
// set's hand-off happened within the window).
func (c *checker) checkHandOffLiveness(w *world) {
	h := c.ho
	if !h.on(w) || !c.healed || w.sc.conflicting {
		return
	}
	win := c.livenessWindow(w)
	end := w.now
	due := -1
	for i := range h.reached {
		at := h.reached[i]
		if at.Before(c.healAt) {
			at = c.healAt
		}
		if at.Add(win).After(end) {
			break
		}
		due = i
	}
	if due >= len(h.ref) {
		ch := w.sched.Changes[len(h.ref)]
		c.stallOr(w, fmt.Sprintf("invariant 12d: the honest chain reached hand-off checkpoint %d of set %d at %s (healed at %s), and set %d never finalized a hand-off link",
			ch.HandOff, ch.SetID, h.reached[len(h.ref)].Sub(w.start), c.healAt.Sub(w.start), ch.SetID-1))
		return
	}
	gen := w.sched.Genesis.SetID
	var top uint64
	type nodeSet struct {
		nd  *simNode
		set uint64
	}
	var sets []nodeSet
	for _, nd := range w.nodes {
		if !nd.up || !nd.honest || nd.eng == nil || nd.id == w.sc.doppelganger || nd.upSince.Add(win).After(end) {
			continue
		}
		s := nd.eng.Gadget().Authorities().Set.SetID
		sets = append(sets, nodeSet{nd, s})
		top = max(top, s)
	}
	for _, ns := range sets {
		if need := gen + uint64(due) + 1; due >= 0 && ns.set < need {
			c.stallOr(w, fmt.Sprintf("invariant 12d: %s ends in set %d, below set %d (in force since %s, first at %s)",
				ns.nd.name, ns.set, need, h.refAt[due].Sub(w.start), h.refBy[due]))
			return
		}
		if ns.set == top {
			continue
		}
		i := int(top - gen - 1)
		if ns.set+1 < top || h.refAt[i].Add(win).Before(end) {
			c.stallOr(w, fmt.Sprintf("invariant 12d: honest nodes end in different sets: %s in set %d, set %d in force since %s (first at %s)",
				ns.nd.name, ns.set, top, h.refAt[i].Sub(w.start), h.refBy[i]))
			return
		}
	}
	if due >= 0 && h.refAt[due].Add(win).Before(end) {
		if f := c.maxHonestFinalized(w); f <= h.ref[due].Source.Number {
			c.stallOr(w, fmt.Sprintf("invariant 12d: honest finality ends at %d, not above set %d's hand-off %s -> %s (at %s)",
				f, h.ref[due].SetID, h.ref[due].Source, h.ref[due].Target, h.refAt[due].Sub(w.start)))
		}
	}
}

// stallOr ends the run on a liveness failure: a hand-off stall when the
// documented split limit explains it, else a violation (with the hand-off
// diagnosis when one is pending: a stall for another reason is a bug).
func (c *checker) stallOr(w *world, what string) {
	why, pending, documented := c.splitStall(w)
	switch {
	case documented:
		c.ho.stall = why + " (" + what + ")"
		w.record("HAND-OFF STALL %s", c.ho.stall)
		w.stopped = true
	case pending:
		w.violation("%s; %s: not the documented split limit", what, why)
	default:
		w.violation("%s", what)
	}
}

// voteDuty reports whether key k is expected to vote for checkpoint cp
// (invariant 10): it is in the set in force there per the reference
// hand-offs, and cp is not in the gap a hand-off leaves — from the
// hand-off checkpoint to maxVoteGap past the hand-off's target (each key
// signs one hand-off link of its set, and the next set votes from the
// target on), or anywhere past a hand-off checkpoint that was not enacted.
func (h *hoCheck) voteDuty(w *world, k int, cp uint64) bool {
	if !h.on(w) {
		return true
	}
	set := w.sched.Genesis.SetID
	for i, ch := range w.sched.Changes {
		if cp < ch.HandOff {
			break
		}
		if i >= len(h.ref) {
			return false
		}
		if cp <= h.ref[i].Target.Number+maxVoteGap {
			return false
		}
		set = ch.SetID
	}
	_, in := w.indexIn(k, set)
	return in
}
