package sim

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/blake2b"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/tx"
)

// Options configure one run.
type Options struct {
	Seed uint64
	// Scenario is a named scenario (see Scenarios); empty draws a random
	// one from the seed.
	Scenario string
	// Mutant switches a deliberately broken rule on (see Mutants).
	Mutant string
	// Trace, when set, receives one line per step.
	Trace io.Writer
	// Logger receives the nodes' logs (nil: none).
	Logger *zap.Logger
}

// Violation is an invariant that failed.
type Violation struct {
	At   time.Duration // simulated time since genesis
	Step int
	What string
}

func (v Violation) String() string {
	return fmt.Sprintf("step %d at %s: %s", v.Step, v.At, v.What)
}

// Result is the outcome of one run.
type Result struct {
	Seed       uint64
	Scenario   string
	Mutant     string
	Steps      int
	SimTime    time.Duration
	TraceHash  [32]byte
	Violations []Violation
	// Finalized is the highest finalized checkpoint number among honest
	// nodes at the end.
	Finalized uint64
	// Transfers is the number of transfers in the honest finalized chain
	// (invariant 11's model applied them).
	Transfers int
	// HandOffStall, when set, says why the run ended on a hand-off stall:
	// finality stopped for good because more than a third of a set spent
	// its one hand-off vote on links that never reached a quorum (the
	// documented split limit, docs/protocol.md). It is no violation.
	HandOffStall string
	// HandOffs is the number of hand-offs the honest nodes made.
	HandOffs int
}

// event is one scheduled step.
type event struct {
	at  time.Time
	seq uint64
	// node the event belongs to (-1: the world); gen the node's incarnation
	// when scheduled (events of an earlier incarnation are dropped).
	node int
	gen  int
	name string
	fn   func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// world is the simulated network.
type world struct {
	opts Options
	rng  *rand.Rand
	// krng draws the keyless peers and their choices: a stream of its own,
	// so that a seed without keyless peers runs as it did before they
	// existed.
	krng    *rand.Rand
	start   time.Time
	now     time.Time
	end     time.Time
	q       eventQueue
	seq     uint64
	steps   int
	spec    *chainspec.Spec
	genesis checkpoint.Hash
	auth    checkpoint.AuthoritySet
	// keys are every validator key of the run, made up front: 0 ..
	// validators-1 are the genesis set (the spec's authorities, in order),
	// the rest join in a later set of the schedule.
	keys []ed25519.PrivateKey
	// sched is the reference authority schedule: the genesis set and the
	// scenario's changes (no changes: the genesis set forever).
	sched checkpoint.Schedule
	nodes []*simNode
	net   netModel
	sc    *scenario
	mut   mutant
	check *checker
	trace hash.Hash
	ctx   context.Context
	log   *zap.Logger
	// blocks is every block any node authored or a byzantine node forged:
	// the ground truth for ancestry checks.
	blocks map[checkpoint.Hash]blockInfo
	// stopped: a violation ends the run.
	stopped bool
	// history holds gossip messages for replays.
	history []gossipMsg
	// wallet submits transfers to the nodes' pools (wallet.go).
	wallet *wallet
}

type blockInfo struct {
	parent checkpoint.Hash
	number uint64
}

func (w *world) elapsed() time.Duration { return w.now.Sub(w.start) }

// schedule runs fn at time at (for node, in its current incarnation).
func (w *world) schedule(at time.Time, node int, name string, fn func()) {
	if at.Before(w.now) {
		at = w.now
	}
	w.seq++
	gen := 0
	if node >= 0 {
		gen = w.nodes[node].gen
	}
	heap.Push(&w.q, &event{at: at, seq: w.seq, node: node, gen: gen, name: name, fn: fn})
}

func (w *world) after(d time.Duration, node int, name string, fn func()) {
	w.schedule(w.now.Add(d), node, name, fn)
}

// record folds a step into the trace hash (and the trace, if any).
func (w *world) record(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(w.elapsed()))
	w.trace.Write(b[:])
	w.trace.Write([]byte(line))
	if w.opts.Trace != nil {
		fmt.Fprintf(w.opts.Trace, "%10s %s\n", w.elapsed(), line)
	}
}

