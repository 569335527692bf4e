package engine_test

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/node/engine"
)

// numValidators is the authority set size of every test chain (quorum 3).
const numValidators = 4

// fakeClock is a settable clock shared by the engine, the chain, the
// producer and the gadget of a test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
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

// sentRequest is one engine.Network.Request call.
type sentRequest struct {
	Peer engine.PeerID
	ID   uint64
	Req  engine.Request
}

// fakeNet records everything the engine sends.
type fakeNet struct {
	mu       sync.Mutex
	blocks   []asf.Block
	votes    []checkpoint.SignedVote
	certs    []checkpoint.Certificate
	requests []sentRequest
}

func (n *fakeNet) PublishBlock(b asf.Block) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocks = append(n.blocks, b)
}

func (n *fakeNet) PublishVote(v checkpoint.SignedVote) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.votes = append(n.votes, v)
}

func (n *fakeNet) PublishCertificate(c checkpoint.Certificate) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.certs = append(n.certs, c)
}

func (n *fakeNet) Request(peer engine.PeerID, id uint64, req engine.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.requests = append(n.requests, sentRequest{Peer: peer, ID: id, Req: req})
}

// takeRequests returns the requests sent since the last call.
func (n *fakeNet) takeRequests() []sentRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.requests
	n.requests = nil
	return out
}

func (n *fakeNet) publishedBlocks() []asf.Block {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]asf.Block(nil), n.blocks...)
}

func (n *fakeNet) publishedVotes() []checkpoint.SignedVote {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]checkpoint.SignedVote(nil), n.votes...)
}

// fixture is one test chain: spec, keys and the clock its nodes share.
type fixture struct {
	t        *testing.T
	spec     *chainspec.Spec
	keys     []ed25519.PrivateKey
	genesis  asf.Block
	auth     checkpoint.AuthoritySet
	clock    *fakeClock
	interval uint64
}

// startSlot is where the fake clock starts: every slot used by the tests'
// blocks has started, so no block is "from the future" unless meant to.
const startSlot = 1000

func newFixture(t *testing.T, interval uint64) *fixture {
	t.Helper()
	keys := make([]ed25519.PrivateKey, numValidators)
	auths := make([]chainspec.Authority, numValidators)
	pubs := make([]ed25519.PublicKey, numValidators)
	for i := range numValidators {
		var seed [ed25519.SeedSize]byte
		copy(seed[:], "flare-engine-test-validator")
		binary.BigEndian.PutUint32(seed[28:], uint32(i))
		keys[i] = ed25519.NewKeyFromSeed(seed[:])
		pubs[i] = keys[i].Public().(ed25519.PublicKey)
		auths[i] = chainspec.Authority{Name: fmt.Sprintf("v%d", i), PublicKey: fmt.Sprintf("%x", pubs[i])}
	}
	spec := &chainspec.Spec{
		Name:               "Engine test",
		ID:                 "engine-test",
		NetworkID:          "engine-test",
		GenesisTimestampMs: uint64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()),
		SlotDurationMs:     1000,
		CheckpointInterval: interval,
		SetID:              1,
		Authorities:        auths,
	}
	require.NoError(t, spec.Validate())
	g := asf.GenesisBlock(spec, checkpoint.ZeroHash) // the chains of these tests have no state (opaque bodies)
	return &fixture{
		t:        t,
		spec:     spec,
		keys:     keys,
		genesis:  g,
		auth:     checkpoint.AuthoritySet{Genesis: g.Hash(), SetID: 1, Keys: pubs},
		clock:    &fakeClock{now: asf.SlotStart(spec, startSlot)},
		interval: interval,
	}
}

// genesisCP is checkpoint 0.
func (f *fixture) genesisCP() checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Number: 0, Hash: f.genesis.Hash()}
}

// block builds a valid block on parent in slot (proposer and timestamp
// derived from the slot), signed by the slot's proposer.
func (f *fixture) block(parent asf.Header, slot uint64, extrinsics ...[]byte) asf.Block {
	p := asf.ProposerOf(f.spec, slot)
	b := asf.Block{Header: asf.Header{
		ParentHash:  parent.Hash(),
		Number:      parent.Number + 1,
		Slot:        slot,
		Proposer:    p,
		TimestampMs: uint64(asf.SlotStart(f.spec, slot).UnixMilli()),
		BodyRoot:    asf.BodyRoot(extrinsics),
	}, Extrinsics: extrinsics}
	b.Header.Sign(f.keys[p])
	return b
}

// extend builds n blocks on parent, one per slot from parent's slot + 1.
func (f *fixture) extend(parent asf.Header, n int, salt string) []asf.Block {
	out := make([]asf.Block, 0, n)
	for range n {
		var ext [][]byte
		if salt != "" {
			ext = [][]byte{[]byte(salt)}
		}
		b := f.block(parent, parent.Slot+1, ext...)
		out = append(out, b)
		parent = b.Header
	}
	return out
}

