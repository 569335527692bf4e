package finality_test

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testChain is a tree of checkpoint blocks (one block per checkpoint
// number; the blocks in between do not matter to the gadget). It implements
// finality.Ancestry the way the chain does: by walking parent links.
type testChain struct {
	mu      sync.Mutex
	genesis checkpoint.Hash
	parent  map[checkpoint.Hash]checkpoint.Checkpoint
	number  map[checkpoint.Hash]uint64
	tip     checkpoint.Checkpoint
}

func newTestChain(genesis checkpoint.Hash) *testChain {
	return &testChain{
		genesis: genesis,
		parent:  map[checkpoint.Hash]checkpoint.Checkpoint{},
		number:  map[checkpoint.Hash]uint64{genesis: 0},
		tip:     checkpoint.Checkpoint{Number: 0, Hash: genesis},
	}
}

// Extend adds the next checkpoint block on top of parent; fork tags make
// siblings differ.
func (c *testChain) Extend(parent checkpoint.Checkpoint, fork byte) checkpoint.Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b [9]byte
	binary.BigEndian.PutUint64(b[:8], parent.Number+1)
	b[8] = fork
	cp := checkpoint.Checkpoint{Number: parent.Number + 1, Hash: checkpoint.HashOf(parent.Hash[:], b[:])}
	c.parent[cp.Hash] = parent
	c.number[cp.Hash] = cp.Number
	if cp.Number > c.tip.Number {
		c.tip = cp
	}
	return cp
}

// Next extends the current tip.
func (c *testChain) Next() checkpoint.Checkpoint {
	c.mu.Lock()
	tip := c.tip
	c.mu.Unlock()
	return c.Extend(tip, 0)
}

func (c *testChain) IsDescendant(block checkpoint.Hash, ancestor checkpoint.Checkpoint) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.number[block]
	if !ok {
		return false
	}
	cur := checkpoint.Checkpoint{Number: n, Hash: block}
	for cur.Number > ancestor.Number {
		cur, ok = c.parent[cur.Hash]
		if !ok {
			return false
		}
	}
	return cur == ancestor
}

// bus is an in-memory network: broadcasts are queued and delivered by pump
// in a deterministic order chosen by the test.
type bus struct {
	mu    sync.Mutex
	queue []message
	sent  []message
}

type message struct {
	from int
	vote *checkpoint.SignedVote
	cert *checkpoint.Certificate
}

func (m message) String() string {
	if m.vote != nil {
		return fmt.Sprintf("vote %d %s->%s from %d", m.vote.Validator, m.vote.Source, m.vote.Target, m.from)
	}
	return fmt.Sprintf("cert %s->%s from %d", m.cert.Source, m.cert.Target, m.from)
}

func (b *bus) push(m message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queue = append(b.queue, m)
	b.sent = append(b.sent, m)
}

func (b *bus) pop(pick func(n int) int) (message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		return message{}, false
	}
	i := 0
	if pick != nil {
		i = pick(len(b.queue))
	}
	m := b.queue[i]
	b.queue = append(b.queue[:i], b.queue[i+1:]...)
	return m, true
}

func (b *bus) Sent() []message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]message(nil), b.sent...)
}

// endpoint is one node's Broadcaster on the bus. check, when set, runs
// before the message is queued (tests use it to assert what is durable at
// broadcast time).
type endpoint struct {
	bus   *bus
	from  int
	check func(m message)
}

func (e *endpoint) BroadcastVote(_ context.Context, v checkpoint.SignedVote) error {
	m := message{from: e.from, vote: &v}
	if e.check != nil {
		e.check(m)
	}
	e.bus.push(m)
	return nil
}

func (e *endpoint) BroadcastCertificate(_ context.Context, c checkpoint.Certificate) error {
	m := message{from: e.from, cert: &c}
	if e.check != nil {
		e.check(m)
	}
	e.bus.push(m)
	return nil
}

// recordingObserver records justified and finalized notifications.
type recordingObserver struct {
	mu        sync.Mutex
	justified []checkpoint.Checkpoint
	finalized []checkpoint.Checkpoint
}

func (o *recordingObserver) Justified(cp checkpoint.Checkpoint) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.justified = append(o.justified, cp)
}

func (o *recordingObserver) Finalized(cp checkpoint.Checkpoint) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finalized = append(o.finalized, cp)
}

func (o *recordingObserver) Finalizations() []checkpoint.Checkpoint {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]checkpoint.Checkpoint(nil), o.finalized...)
}

// spyStore wraps the real database, records evidence and maintenance calls
// and can fail Flush.
type spyStore struct {
	finality.CheckpointStorage
	mu       sync.Mutex
	evidence []checkpoint.Evidence
	certs    []checkpoint.Certificate
	flushes  int
	prunes   int
	flushErr error
}

