package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Authority set hand-offs in the simulator (docs/protocol.md, "Authority
// set hand-offs"; docs/simulation.md, "Hand-offs"): random schedules, the
// faults timed around hand-offs, the removed validator that turns
// byzantine, and invariant 12.

// handOffsPersisted reports whether the checkpoint database persists
// hand-off certificates (StoreHandOff with HandOffs and Restore reading
// them back). On this branch StoreHandOff is a temporary no-op: a node
// restarted after a hand-off gets it back only through the core's
// crash-gap repair (its finalized pointer is still the hand-off's source)
// or not at all, so while this is false a crash that would need the stored
// record is skipped (and recorded in the trace). The real implementation
// has HandOffs: merging it turns this on.
var handOffsPersisted = func() bool {
	_, ok := any((*checkpointdb.CheckpointDB)(nil)).(interface {
		HandOffs(context.Context) ([]checkpoint.Certificate, error)
	})
	return ok
}()

// maxSetSize bounds the sets a random schedule builds.
const maxSetSize = 8

// handoffPlan is what a scenario does around its changes beyond the
// schedule itself.
type handoffPlan struct {
	// lateJoiners: key id -> start time of its node (absent: t = 0).
	lateJoiners map[int]time.Duration
	// triggers are faults timed by the hand-offs (checked after every
	// step until they fire).
	triggers []*trigger
}

// trigger is a fault that fires once its condition holds.
type trigger struct {
	name string
	// when reports whether the fault fires now.
	when func(w *world) bool
	do   func(w *world)
	done bool
}

// drawChanges gives a random scenario its authority set changes (half of
// the seeds get none): 1–3 changes, each a join, a leave or a rotation
// (removed and added keys) of up to a third of the set, at most 8 keys, a
// removed honest key coming back now and then, with hand-off numbers
// spread over the first 70 % of the run's checkpoints; removed validators
// keep running (a byzantine one adds removedVotes; a third of the honest
// ones turn byzantine once removed: removedVotes, half of them serving
// finality proofs without their hand-offs, a third of them sending
// leaked-key certificates of their old set), joiners' nodes start at t = 0
// or (a third) late, catching up by finality proof through the hand-offs;
// crashes and partitions are timed right before or after hand-offs.
// It draws from hrng only, so a seed without changes runs as it did
// before they existed.
func drawChanges(sc *scenario, hrng *rand.Rand) *handoffPlan {
	if hrng.IntN(2) == 0 {
		return nil
	}
	plan := &handoffPlan{lateJoiners: map[int]time.Duration{}}
	cps := uint64(sc.duration / (time.Duration(sc.slotMs) * time.Millisecond * time.Duration(sc.interval)))
	lo, hi := max(3, cps/10), max(10, cps*7/10)
	m := 1 + hrng.IntN(3)
	hs := make([]uint64, m)
	for i := range hs {
		hs[i] = lo + hrng.Uint64N(hi-lo)
	}
	slices.Sort(hs)
	for i := 1; i < m; i++ {
		hs[i] = max(hs[i], hs[i-1]+3)
	}
	cur := make([]int, sc.validators)
	for i := range cur {
		cur[i] = i
	}
	nextKey := sc.validators
	var removed []int
	turncoat := map[int]bool{}
	byzIn := func(set []int) int {
		n := 0
		for _, k := range set {
			if _, ok := sc.byzantine[k]; ok {
				n++
			}
		}
		return n
	}
	for i := range m {
		limit := len(cur) / 3
		if limit == 0 {
			break
		}
		cnt := 1 + hrng.IntN(limit)
		kind := hrng.IntN(3) // 0 join, 1 leave, 2 rotate
		if kind == 0 && len(cur)+cnt > maxSetSize {
			kind = 2
		}
		if kind == 1 && len(cur)-cnt < 3 {
			kind = 2
		}
		next := slices.Clone(cur)
		var out []int
		if kind != 0 {
			for range cnt {
				j := hrng.IntN(len(next))
				out = append(out, next[j])
				next = slices.Delete(next, j, j+1)
			}
		}
		var rejoined []int
		fresh := nextKey
		late := map[int]time.Duration{}
		if kind != 1 {
			for range cnt {
				k := -1
				if len(removed) > 0 && hrng.IntN(4) == 0 {
					// A removed honest key comes back (it continues with
					// its signer record's watermarks).
					c := removed[hrng.IntN(len(removed))]
					_, byz := sc.byzantine[c]
					if !turncoat[c] && !byz && !slices.Contains(next, c) {
						k = c
						rejoined = append(rejoined, c)
					}
				}
				if k < 0 {
					k = fresh
					fresh++
					if hrng.IntN(3) == 0 {
						late[k] = time.Duration(hrng.Int64N(int64(sc.duration*6/10))) + sc.duration/10
					}
				}
				next = append(next, k)
			}
		}
		if byzIn(next) > (len(next)-1)/3 {
			break
		}
		nextKey = fresh
		for k, at := range late {
			plan.lateJoiners[k] = at
		}
		removed = slices.DeleteFunc(removed, func(k int) bool { return slices.Contains(rejoined, k) })
		for _, k := range out {
			removed = append(removed, k)
			if b, byz := sc.byzantine[k]; byz {
				b.removedVotes = true
				sc.byzantine[k] = b
			} else if hrng.IntN(3) == 0 {
				turncoat[k] = true
			}
		}
		sc.changes = append(sc.changes, plannedChange{setID: uint64(2 + i), handOff: hs[i], keys: next})
		cur = next
	}
	if len(sc.changes) == 0 {
		return nil
	}
	sc.joinKeys = nextKey - sc.validators
	for k := range turncoat {
		sc.turncoats = append(sc.turncoats, k)
	}
	slices.Sort(sc.turncoats)
	sc.turnInto = map[int]byzBehaviour{}
	for _, k := range sc.turncoats {
		// Once removed: removed-key votes, and perhaps proofs without
		// their hand-offs, and leaked-key certificates of its old set.
		sc.turnInto[k] = byzBehaviour{stripHandOffs: hrng.IntN(2) == 0, oldSetCerts: hrng.IntN(3) == 0}
	}
	// Faults timed by the hand-offs, in the faulty part of the run.
	faultEnd := sc.duration * 6 / 10
	slot := time.Duration(sc.slotMs) * time.Millisecond
	for i, ch := range sc.changes {
		prev := keysOfSet(sc, uint64(1+i))
		if hrng.IntN(3) == 0 {
			who := prev[hrng.IntN(len(prev))]
			delay := time.Duration(hrng.Int64N(int64(2 * time.Second)))
			down := time.Duration(1+hrng.IntN(30)) * slot
			plan.triggers = append(plan.triggers, &trigger{
				name: fmt.Sprintf("crash v%d right before hand-off %d", who, ch.handOff),
				when: func(w *world) bool { return w.check.honestJustified(w) >= ch.handOff },
				do: func(w *world) {
					w.after(delay, -1, "crash before hand-off", func() { crashKeyFor(w, who, down, faultEnd) })
				},
			})
		}
		if hrng.IntN(3) == 0 {
			both := append(slices.Clone(prev), ch.keys...)
			who := both[hrng.IntN(len(both))]
			var delay time.Duration
			if hrng.IntN(2) == 0 {
				delay = time.Duration(hrng.Int64N(int64(3 * time.Second)))
			}
			down := time.Duration(1+hrng.IntN(30)) * slot
			setID := ch.setID
			plan.triggers = append(plan.triggers, &trigger{
				name: fmt.Sprintf("crash v%d right after its hand-off to set %d", who, setID),
				when: func(w *world) bool { return w.check.ho.nodeSet(w, who) >= setID },
				do: func(w *world) {
					w.after(delay, -1, "crash after hand-off", func() { crashKeyFor(w, who, down, faultEnd) })
				},
			})
		}
		if hrng.IntN(4) == 0 {
			n := len(prev)
			group := slices.Clone(prev)
			hrng.Shuffle(n, func(a, b int) { group[a], group[b] = group[b], group[a] })
			group = group[:1+hrng.IntN(n-1)]
			dur := time.Duration(hrng.Int64N(int64(30 * slot)))
			at := ch.handOff - min(ch.handOff, uint64(hrng.IntN(3)))
			plan.triggers = append(plan.triggers, &trigger{
				name: fmt.Sprintf("partition %v across hand-off %d", group, ch.handOff),
				when: func(w *world) bool { return w.check.honestJustified(w) >= at },
				do: func(w *world) {
					if w.elapsed() < faultEnd-5*time.Second {
						partitionKeysFor(w, group, dur)
					}
				},
			})
		}
	}
	return plan
}

// keysOfSet returns the key ids of set setID of the scenario's schedule.
func keysOfSet(sc *scenario, setID uint64) []int {
	if setID <= 1 {
		out := make([]int, sc.validators)
		for i := range out {
			out[i] = i
		}
		return out
	}
	return sc.changes[setID-2].keys
}

// nodeOfKey is the node running key k (the first one: a doppelganger's
// twin comes later).
func (w *world) nodeOfKey(k int) *simNode {
	for _, nd := range w.nodes {
		if nd.key == k && nd.keyless == nil {
			return nd
		}
	}
	return nil
}

// crashKeyFor crashes key k's node for down, unless the run is past its
// faulty part or the crash needs a stored hand-off record (see
// handOffsPersisted).
func crashKeyFor(w *world, k int, down, faultEnd time.Duration) {
	nd := w.nodeOfKey(k)
	if nd == nil || !nd.up || w.elapsed() > faultEnd-5*time.Second {
		return
	}
	crashFor(w, nd.id, down)
}

// partitionKeysFor cuts the nodes of the keys from the rest for dur.
func partitionKeysFor(w *world, keys []int, dur time.Duration) {
	var ids []int
	for _, k := range keys {
		if nd := w.nodeOfKey(k); nd != nil {
			ids = append(ids, nd.id)
		}
	}
	partitionFor(w, ids, dur)
}

// crashAllowed reports whether nd may crash now: always, unless hand-off
// records are not persisted on this branch and its restart would need one
// (it handed off, and not only once with its finalized pointer still at
// that hand-off's source: the core's crash-gap repair).
func (w *world) crashAllowed(nd *simNode) bool {
	if handOffsPersisted || len(w.sched.Changes) == 0 || nd.eng == nil {
		return true
	}
	g := nd.eng.Gadget()
	hs := g.HandOffs()
	switch {
	case len(hs) == 0:
		return true
	case len(hs) == 1 && g.LatestFinalized() == hs[0].Source:
		return true
	}
	w.record("%s: crash skipped (it handed off %d times, finalized %s; hand-off records are not persisted on this branch: handOffsPersisted)",
		nd.name, len(hs), g.LatestFinalized())
	return false
}

// setupHandOffs adds the joiners' nodes (fresh signer records: new
// validators; a key only in a later set runs as a full node and votes from
// its hand-off on) and installs the plan's timed faults.
func setupHandOffs(w *world, plan *handoffPlan) {
	for k := w.sc.validators; k < w.sc.validators+w.sc.joinKeys; k++ {
		nd := w.addNode(k, true)
		nd.fresh = true
		if plan != nil {
			if at, ok := plan.lateJoiners[k]; ok {
				w.after(at, -1, "late joiner", nd.start)
				continue
			}
		}
		w.schedule(w.now, -1, "start joiner", nd.start)
	}
	if plan != nil {
		w.check.ho.triggers = append(w.check.ho.triggers, plan.triggers...)
	}
}

// --- Named hand-off scenarios --------------------------------------------

// onCondition runs do once cond holds (checked after every step).
func onCondition(w *world, name string, cond func(w *world) bool, do func(w *world)) {
	w.check.ho.triggers = append(w.check.ho.triggers, &trigger{name: name, when: cond, do: do})
}

// handOffScenario is a 4-validator scenario with the changes, the liveness
// check from 1 s, and the joiners' nodes started at t = 0 (late ones by
// the scenario).
func handOffScenario(name string, joinKeys int, changes ...plannedChange) *scenario {
	sc := defaultScenario(name)
	sc.duration = 120 * time.Second
	sc.healAt = time.Second
	sc.joinKeys = joinKeys
	sc.changes = changes
	sc.turnInto = map[int]byzBehaviour{}
	return sc
}

// handoffJoinLeaveScenario: 4 -> 5 -> 4. Validator key 4 joins set 2 at
// hand-off 20 (its node runs from the start as a full node and votes from
// the hand-off on); validator 1 leaves in set 3 at hand-off 50: its node
// keeps running and authoring, and turns byzantine (removedVotes: for
// every vote of set 3 it signs the link for set 2 with its old index 1,
// and for set 3 with index 1, where set 3 has validator 2's key). Its
// votes must count for nothing (mutant removed-key-counts counts them).
func handoffJoinLeaveScenario() *scenario {
	sc := handOffScenario("handoff-join-leave", 1,
		plannedChange{setID: 2, handOff: 20, keys: []int{0, 1, 2, 3, 4}},
		plannedChange{setID: 3, handOff: 50, keys: []int{0, 2, 3, 4}})
	sc.turncoats = []int{1}
	sc.setup = func(w *world) {
		startValidators(w, false)
		setupHandOffs(w, nil)
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// handoffPartitionScenario: validator 3 is cut off from everyone across
// hand-off 20 (from the honest justified checkpoint 17, for 15 s; the
// other three are exactly set 1's quorum and hand off to set 2, which
// adds key 4), then rejoins and must follow the hand-off; around hand-off
// 45 (set 3: validator 3 rotated out for key 5) the votes and
// certificates for checkpoint 45 are lost everywhere, so the old set
// justifies a jump over the hand-off checkpoint (44 -> 46) before it
// finalizes its hand-off link (mutant enact-on-justify enacts the jump).
func handoffPartitionScenario() *scenario {
	sc := handOffScenario("handoff-partition", 2,
		plannedChange{setID: 2, handOff: 20, keys: []int{0, 1, 2, 3, 4}},
		plannedChange{setID: 3, handOff: 45, keys: []int{0, 1, 2, 4, 5}})
	sc.setup = func(w *world) {
		startValidators(w, false)
		setupHandOffs(w, nil)
		onCondition(w, "partition v3 across hand-off 20", func(w *world) bool { return w.check.honestJustified(w) >= 17 },
			func(w *world) { partitionKeysFor(w, []int{3}, 15*time.Second) })
		onCondition(w, "lose the votes for checkpoint 45", func(w *world) bool { return w.check.honestJustified(w) >= 43 },
			func(w *world) {
				w.net.filter = func(from, to int, m gossipMsg) bool {
					return !(m.kind == kindVote && m.vote.Target.Number == 45) && !(m.kind == kindCert && m.cert.Target.Number == 45)
				}
			})
		onCondition(w, "votes pass again", func(w *world) bool { return w.check.honestJustified(w) >= 46 },
			func(w *world) { w.net.filter = nil })
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// handoffCrashScenario: crashes on each side of the hand-offs. Set 2
// (hand-off 20) rotates validator 3 out for key 4, set 3 (hand-off 45)
// adds key 5. Validator 0 crashes right before hand-off 20 (the honest
// justified checkpoint reached 20; down 4 s), validator 1 in the step its
// own hand-off to set 2 happens (its finalized pointer is the hand-off's
// source: the core's crash-gap repair restores it; down 5 s), the joiner
// 4 right after its first hand-off (down 3 s), and validator 2 5 s after
// its hand-off to set 3 (down 5 s: that restart needs the stored hand-off
// records, so it is skipped while handOffsPersisted is false).
func handoffCrashScenario() *scenario {
	sc := handOffScenario("handoff-crash", 2,
		plannedChange{setID: 2, handOff: 20, keys: []int{0, 1, 2, 4}},
		plannedChange{setID: 3, handOff: 45, keys: []int{0, 1, 2, 4, 5}})
	sc.setup = func(w *world) {
		startValidators(w, false)
		setupHandOffs(w, nil)
		end := sc.duration
		onCondition(w, "crash v0 right before hand-off 20", func(w *world) bool { return w.check.honestJustified(w) >= 20 },
			func(w *world) { crashKeyFor(w, 0, 4*time.Second, end) })
		onCondition(w, "crash v1 as it hands off to set 2", func(w *world) bool { return w.check.ho.nodeSet(w, 1) >= 2 },
			func(w *world) { crashKeyFor(w, 1, 5*time.Second, end) })
		onCondition(w, "crash v4 right after its first hand-off", func(w *world) bool { return w.check.ho.nodeSet(w, 4) >= 2 },
			func(w *world) { crashKeyFor(w, 4, 3*time.Second, end) })
		onCondition(w, "crash v2 5 s after its hand-off to set 3", func(w *world) bool { return w.check.ho.nodeSet(w, 2) >= 3 },
			func(w *world) {
				w.after(5*time.Second, -1, "crash v2", func() { crashKeyFor(w, 2, 5*time.Second, end) })
			})
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// handoffWarpScenario: three hand-offs (set 2 adds key 4 at 15, set 3
// removes validator 0 at 35, set 4 adds key 5 at 55), retention 8; key
// 5's node (fresh record) and a full node start at 90 s, long after the
// peers pruned the hand-off certificates: they catch up by finality proof
// through three hand-offs and must end in set 4 (key 5 voting). For their
// first 20 s they reach only validator 0, removed at 35 and turned
// byzantine: the finality proofs it serves lack their hand-offs (mutant
// skip-set-proof accepts them), and it signs removed-key votes.
func handoffWarpScenario() *scenario {
	sc := handOffScenario("handoff-warp", 2,
		plannedChange{setID: 2, handOff: 15, keys: []int{0, 1, 2, 3, 4}},
		plannedChange{setID: 3, handOff: 35, keys: []int{1, 2, 3, 4}},
		plannedChange{setID: 4, handOff: 55, keys: []int{1, 2, 3, 4, 5}})
	sc.retention = 8
	sc.pruneEvery = 2 * time.Second
	sc.duration = 160 * time.Second
	sc.turncoats = []int{0}
	sc.turnInto[0] = byzBehaviour{stripHandOffs: true}
	joinAt := 90 * time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		for k := 4; k <= 5; k++ {
			nd := w.addNode(k, true)
			nd.fresh = true
			if k == 4 {
				w.schedule(w.now, -1, "start joiner", nd.start)
			}
		}
		full := w.addNode(-1, true)
		w.after(joinAt, -1, "late joiners (eclipsed by v0)", func() {
			v0 := w.nodeOfKey(0)
			for _, j := range []*simNode{w.nodeOfKey(5), full} {
				for _, o := range w.nodes {
					if o != j && o != v0 {
						w.net.cut[[2]int{j.id, o.id}] = true
						w.net.cut[[2]int{o.id, j.id}] = true
					}
				}
				j.start()
			}
		})
		w.after(joinAt+20*time.Second, -1, "late joiners reach everyone", func() { healAll(w) })
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// handoffLongRangeScenario: set 2 (hand-off 20) rotates validator 3 out
// for key 4. Validator 3 turns byzantine once removed and, holding leaked
// keys of a quorum of set 1 (the long-range risk of protocol.md), sends a
// set-1 certificate for every link set 2 votes on to the nodes past the
// hand-off: they must ignore them (mutant wrong-set-certificate applies
// them).
func handoffLongRangeScenario() *scenario {
	sc := handOffScenario("handoff-long-range", 1,
		plannedChange{setID: 2, handOff: 20, keys: []int{0, 1, 2, 4}})
	sc.duration = 100 * time.Second
	sc.turncoats = []int{3}
	sc.turnInto[3] = byzBehaviour{oldSetCerts: true}
	sc.setup = func(w *world) {
		startValidators(w, false)
		setupHandOffs(w, nil)
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}
