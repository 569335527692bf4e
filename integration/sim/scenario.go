package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// scenario is a world's parameters and fault schedule.
type scenario struct {
	name       string
	validators int
	slotMs     uint64
	interval   uint64
	retention  uint64
	pruneEvery time.Duration
	duration   time.Duration

	netBase, netJitter, netTail time.Duration
	netTailP, dropP, dupP       float64

	// byzantine validator indices and their behaviours.
	byzantine map[int]byzBehaviour
	// conflicting: at least a third misbehave to finalize conflicting
	// checkpoints; the checker then expects every honest node that holds
	// both to halt instead of expecting no conflict.
	conflicting bool
	// doppelganger: node index running a second instance of a key; it must
	// halt and never vote.
	doppelganger int
	// healAt: from then on every honest node is up and connected (the
	// liveness check starts); zero: no liveness check.
	healAt time.Duration
	// livenessK: after healAt, finality advances within livenessK
	// checkpoint intervals plus catch-up time.
	livenessK uint64
	// maxStall: after the heal, the honest finality never stays put for
	// longer (0: not checked). For steady scenarios, where finality must
	// keep pace rather than merely resume now and then.
	maxStall time.Duration

	// keyless: peers without any validator key, connected to every node
	// (keyless.go).
	keyless []keylessBehaviour
	// peerFaultsOnly: the only faults are keyless peers and message loss;
	// then no honest validator may miss more than maxVoteGap consecutive
	// checkpoints after voteFrom (invariant 10).
	peerFaultsOnly bool
	// voteFrom: the warm-up; own votes are counted against the checkpoints
	// after it (invariant 10 and minVoteShare).
	voteFrom time.Duration
	// minVoteShare: every honest validator votes on at least this share of
	// the checkpoints after voteFrom (0: not checked).
	minVoteShare float64

	// joinKeys: validator keys made beyond the genesis set (key ids
	// validators .. validators+joinKeys-1), each in some later set.
	joinKeys int
	// changes: the scheduled authority set changes (docs/protocol.md,
	// "Authority set hand-offs"), in set id order.
	changes []plannedChange
	// turncoats: honest validators that turn byzantine once a hand-off
	// removed their key (byzBehaviour.removedVotes from then on, and what
	// turnInto adds for them).
	turncoats []int
	turnInto  map[int]byzBehaviour

	setup func(w *world)
}

// plannedChange is one scheduled hand-off: set setID, holding the keys
// (key ids, in index order), takes over once the set before it finalized a
// hand-off link from handOff or above.
type plannedChange struct {
	setID   uint64
	handOff uint64
	keys    []int
}

// maxVoteGap is K of invariant 10: the longest run of consecutive
// checkpoints an honest validator may leave without an own vote, after the
// warm-up, when the only faults are keyless peers and message loss.
const maxVoteGap = 4

// byzBehaviour is a set of misbehaviours of a byzantine validator.
type byzBehaviour struct {
	equivocateBlocks int // extra distinct blocks per own slot (flood)
	// splitCheckpoints: every own block at a checkpoint height is split
	// into one version per peer; other own blocks are withheld (a missed
	// slot moves its later blocks onto checkpoint heights).
	splitCheckpoints bool
	doubleVote       bool // a second vote for every honest vote it makes
	surroundVote     bool // surround votes now and then
	mirrorVotes      bool // signs whatever link an honest peer votes, to that peer only
	forgeCerts       bool // certificates listing its own signature repeatedly
	replay           bool // replays old messages
	// badBlocks: half of its blocks are replaced, for every peer, by a
	// rule-breaking version (badVersion in byzantine.go).
	badBlocks bool
	// removedVotes: once a hand-off removed its key, it signs, for every
	// vote of a later set it receives, the same link with its old set id
	// and index and with the vote's set id and its old index
	// (removedVote in byzantine.go): these votes must count for nothing.
	removedVotes bool
	// oldSetCerts: with removedVotes, it also holds leaked keys of a
	// quorum of its old set (the long-range risk of protocol.md) and sends
	// that set's certificates for the links it sees above the hand-off to
	// the nodes past the hand-off, which must ignore them.
	oldSetCerts bool
	// stripHandOffs: the finality proofs it serves lack their hand-offs
	// (a joiner must refuse them).
	stripHandOffs bool
}