var errInjected = errors.New("injected storage failure")

func (s *spyStore) StoreEvidence(ctx context.Context, e checkpoint.Evidence) error {
	if err := s.CheckpointStorage.StoreEvidence(ctx, e); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evidence = append(s.evidence, e)
	return nil
}

func (s *spyStore) StoreCertificate(ctx context.Context, c checkpoint.Certificate, j, f *checkpoint.Checkpoint) error {
	if err := s.CheckpointStorage.StoreCertificate(ctx, c, j, f); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs = append(s.certs, c)
	return nil
}

func (s *spyStore) Flush(ctx context.Context) error {
	s.mu.Lock()
	err := s.flushErr
	s.flushes++
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.CheckpointStorage.Flush(ctx)
}

func (s *spyStore) Prune(ctx context.Context, keep uint64) (int, error) {
	s.mu.Lock()
	s.prunes++
	s.mu.Unlock()
	return s.CheckpointStorage.Prune(ctx, keep)
}

func (s *spyStore) Evidence() []checkpoint.Evidence {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]checkpoint.Evidence(nil), s.evidence...)
}

func (s *spyStore) Counts() (flushes, prunes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushes, s.prunes
}

// testNet is a set of validator keys, one chain, one clock and one bus.
type testNet struct {
	t     testing.TB
	keys  []ed25519.PrivateKey
	auth  checkpoint.AuthoritySet
	chain *testChain
	clock *fakeClock
	bus   *bus
	ids   int
}

func testKey(i int) ed25519.PrivateKey {
	var seed [ed25519.SeedSize]byte
	copy(seed[:], "flare-finality-test-key")
	binary.BigEndian.PutUint32(seed[28:], uint32(i))
	return ed25519.NewKeyFromSeed(seed[:])
}

func newTestNet(t testing.TB, n int) *testNet {
	genesis := checkpoint.HashOf([]byte("flare finality test genesis"))
	keys := make([]ed25519.PrivateKey, n)
	pubs := make([]ed25519.PublicKey, n)
	for i := range n {
		keys[i] = testKey(i)
		pubs[i] = keys[i].Public().(ed25519.PublicKey)
	}
	return &testNet{
		t:     t,
		keys:  keys,
		auth:  checkpoint.AuthoritySet{Genesis: genesis, SetID: 7, Keys: pubs},
		chain: newTestChain(genesis),
		clock: newFakeClock(),
		bus:   &bus{},
	}
}

func (n *testNet) genesis() checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Number: 0, Hash: n.auth.Genesis}
}

// vote returns validator i's signed vote, signed directly with its key (as
// a peer, or a misbehaving peer, would).
func (n *testNet) vote(i int, src, tgt checkpoint.Checkpoint) checkpoint.SignedVote {
	v := checkpoint.Vote{Genesis: n.auth.Genesis, SetID: n.auth.SetID, Source: src, Target: tgt}
	return checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i), Signature: finality.NewKeySigner(n.keys[i]).Sign(v.SigningBytes())}
}

// cert returns a certificate for src->tgt signed by validators.
func (n *testNet) cert(src, tgt checkpoint.Checkpoint, validators ...int) checkpoint.Certificate {
	votes := make([]checkpoint.SignedVote, len(validators))
	for k, i := range validators {
		votes[k] = n.vote(i, src, tgt)
	}
	c, err := checkpoint.NewCertificate(votes)
	require.NoError(n.t, err)
	return c
}