// Run runs one simulation.
func Run(opts Options) Result {
	w := newWorld(opts)
	defer w.close()
	res := Result{Seed: opts.Seed, Scenario: w.sc.name, Mutant: opts.Mutant}
	w.sc.setup(w)
	w.startWallet()
	for w.q.Len() > 0 && !w.stopped {
		e := heap.Pop(&w.q).(*event)
		if e.at.After(w.end) {
			break
		}
		w.now = e.at
		if e.node >= 0 {
			nd := w.nodes[e.node]
			if !nd.up || nd.gen != e.gen {
				continue
			}
		}
		w.steps++
		e.fn()
		if !w.stopped {
			w.syncPools()
		}
		w.check.afterStep(w)
	}
	if !w.stopped {
		w.check.atEnd(w)
	}
	res.Steps = w.steps
	res.SimTime = w.elapsed()
	copy(res.TraceHash[:], w.trace.Sum(nil))
	res.Violations = w.check.violations
	res.Finalized = w.check.maxHonestFinalized(w)
	res.Transfers = len(w.check.st.applied)
	res.HandOffStall = w.check.ho.stall
	res.HandOffs = len(w.check.ho.ref)
	if !w.stopped {
		ws := w.wallet.stats
		w.record("end: %d finalized transfers, %d state comparisons; wallet valid %d invalid %d replays %d resent %d, pools admitted %d refused %d",
			res.Transfers, w.check.st.compared, ws.valid, ws.invalid, ws.replays, ws.resent, ws.admitted, ws.refused)
	}
	return res
}

func newWorld(opts Options) *world {
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	tr, _ := blake2b.New256(nil)
	w := &world{
		opts:   opts,
		rng:    rng,
		krng:   rand.New(rand.NewPCG(opts.Seed^0x6b65796c657373, opts.Seed)),
		trace:  tr,
		ctx:    context.Background(),
		blocks: make(map[checkpoint.Hash]blockInfo),
		log:    opts.Logger,
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	w.mut = lookupMutant(opts.Mutant)
	w.sc = pickScenario(opts.Scenario, rng, w.krng, rand.New(rand.NewPCG(opts.Seed^0x68616e646f6666, opts.Seed)))
	w.wallet = newWallet(opts.Seed)
	w.buildSpec()
	w.start = time.UnixMilli(int64(w.spec.GenesisTimestampMs)).UTC()
	w.now = w.start
	w.end = w.start.Add(w.sc.duration)
	w.net = newNetModel(rng, w.sc)
	w.check = newChecker(w)
	w.record("seed=%d scenario=%s mutant=%s validators=%d slot=%dms interval=%d retention=%d",
		opts.Seed, w.sc.name, opts.Mutant, w.sc.validators, w.spec.SlotDurationMs, w.spec.CheckpointInterval, w.sc.retention)
	for _, ch := range w.sc.changes {
		w.record("authority change: set %d from hand-off %d, keys %v", ch.setID, ch.handOff, ch.keys)
	}
	return w
}

// simBalance is the genesis balance of every validator key.
const simBalance = 1_000_000_000

func (w *world) buildSpec() {
	n := w.sc.validators
	w.keys = make([]ed25519.PrivateKey, n+w.sc.joinKeys)
	for i := range w.keys {
		var seed [ed25519.SeedSize]byte
		copy(seed[:], "flare-sim-validator")
		binary.BigEndian.PutUint32(seed[28:], uint32(i))
		w.keys[i] = ed25519.NewKeyFromSeed(seed[:])
	}
	auths := make([]chainspec.Authority, n)
	var balances []chainspec.Balance
	for i := range n {
		auths[i] = chainspec.Authority{Name: fmt.Sprintf("v%d", i), PublicKey: fmt.Sprintf("%x", w.keys[i].Public())}
		balances = append(balances, chainspec.Balance{Address: tx.AddressOf(w.pub(i)).String(), Balance: simBalance})
	}
	for _, a := range w.wallet.addrs {
		balances = append(balances, chainspec.Balance{Address: a.String(), Balance: walletBalance})
	}
	w.spec = &chainspec.Spec{
		Name:               "Simulation",
		ID:                 "sim",
		NetworkID:          "sim",
		GenesisTimestampMs: uint64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()),
		SlotDurationMs:     w.sc.slotMs,
		CheckpointInterval: w.sc.interval,
		SetID:              1,
		Authorities:        auths,
		MinFee:             1,
		Balances:           balances,
	}
	if err := w.spec.Validate(); err != nil {
		panic(err)
	}
	g, err := engine.GenesisHash(w.spec)
	if err != nil {
		panic(err)
	}
	w.genesis = g
	w.blocks[w.genesis] = blockInfo{number: 0}
	keys := make([]ed25519.PublicKey, n)
	for i := range n {
		keys[i] = w.pub(i)
	}
	w.auth = checkpoint.AuthoritySet{Genesis: w.genesis, SetID: 1, Keys: keys}
	w.sched = checkpoint.StaticSchedule(w.auth)
	for _, ch := range w.sc.changes {
		set := checkpoint.SetChange{SetID: ch.setID, HandOff: ch.handOff}
		for _, k := range ch.keys {
			set.Keys = append(set.Keys, w.pub(k))
		}
		w.sched.Changes = append(w.sched.Changes, set)
	}
	if err := w.sched.Validate(); err != nil {
		panic(fmt.Sprintf("scenario %s: %v", w.sc.name, err))
	}
}