// Scenarios are the named scenarios, one per failure class known to have
// broken the node.
var Scenarios = []string{
	"outage-beyond-window",
	"late-joiner-after-pruning",
	"slot-flood",
	"equivocating-checkpoint-proposer",
	"conflicting-finality",
	"doppelganger",
	"purge-chain",
	"keyless-liar",
	"keyless-far-ahead",
	"reinstalled-validator",
	"bad-blocks",
	"fork-switch",
	"handoff-join-leave",
	"handoff-partition",
	"handoff-crash",
	"handoff-warp",
	"handoff-long-range",
}

func defaultScenario(name string) *scenario {
	return &scenario{
		name:         name,
		validators:   4,
		slotMs:       1000,
		interval:     1,
		retention:    16,
		pruneEvery:   10 * time.Second,
		duration:     180 * time.Second,
		netBase:      20 * time.Millisecond,
		netJitter:    60 * time.Millisecond,
		netTail:      400 * time.Millisecond,
		netTailP:     0.02,
		byzantine:    map[int]byzBehaviour{},
		doppelganger: -1,
		livenessK:    10,
	}
}

// pickScenario builds the scenario name ("": a random one from the seed's
// streams: rng for the world, krng for keyless peers, hrng for authority
// set changes).
func pickScenario(name string, rng, krng, hrng *rand.Rand) *scenario {
	switch name {
	case "":
		return randomScenario(rng, krng, hrng)
	case "outage-beyond-window":
		return outageScenario()
	case "late-joiner-after-pruning":
		return lateJoinerScenario()
	case "slot-flood":
		return slotFloodScenario()
	case "equivocating-checkpoint-proposer":
		return equivocatingCheckpointProposerScenario()
	case "conflicting-finality":
		return conflictingFinalityScenario()
	case "doppelganger":
		return doppelgangerScenario()
	case "purge-chain":
		return purgeScenario()
	case "keyless-liar":
		return keylessLiarScenario()
	case "keyless-far-ahead":
		return keylessFarAheadScenario()
	case "reinstalled-validator":
		return reinstalledScenario()
	case "bad-blocks":
		return badBlocksScenario()
	case "fork-switch":
		return forkSwitchScenario()
	case "handoff-join-leave":
		return handoffJoinLeaveScenario()
	case "handoff-partition":
		return handoffPartitionScenario()
	case "handoff-crash":
		return handoffCrashScenario()
	case "handoff-warp":
		return handoffWarpScenario()
	case "handoff-long-range":
		return handoffLongRangeScenario()
	case "steady":
		return steadyScenario()
	}
	panic(fmt.Sprintf("unknown scenario %q (known: %v)", name, Scenarios))
}

// startAll adds n validators (and full nodes) and starts them at t=0.
func startValidators(w *world, fresh bool) {
	for i := range w.sc.validators {
		_, byz := w.sc.byzantine[i]
		nd := w.addNode(i, !byz)
		nd.fresh = fresh
	}
	for _, nd := range w.nodes {
		nd := nd
		w.schedule(w.now, -1, "start", nd.start)
	}
}