// cp is the checkpoint a block is (its number must be a multiple of the
// interval).
func (f *fixture) cp(b asf.Block) checkpoint.Checkpoint {
	require.Zero(f.t, b.Header.Number%f.interval, "block #%d is not a checkpoint block", b.Header.Number)
	return checkpoint.Checkpoint{Number: b.Header.Number / f.interval, Hash: b.Hash()}
}

// vote signs source -> target as validator i.
func (f *fixture) vote(i int, source, target checkpoint.Checkpoint) checkpoint.SignedVote {
	v := checkpoint.Vote{Genesis: f.auth.Genesis, SetID: f.auth.SetID, Source: source, Target: target}
	sv := checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i)}
	copy(sv.Signature[:], ed25519.Sign(f.keys[i], v.SigningBytes()))
	return sv
}

// cert builds the certificate of source -> target signed by validators.
func (f *fixture) cert(source, target checkpoint.Checkpoint, validators ...int) checkpoint.Certificate {
	votes := make([]checkpoint.SignedVote, len(validators))
	for k, i := range validators {
		votes[k] = f.vote(i, source, target)
	}
	c, err := checkpoint.NewCertificate(votes)
	require.NoError(f.t, err)
	return c
}

// nodeOpts configure one test node.
type nodeOpts struct {
	key        int  // validator index; -1: full node
	fresh      bool // fresh signer record
	alone      bool
	noFinality bool
	// syncInterval and requestTimeout: 0 means the engine's defaults.
	syncInterval, requestTimeout time.Duration
	onSignerInit                 func()
	// startCheck keeps a ready validator's start check pending (by
	// default newNode passes it with a quiet peer, see passStartCheck).
	startCheck bool
	// signedBefore gives the record a target watermark of 1 (it has a
	// past a vote could contradict).
	signedBefore bool
	mutations    engine.Mutations
	doppelganger bool // Config.DoppelgangerListen
}

// testNode is an engine on real Pebble databases in a temp dir.
type testNode struct {
	f     *fixture
	eng   *engine.Engine
	chain *asf.Chain
	cpdb  *checkpointdb.CheckpointDB
	net   *fakeNet
	ctx   context.Context
}

// certSource adapts the checkpoint database for serving peers (as the
// simulator and the node do).
type certSource struct{ db *checkpointdb.CheckpointDB }

func (c certSource) Certificates(ctx context.Context, from, to uint64, limit int) ([]checkpoint.Certificate, error) {
	return c.db.Certificates(ctx, from, to, limit)
}

func (c certSource) OldestRetained() uint64 { return c.db.OldestRetained() }

// newNode opens the databases, builds and restores the engine, the way
// integration/sim does.
func (f *fixture) newNode(o nodeOpts) *testNode {
	t := f.t
	t.Helper()
	dir := t.TempDir()
	log := zap.NewNop()
	chain, err := asf.OpenChain(filepath.Join(dir, "chain"), f.spec, asf.ChainOptions{Clock: f.clock, Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { _ = chain.Close() })
	n := &testNode{f: f, chain: chain, net: &fakeNet{}, ctx: context.Background()}
	cfg := engine.Config{
		Spec:               f.spec,
		Genesis:            f.genesis.Hash(),
		Chain:              chain,
		Clock:              f.clock,
		Network:            n.net,
		Logger:             log,
		Alone:              o.alone,
		SyncInterval:       o.syncInterval,
		RequestTimeout:     o.requestTimeout,
		Mutations:          o.mutations,
		DoppelgangerListen: o.doppelganger,
	}
	if !o.noFinality {
		cpdb, err := checkpointdb.Open(filepath.Join(dir, "checkpoints"), checkpointdb.Options{Genesis: f.genesis.Hash(), Logger: log})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cpdb.Close() })
		n.cpdb = cpdb
		cfg.Finality = &finality.Config{
			Authorities: f.auth,
			Persistence: finality.CheckpointPersistenceConfig{
				Enabled:              true,
				RetentionCheckpoints: 16,
				FlushInterval:        time.Hour,
				PruneInterval:        time.Hour,
			},
		}
		cfg.Store = cpdb
		cfg.Certificates = certSource{cpdb}
	}
	if o.key >= 0 {
		idx := checkpoint.ValidatorIndex(o.key)
		cfg.Producer = asf.NewProducer(chain, f.spec, f.keys[o.key], idx, f.clock, log)
		if n.cpdb != nil {
			cfg.Signer = finality.NewSafeSigner(n.cpdb, finality.NewKeySigner(f.keys[o.key]), idx, f.genesis.Hash())
			if o.signedBefore {
				require.NoError(t, cfg.Signer.Initialise(n.ctx, 0, 1))
			}
		}
		if o.fresh {
			cfg.SignerInit = engine.SignerFresh
		}
		cfg.OnSignerInitialised = o.onSignerInit
	}
	eng, err := engine.New(cfg)
	require.NoError(t, err)
	require.NoError(t, eng.Restore(n.ctx))
	n.eng = eng
	if o.key >= 0 && !o.fresh && !o.alone && !o.noFinality && !o.startCheck {
		n.passStartCheck()
	}
	return n
}