// pub is the public key of validator key k.
func (w *world) pub(k int) ed25519.PublicKey { return w.keys[k].Public().(ed25519.PublicKey) }

// schedule is the finality configuration's schedule: nil for a run without
// changes (the configuration of a static set, exactly as before hand-offs
// existed).
func (w *world) schedulePtr() *checkpoint.Schedule {
	if len(w.sched.Changes) == 0 {
		return nil
	}
	s := w.sched
	return &s
}

// indexIn returns key k's validator index in set setID.
func (w *world) indexIn(k int, setID uint64) (checkpoint.ValidatorIndex, bool) {
	set, ok := w.sched.Set(setID)
	if !ok {
		return 0, false
	}
	return set.IndexOf(w.pub(k))
}

// inGenesisSet: key k is one of the spec's authorities (it authors blocks:
// authorship follows the genesis set, issue 18).
func (w *world) inGenesisSet(k int) bool { return k >= 0 && k < w.sc.validators }

func (w *world) close() {
	for _, nd := range w.nodes {
		nd.shutdown()
	}
}

// violation records a failed invariant and stops the run.
func (w *world) violation(format string, args ...any) {
	v := Violation{At: w.elapsed(), Step: w.steps, What: fmt.Sprintf(format, args...)}
	w.check.violations = append(w.check.violations, v)
	w.record("VIOLATION %s", v.What)
	w.stopped = true
}

// isAncestor reports whether block a is b or an ancestor of b in the
// ground-truth block tree.
func (w *world) isAncestor(a, b checkpoint.Hash) bool {
	ia, ok := w.blocks[a]
	if !ok {
		return false
	}
	for cur := b; ; {
		if cur == a {
			return true
		}
		ic, ok := w.blocks[cur]
		if !ok || ic.number <= ia.number {
			return false
		}
		cur = ic.parent
	}
}

func (w *world) noteBlock(b asf.Block) {
	h := b.Hash()
	if _, ok := w.blocks[h]; !ok {
		w.blocks[h] = blockInfo{parent: b.Header.ParentHash, number: b.Header.Number}
	}
}

func shortHash(h checkpoint.Hash) string { return strings.TrimPrefix(h.Short(), "0x") }