// randomScenario draws parameters and a fault schedule from the seed: a
// busy first part with faults, then everything heals and liveness is
// checked. krng draws the keyless peers (a quarter of the seeds get one or
// two, half of those with no other fault than message loss).
func randomScenario(rng, krng, hrng *rand.Rand) *scenario {
	sc := defaultScenario("random")
	if rng.IntN(4) == 0 {
		sc.validators = 4 + rng.IntN(4) // 4..7
	}
	sc.interval = uint64(1 + rng.IntN(2))
	sc.slotMs = []uint64{500, 1000, 1000, 2000}[rng.IntN(4)]
	sc.retention = uint64(6 + rng.IntN(20))
	sc.pruneEvery = time.Duration(3+rng.IntN(10)) * time.Second
	sc.duration = time.Duration(150+rng.IntN(150)) * time.Second
	sc.netBase = time.Duration(5+rng.IntN(40)) * time.Millisecond
	sc.netJitter = time.Duration(1+rng.IntN(150)) * time.Millisecond
	sc.netTailP = rng.Float64() * 0.05
	if rng.IntN(3) == 0 {
		sc.dropP = rng.Float64() * 0.1
	}
	if rng.IntN(3) == 0 {
		sc.dupP = rng.Float64() * 0.1
	}
	maxByz := (sc.validators - 1) / 3
	if maxByz > 0 && rng.IntN(2) == 0 {
		for range 1 + rng.IntN(maxByz) {
			i := rng.IntN(sc.validators)
			sc.byzantine[i] = byzBehaviour{
				equivocateBlocks: rng.IntN(3) * rng.IntN(4),
				doubleVote:       rng.IntN(2) == 0,
				surroundVote:     rng.IntN(3) == 0,
				forgeCerts:       rng.IntN(3) == 0,
				replay:           rng.IntN(2) == 0,
				badBlocks:        rng.IntN(3) == 0,
			}
		}
	}
	slot := time.Duration(sc.slotMs) * time.Millisecond
	faultEnd := sc.duration * 6 / 10
	sc.healAt = faultEnd
	freshStart := rng.IntN(3) == 0
	late := -1
	if rng.IntN(4) == 0 {
		late = rng.IntN(sc.validators)
	}
	fullLate := rng.IntN(4) == 0
	type fault struct {
		at   time.Duration
		name string
		fn   func(w *world)
	}
	var faults []fault
	nFaults := rng.IntN(8)
	for range nFaults {
		at := time.Duration(rng.Int64N(int64(faultEnd - 10*time.Second)))
		switch rng.IntN(6) {
		case 0, 1: // crash and restart
			who := rng.IntN(sc.validators)
			down := time.Duration(rng.Int64N(int64(40 * slot)))
			if rng.IntN(4) == 0 {
				down = time.Duration(sc.retention+uint64(rng.IntN(20))) * time.Duration(sc.interval) * slot
			}
			faults = append(faults, fault{at, "crash", func(w *world) { crashFor(w, who, down) }})
		case 2: // partition
			split := rng.Perm(sc.validators)[:1+rng.IntN(sc.validators-1)]
			dur := time.Duration(rng.Int64N(int64(30 * slot)))
			faults = append(faults, fault{at, "partition", func(w *world) { partitionFor(w, split, dur) }})
		case 3: // one-way partition
			a, b := rng.IntN(sc.validators), rng.IntN(sc.validators)
			dur := time.Duration(rng.Int64N(int64(30 * slot)))
			faults = append(faults, fault{at, "one-way", func(w *world) { oneWayFor(w, a, b, dur) }})
		case 4: // purge-chain and restart
			who := rng.IntN(sc.validators)
			faults = append(faults, fault{at, "purge", func(w *world) { purgeFor(w, who, time.Duration(rng.Int64N(int64(10*slot)))) }})
		case 5: // skew change
			who := rng.IntN(sc.validators)
			skew := time.Duration(rng.Int64N(int64(600*time.Millisecond))) - 300*time.Millisecond
			faults = append(faults, fault{at, "skew", func(w *world) { w.nodes[who].skew = skew }})
		}
	}
	slices.SortStableFunc(faults, func(a, b fault) int { return int(a.at - b.at) })
	plan := drawChanges(sc, hrng)
	if krng.IntN(4) == 0 {
		for range 1 + krng.IntN(2) {
			sc.keyless = append(sc.keyless, randomKeyless(krng))
		}
		if krng.IntN(2) == 0 {
			// Keyless peers (and message loss) are the only faults.
			sc.peerFaultsOnly = true
			sc.byzantine = map[int]byzBehaviour{}
			faults, late, fullLate = nil, -1, false
			sc.voteFrom = 20 * time.Second
			if plan != nil {
				// The changes stay; no timed fault, turncoat or late joiner.
				plan.triggers, plan.lateJoiners, sc.turncoats = nil, nil, nil
			}
		}
	}
	sc.setup = func(w *world) {
		for i := range sc.validators {
			_, byz := sc.byzantine[i]
			nd := w.addNode(i, !byz)
			nd.fresh = freshStart
			nd.skew = time.Duration(w.rng.Int64N(int64(200*time.Millisecond))) - 100*time.Millisecond
		}
		for _, nd := range w.nodes {
			nd := nd
			if nd.key == late {
				nd.fresh = true
				w.after(time.Duration(w.rng.Int64N(int64(faultEnd))), -1, "late start", nd.start)
				continue
			}
			w.schedule(w.now, -1, "start", nd.start)
		}
		if fullLate {
			full := w.addNode(-1, true)
			w.after(time.Duration(w.rng.Int64N(int64(sc.duration*8/10))), -1, "late full node", full.start)
		}
		setupHandOffs(w, plan)
		for _, f := range faults {
			f := f
			w.after(f.at, -1, f.name, func() { f.fn(w) })
		}
		installByzantine(w)
		installKeyless(w)
		w.after(faultEnd, -1, "heal", func() { healAll(w) })
	}
	return sc
}