// passStartCheck lets a ready validator hear the network once: a quiet
// peer answers its status with the node's own and has no vote of its key;
// then it disconnects.
func (n *testNode) passStartCheck() {
	t := n.f.t
	t.Helper()
	const quiet = engine.PeerID("quiet-peer")
	n.eng.OnPeerConnected(n.ctx, quiet)
	for range 2 {
		for _, r := range n.net.takeRequests() {
			resp := engine.Response{Unavailable: true}
			if r.Req.Kind == engine.ReqStatus {
				resp = engine.Response{Status: n.eng.ServeStatus()}
			}
			require.NoError(t, n.eng.OnResponse(n.ctx, r.Peer, r.ID, resp))
		}
	}
	n.eng.OnPeerDisconnected(quiet)
	n.net.takeRequests()
	require.NoError(t, n.eng.Tick(n.ctx))
	require.True(t, n.eng.CaughtUp())
}

// fullNode is a finality-enabled node without a key.
func (f *fixture) fullNode() *testNode { return f.newNode(nodeOpts{key: -1}) }

// importAll imports blocks straight into the node's chain (bypassing the
// engine: used to fill peers that only serve).
func (n *testNode) importAll(blocks []asf.Block) {
	n.f.t.Helper()
	for _, b := range blocks {
		_, err := n.chain.Import(n.ctx, b)
		require.NoError(n.f.t, err)
	}
}

// gossip hands blocks to the engine as gossip and requires each accepted.
func (n *testNode) gossip(from engine.PeerID, blocks []asf.Block) {
	n.f.t.Helper()
	for _, b := range blocks {
		v, err := n.eng.OnBlock(n.ctx, from, b)
		require.NoError(n.f.t, err)
		require.Equal(n.f.t, engine.Accept, v, "block #%d", b.Header.Number)
	}
}

// serve answers req from the node's engine (as the simulator does).
func (n *testNode) serve(req engine.Request) engine.Response { return n.eng.Serve(n.ctx, req) }

// onlyRequest requires exactly one request sent since the last take and
// returns it.
func (n *testNode) onlyRequest() sentRequest {
	n.f.t.Helper()
	reqs := n.net.takeRequests()
	require.Len(n.f.t, reqs, 1, "requests: %+v", reqs)
	return reqs[0]
}

// answer delivers peer's answer to r.
func (n *testNode) answer(peer *testNode, r sentRequest) {
	n.f.t.Helper()
	require.NoError(n.f.t, n.eng.OnResponse(n.ctx, r.Peer, r.ID, peer.serve(r.Req)))
}

// tick advances the clock by d and ticks the engine.
func (n *testNode) tick(d time.Duration) {
	n.f.t.Helper()
	n.f.clock.Advance(d)
	require.NoError(n.f.t, n.eng.Tick(n.ctx))
}

// finalizedNode returns a full node holding blocks 1..n (interval 1) with
// checkpoints 1..n-1 justified by certificates of validators 0..2:
// justified n-1, finalized n-2.
func (f *fixture) finalizedNode(n int) (*testNode, []asf.Block) {
	f.t.Helper()
	require.Equal(f.t, uint64(1), f.interval)
	node := f.fullNode()
	blocks := f.extend(f.genesis.Header, n, "")
	node.gossip("", blocks)
	src := f.genesisCP()
	for _, b := range blocks[:n-1] {
		tgt := f.cp(b)
		v, err := node.eng.OnCertificate(node.ctx, "", f.cert(src, tgt, 0, 1, 2))
		require.NoError(f.t, err)
		require.Equal(f.t, engine.Accept, v)
		src = tgt
	}
	require.Equal(f.t, f.cp(blocks[n-2]), node.eng.Gadget().LatestJustified())
	require.Equal(f.t, f.cp(blocks[n-3]), node.eng.Gadget().LatestFinalized())
	return node, blocks
}

// mustCanonical returns the hash of the node's best-chain block number.
func (n *testNode) mustCanonical(number uint64) checkpoint.Hash {
	n.f.t.Helper()
	h, ok := n.chain.CanonicalHash(number)
	require.True(n.f.t, ok, "no canonical block #%d", number)
	return h
}

// cpdbSignerRecord reads the node's persisted signer record.
func (n *testNode) cpdbSignerRecord() (checkpoint.SignerRecord, error) {
	return finality.NewSafeSigner(n.cpdb, finality.NewKeySigner(n.f.keys[0]), 0, n.f.genesis.Hash()).Record(n.ctx)
}