func seq(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// node is one gadget with its own database.
type node struct {
	t     testing.TB
	net   *testNet
	id    int // bus address
	idx   int // validator index, -1 for an observer
	fs    vfs.FS
	db    *checkpointdb.CheckpointDB
	store *spyStore
	g     *finality.CheckpointFinality
	ep    *endpoint
	obs   *recordingObserver
	logs  *observer.ObservedLogs
	cfg   finality.Config
	bc    finality.Broadcaster // nil = the bus endpoint
	tm    finality.Timings     // nil = none
}

type nodeOpt func(*node)

func withPersistence(p finality.CheckpointPersistenceConfig) nodeOpt {
	return func(nd *node) { nd.cfg.Persistence = p }
}

func withWindow(w uint64) nodeOpt { return func(nd *node) { nd.cfg.FutureWindow = w } }

// withTimings sets the gadget's Timings observer.
func withTimings(tm finality.Timings) nodeOpt { return func(nd *node) { nd.tm = tm } }

// withBroadcaster replaces the bus endpoint.
func withBroadcaster(b finality.Broadcaster) nodeOpt { return func(nd *node) { nd.bc = b } }

// newNode opens a fresh in-memory database and builds the gadget; idx < 0
// builds an observer (no signer).
func (n *testNet) newNode(idx int, opts ...nodeOpt) *node {
	n.ids++
	nd := &node{t: n.t, net: n, id: n.ids, idx: idx, fs: vfs.NewMem()}
	// Every node broadcasts the certificates it forms (the rule tests
	// count them); the node's one-broadcaster-per-checkpoint policy is
	// tested on its own.
	nd.cfg = finality.Config{Authorities: n.auth, Persistence: finality.TestnetPersistenceConfig(), BroadcastAllFormed: true}
	for _, o := range opts {
		o(nd)
	}
	nd.open()
	return nd
}

// open (re)opens the node's database and builds a new gadget on it,
// restored from storage.
func (nd *node) open() {
	t := nd.t
	db, err := checkpointdb.Open("db", checkpointdb.Options{FS: nd.fs, Genesis: nd.net.auth.Genesis, Logger: zap.NewNop()})
	require.NoError(t, err)
	nd.db = db
	nd.store = &spyStore{CheckpointStorage: db}
	core, logs := observer.New(zapcore.DebugLevel)
	nd.logs = logs
	nd.obs = &recordingObserver{}
	nd.ep = &endpoint{bus: nd.net.bus, from: nd.id}
	var bc finality.Broadcaster = nd.ep
	if nd.bc != nil {
		bc = nd.bc
	}
	deps := finality.Deps{
		Store:       nd.store,
		Clock:       nd.net.clock,
		Broadcaster: bc,
		Ancestry:    nd.net.chain,
		Observer:    nd.obs,
		Logger:      zap.New(core),
		Timings:     nd.tm,
	}
	if nd.idx >= 0 {
		deps.Signer = finality.NewSafeSigner(nd.store, finality.NewKeySigner(nd.net.keys[nd.idx]), checkpoint.ValidatorIndex(nd.idx), nd.net.auth.Genesis)
	}
	g, err := finality.New(nd.cfg, deps)
	require.NoError(t, err)
	require.NoError(t, g.RestoreFromStorage(context.Background()))
	nd.g = g
}

// newNodes starts nodes 0..k-1, closed when the test ends.
func (n *testNet) newNodes(k int) []*node {
	nodes := make([]*node, k)
	for i := range k {
		nodes[i] = n.newNode(i)
		n.t.Cleanup(nodes[i].close)
	}
	return nodes
}

// restart closes the database and opens the node again from it.
func (nd *node) restart() {
	require.NoError(nd.t, nd.db.Close())
	nd.open()
}

func (nd *node) close() {
	if nd.db != nil {
		_ = nd.db.Close()
		nd.db = nil
	}
}

func (nd *node) logged(msg string) int {
	return nd.logs.FilterMessage(msg).Len()
}

// mustVote feeds v and requires the verdict.
func (nd *node) mustVote(v checkpoint.SignedVote, want finality.Verdict) {
	nd.t.Helper()
	got, err := nd.g.OnVote(context.Background(), v)
	require.NoError(nd.t, err)
	require.Equal(nd.t, want, got, "vote %d %s->%s", v.Validator, v.Source, v.Target)
}

func (nd *node) mustCert(c checkpoint.Certificate, want finality.Verdict) {
	nd.t.Helper()
	got, err := nd.g.OnCertificate(context.Background(), c)
	require.NoError(nd.t, err)
	require.Equal(nd.t, want, got, "cert %s->%s", c.Source, c.Target)
}

// deliveryPolicy decides the delivery order and which deliveries are lost.
type deliveryPolicy struct {
	pick func(n int) int              // index of the next queued message; nil = FIFO
	drop func(m message, to int) bool // nil = deliver everything
}

// pump delivers queued messages to every node but the sender until the bus
// is empty, and returns how many deliveries happened.
func pump(t testing.TB, b *bus, nodes []*node, p deliveryPolicy) int {
	t.Helper()
	ctx := context.Background()
	delivered := 0
	for {
		m, ok := b.pop(p.pick)
		if !ok {
			return delivered
		}
		for _, nd := range nodes {
			if nd.id == m.from {
				continue
			}
			if p.drop != nil && p.drop(m, nd.id) {
				continue
			}
			delivered++
			var err error
			if m.vote != nil {
				_, err = nd.g.OnVote(ctx, *m.vote)
			} else {
				_, err = nd.g.OnCertificate(ctx, *m.cert)
			}
			require.NoError(t, err, "deliver %s to %d", m, nd.id)
		}
		require.Less(t, delivered, 10_000_000, "delivery does not converge")
	}
}

func seededPick(seed uint64) func(n int) int {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(n int) int { return r.IntN(n) }
}