// randomKeyless draws a random mix of the keyless behaviours.
func randomKeyless(krng *rand.Rand) keylessBehaviour {
	b := keylessBehaviour{
		lieFinalized: krng.IntN(2) == 0,
		farAhead:     krng.IntN(3) == 0,
		relayProof:   krng.IntN(2) == 0,
		trickle:      krng.IntN(2) == 0,
		poll:         krng.IntN(2) == 0,
	}
	switch krng.IntN(6) {
	case 0:
		b.withholdP = 1 // never answers
	case 1, 2:
		b.withholdP = krng.Float64() / 2
	}
	return b
}

// crashFor crashes node i and restarts it after down.
func crashFor(w *world, i int, down time.Duration) {
	nd := w.nodes[i]
	if !nd.up || !w.crashAllowed(nd) {
		return
	}
	nd.crash()
	w.after(down, -1, "restart", nd.start)
}

// purgeFor crashes node i, purges its chain and restarts it after down.
func purgeFor(w *world, i int, down time.Duration) {
	nd := w.nodes[i]
	if !nd.up {
		return
	}
	nd.purge()
	w.after(down, -1, "restart after purge", nd.start)
}

// partitionFor cuts the connections between group and the rest for dur.
func partitionFor(w *world, group []int, dur time.Duration) {
	in := make(map[int]bool, len(group))
	for _, g := range group {
		in[g] = true
	}
	var cut [][2]int
	for _, a := range w.nodes {
		for _, b := range w.nodes {
			if a.id < b.id && in[a.id] != in[b.id] && w.net.connected(a.id, b.id) {
				cut = append(cut, [2]int{a.id, b.id})
			}
		}
	}
	for _, c := range cut {
		w.net.cut[c] = true
		w.net.cut[[2]int{c[1], c[0]}] = true
		w.nodes[c[0]].disconnect(w.nodes[c[1]])
	}
	w.record("partition %v for %s", group, dur)
	w.after(dur, -1, "heal partition", func() {
		for _, c := range cut {
			delete(w.net.cut, c)
			delete(w.net.cut, [2]int{c[1], c[0]})
			a, b := w.nodes[c[0]], w.nodes[c[1]]
			if a.up && b.up {
				a.connect(b)
			}
		}
		w.record("partition %v healed", group)
	})
}

// oneWayFor drops messages from a to b for dur.
func oneWayFor(w *world, a, b int, dur time.Duration) {
	if a == b {
		return
	}
	w.net.blocked[[2]int{a, b}] = true
	w.record("one-way %d -> %d blocked for %s", a, b, dur)
	w.after(dur, -1, "heal one-way", func() { delete(w.net.blocked, [2]int{a, b}) })
}

// healAll ends every fault: all nodes up, all links open.
func healAll(w *world) {
	w.net.blocked = make(map[[2]int]bool)
	var cut [][2]int
	for c := range w.net.cut {
		cut = append(cut, c)
	}
	slices.SortFunc(cut, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	w.net.cut = make(map[[2]int]bool)
	for _, c := range cut {
		if c[0] < c[1] {
			a, b := w.nodes[c[0]], w.nodes[c[1]]
			if a.up && b.up {
				a.connect(b)
			}
		}
	}
	for _, nd := range w.nodes {
		if !nd.up && nd.startedAt.IsZero() == false {
			nd.start()
		}
	}
	w.record("healed")
	w.check.onHeal(w)
}

// --- Named scenarios ----------------------------------------------------------

// outageScenario: two of four validators are down far longer than the
// future window (256 checkpoints); when they come back, finality resumes.
func outageScenario() *scenario {
	sc := defaultScenario("outage-beyond-window")
	sc.slotMs = 250
	sc.interval = 1
	sc.retention = 20
	sc.pruneEvery = 2 * time.Second
	outage := 150 * time.Second // > 256 checkpoints of the two producers left at 250 ms
	sc.healAt = 10*time.Second + outage
	sc.duration = sc.healAt + 60*time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		w.after(10*time.Second, -1, "outage", func() {
			for _, i := range []int{2, 3} {
				w.nodes[i].crash()
			}
		})
		w.after(sc.healAt, -1, "back", func() { healAll(w) })
	}
	return sc
}

// lateJoinerScenario: three validators finalize long past the retention;
// the fourth validator (never started, fresh record) and a full node join
// afterwards and reach the network's finality by a finality proof.
func lateJoinerScenario() *scenario {
	sc := defaultScenario("late-joiner-after-pruning")
	sc.slotMs = 500
	sc.retention = 8
	sc.pruneEvery = 2 * time.Second
	sc.healAt = 90 * time.Second
	sc.duration = 150 * time.Second
	sc.setup = func(w *world) {
		for i := range sc.validators {
			nd := w.addNode(i, true)
			nd.fresh = true
		}
		for _, nd := range w.nodes[:3] {
			nd := nd
			w.schedule(w.now, -1, "start", nd.start)
		}
		full := w.addNode(-1, true)
		w.after(sc.healAt, -1, "late joiners", func() {
			w.nodes[3].start()
			full.start()
			w.check.onHeal(w)
		})
	}
	return sc
}

// slotFloodScenario: one authority publishes many distinct blocks for each
// of its slots; one is imported, the rest are evidence, and honest finality
// continues.
func slotFloodScenario() *scenario {
	return oneByzantineProposer("slot-flood", 1, byzBehaviour{equivocateBlocks: 40})
}

// oneByzantineProposer is a 120 s run of 4 validators, validator byz
// misbehaving as b from the start, the liveness check from 1 s.
func oneByzantineProposer(name string, byz int, b byzBehaviour) *scenario {
	sc := defaultScenario(name)
	sc.byzantine[byz] = b
	sc.healAt = 1 * time.Second
	sc.duration = 120 * time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		installByzantine(w)
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// equivocatingCheckpointProposerScenario: 4 validators, a checkpoint every
// 2 blocks; validator 2 withholds its blocks until one lands on a
// checkpoint height, then hands each peer a different version of every own
// checkpoint block (every other checkpoint is its). Votes cast on import
// would split over the versions, so its checkpoints would never be
// justified and no two consecutive checkpoints would be: finality stops for
// good (simulator seed 947 of the random scenarios). Honest validators vote
// on a checkpoint of a known equivocator only once a block builds on it, and
// finality keeps pace.
func equivocatingCheckpointProposerScenario() *scenario {
	sc := oneByzantineProposer("equivocating-checkpoint-proposer", 2, byzBehaviour{splitCheckpoints: true})
	sc.interval = 2
	sc.maxStall = 10 * time.Second // 5 checkpoint intervals
	return sc
}

// conflictingFinalityScenario: two of four validators (at least a third)
// vote for both sides of a partition between the two honest validators, so
// each honest validator finalizes its own fork; once they reconnect, every
// honest node that holds both halts.
func conflictingFinalityScenario() *scenario {
	sc := defaultScenario("conflicting-finality")
	sc.byzantine[2] = byzBehaviour{mirrorVotes: true}
	sc.byzantine[3] = byzBehaviour{mirrorVotes: true}
	sc.conflicting = true
	sc.duration = 120 * time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		installByzantine(w)
		// The honest validators never hear each other until 60 s.
		w.net.cut[[2]int{0, 1}] = true
		w.net.cut[[2]int{1, 0}] = true
		w.after(60*time.Second, -1, "reconnect the honest validators", func() {
			delete(w.net.cut, [2]int{0, 1})
			delete(w.net.cut, [2]int{1, 0})
			w.nodes[0].connect(w.nodes[1])
			w.record("honest validators reconnected")
		})
	}
	return sc
}

// doppelgangerScenario: validator 0 runs normally; at 40 s a second
// instance of its key starts with a fresh signer record. It must notice
// the live key while listening, halt and never vote.
func doppelgangerScenario() *scenario {
	sc := defaultScenario("doppelganger")
	sc.duration = 100 * time.Second
	sc.healAt = 1 * time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		twin := w.addNode(0, true)
		twin.fresh = true
		w.sc.doppelganger = twin.id
		w.after(40*time.Second, -1, "doppelganger", twin.start)
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// purgeScenario: a validator is stopped and purge-chain'd (signer record
// kept), restarted while it cannot reach anyone for long enough to author
// a chain of its own higher than its earlier votes (it must not vote there:
// its justified checkpoint restarted from genesis, below its earlier
// sources), then reconnected after the others pruned: it catches up and
// votes again without any conflict.
func purgeScenario() *scenario {
	sc := defaultScenario("purge-chain")
	sc.retention = 8
	sc.pruneEvery = 2 * time.Second
	sc.healAt = 140 * time.Second
	sc.duration = 200 * time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		w.after(20*time.Second, -1, "purge", func() {
			w.nodes[1].purge()
			for _, other := range w.nodes {
				if other.id != 1 {
					w.net.cut[[2]int{1, other.id}] = true
					w.net.cut[[2]int{other.id, 1}] = true
				}
			}
			w.nodes[1].start()
		})
		w.after(sc.healAt, -1, "reconnect", func() { healAll(w) })
	}
	return sc
}

// steadyScenario: four honest validators, 1 s slots, a checkpoint every
// block, no faults, 10 simulated minutes (the speed benchmark's world).
func steadyScenario() *scenario {
	sc := defaultScenario("steady")
	sc.duration = 600 * time.Second
	sc.healAt = time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// keylessLiarScenario: two keyless peers claim, to every validator, a
// finalized checkpoint at or below the validator's own with a random hash
// (an unsigned claim of conflicting finality), and answer the finality-proof
// request that claim provokes with the honest network's real proof. A
// validator that lags by one checkpoint — or restarts (three validators are
// restarted) — gets a genuine proof above its finality after a claim that
// conflicted with it: no signed evidence of conflicting finality exists, so
// no honest node may halt (invariant 9).
func keylessLiarScenario() *scenario {
	sc := defaultScenario("keyless-liar")
	sc.duration = 120 * time.Second
	sc.healAt = 1 * time.Second
	sc.keyless = []keylessBehaviour{
		{lieFinalized: true, relayProof: true, poll: true},
		{lieFinalized: true, relayProof: true, withholdP: 0.3},
	}
	sc.setup = func(w *world) {
		startValidators(w, false)
		installKeyless(w)
		w.after(20*time.Second, -1, "restart v3", func() { crashFor(w, 3, 6*time.Second) })
		w.after(50*time.Second, -1, "restart v2", func() { crashFor(w, 2, 10*time.Second) })
		w.after(80*time.Second, -1, "restart v1", func() { crashFor(w, 1, 3*time.Second) })
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// keylessFarAheadScenario: two keyless peers claim best block 2^40 and
// answer block-range requests with one honest block at a time, just inside
// the request time-out (one of them withholds half its answers); 1 % of the
// messages are lost. No other fault: every honest validator must vote on at
// least 90 % of the checkpoints after a 20 s warm-up and never miss more
// than K consecutive ones (invariant 10).
func keylessFarAheadScenario() *scenario {
	sc := defaultScenario("keyless-far-ahead")
	sc.duration = 120 * time.Second
	sc.healAt = 1 * time.Second
	sc.dropP = 0.01
	sc.peerFaultsOnly = true
	sc.voteFrom = 20 * time.Second
	sc.minVoteShare = 0.9
	sc.keyless = []keylessBehaviour{
		{farAhead: true, trickle: true, relayProof: true},
		{farAhead: true, trickle: true, withholdP: 0.5, poll: true},
	}
	sc.setup = func(w *world) {
		startValidators(w, false)
		installKeyless(w)
		w.after(sc.healAt, -1, "liveness", func() { w.check.onHeal(w) })
	}
	return sc
}

// reinstalledScenario: validator 0 is re-installed on a new machine — base
// path deleted (chain and checkpoint databases, signer record, its
// high-water mark), same key, fresh record — at a moment where the source
// of its last vote was justified only in its own view. Until then the
// others' votes reach validator 0 only and no certificate is gossiped: it
// justifies each checkpoint at once and votes s->s+1 (the others store
// those votes), while the others learn justification only from its
// certificates by sync, a round later. At the re-install (6.5 s)
// validators 2 and 3 go down for 30 s, so nothing more is justified: the
// new instance learns a justified checkpoint below its last vote's source
// from validator 1 and, unless it learns its key's stored votes from its
// peers before the first vote, votes around its last vote (seed 1: 4->8
// around 5->6): a surround vote (invariant 1, which knows every vote the
// key signed in either life). Then all are back and finality resumes.
func reinstalledScenario() *scenario {
	sc := defaultScenario("reinstalled-validator")
	sc.netJitter = 20 * time.Millisecond
	sc.netTailP = 0
	reinstallAt := 6500 * time.Millisecond
	sc.healAt = reinstallAt + 30*time.Second
	sc.duration = sc.healAt + 70*time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		w.net.filter = func(from, to int, m gossipMsg) bool {
			switch m.kind {
			case kindVote:
				return to == 0 || m.vote.Validator == 0
			case kindCert:
				return false
			}
			return true
		}
		w.after(reinstallAt, -1, "re-install v0", func() {
			w.net.filter = nil
			v0 := w.nodes[0]
			v0.reinstall()
			w.nodes[2].crash()
			w.nodes[3].crash()
			w.after(2*time.Second, -1, "start re-installed v0", v0.start)
		})
		w.after(sc.healAt, -1, "back", func() { healAll(w) })
	}
	return sc
}

// badBlocksScenario: validator 3 replaces half of its blocks by a
// rule-breaking version — a replayed transfer, an overspend (each with the
// root an executor without that rule computes) or a wrong state root — sent
// to every peer. Honest nodes reject each (the slot stays empty) and
// finality keeps pace; a node that accepts one finalizes a block whose
// transfer breaks a rule, or holds a state that differs from the replay
// (invariant 11: mutants skip-nonce-check, skip-balance-check,
// accept-bad-state-root).
func badBlocksScenario() *scenario {
	sc := oneByzantineProposer("bad-blocks", 3, byzBehaviour{badBlocks: true})
	sc.maxStall = 10 * time.Second
	return sc
}

// forkSwitchScenario: four honest validators, split into {0,1} and {2,3}
// four times for 6–15 s while the wallet's transfers reach both sides; each
// side builds its own branch of blocks with transfers (no finality without
// the other half), and when the partition heals the losing side switches
// to the other branch, importing blocks whose parent is not its best block
// (mutant reapply-on-fork-switch executes them on its own branch's state).
func forkSwitchScenario() *scenario {
	sc := defaultScenario("fork-switch")
	sc.healAt = 100 * time.Second
	sc.duration = 150 * time.Second
	sc.setup = func(w *world) {
		startValidators(w, false)
		for i, at := range []time.Duration{10, 32, 54, 76} {
			dur := time.Duration(6+2*i+w.rng.IntN(4)) * time.Second
			w.after(at*time.Second, -1, "split", func() { partitionFor(w, []int{0, 1}, dur) })
		}
		w.after(sc.healAt, -1, "heal", func() { healAll(w) })
	}
	return sc
}
