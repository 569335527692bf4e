package p2p

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/wire/flarepb"
)

var testGenesis = checkpoint.HashOf([]byte("flare p2p test genesis"))

// testKeys are the validator keys of the test authority set.
var testKeys = func() []ed25519.PrivateKey {
	keys := make([]ed25519.PrivateKey, 4)
	for i := range keys {
		seed := checkpoint.HashOf([]byte(fmt.Sprintf("validator %d", i)))
		keys[i] = ed25519.NewKeyFromSeed(seed[:])
	}
	return keys
}()

var testSet = func() checkpoint.AuthoritySet {
	s := checkpoint.AuthoritySet{Genesis: testGenesis, SetID: 1}
	for _, k := range testKeys {
		s.Keys = append(s.Keys, k.Public().(ed25519.PublicKey))
	}
	return s
}()

// signedVote returns validator's signed vote for the link (target-1 -> target).
func signedVote(genesis checkpoint.Hash, validator int, target uint64) checkpoint.SignedVote {
	v := checkpoint.Vote{
		Genesis: genesis,
		SetID:   1,
		Source:  checkpoint.Checkpoint{Number: target - 1, Hash: checkpoint.HashOf([]byte(fmt.Sprint("cp", target-1)))},
		Target:  checkpoint.Checkpoint{Number: target, Hash: checkpoint.HashOf([]byte(fmt.Sprint("cp", target)))},
	}
	sv := checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(validator)}
	copy(sv.Signature[:], ed25519.Sign(testKeys[validator], v.SigningBytes()))
	return sv
}

// certificate returns a quorum certificate (validators 0..2) for target.
func certificate(target uint64) checkpoint.Certificate {
	var votes []checkpoint.SignedVote
	for i := range 3 {
		votes = append(votes, signedVote(testGenesis, i, target))
	}
	c, err := checkpoint.NewCertificate(votes)
	if err != nil {
		panic(err)
	}
	return c
}

// headerSigningBytes is the block header layout of docs/wire.md:
// "flare/block/v1" | parent(32) | number u64 BE | slot u64 BE |
// proposer u32 BE | timestamp_ms u64 BE | body_root(32).
func headerSigningBytes(h *flarepb.BlockHeader) []byte {
	b := []byte("flare/block/v1")
	b = append(b, h.GetParentHash()...)
	b = binary.BigEndian.AppendUint64(b, h.GetNumber())
	b = binary.BigEndian.AppendUint64(b, h.GetSlot())
	b = binary.BigEndian.AppendUint32(b, h.GetProposer())
	b = binary.BigEndian.AppendUint64(b, h.GetTimestampMs())
	return append(b, h.GetBodyRoot()...)
}

// testBlock returns a signed block number num whose parent is parent.
func testBlock(num uint64, parent checkpoint.Hash, extrinsics ...[]byte) *flarepb.Block {
	body := checkpoint.HashOf(extrinsics...)
	h := &flarepb.BlockHeader{
		ParentHash:  parent[:],
		Number:      num,
		Slot:        num,
		Proposer:    uint32(num % uint64(len(testKeys))),
		TimestampMs: 1_700_000_000_000 + num*6000,
		BodyRoot:    body[:],
	}
	h.Signature = ed25519.Sign(testKeys[h.Proposer], headerSigningBytes(h))
	return &flarepb.Block{Header: h, Extrinsics: extrinsics}
}

// testChain returns blocks 1..n built on testGenesis.
func testChain(n int) []*flarepb.Block {
	out := make([]*flarepb.Block, 0, n)
	parent := testGenesis
	for i := 1; i <= n; i++ {
		b := testBlock(uint64(i), parent)
		out = append(out, b)
		parent = checkpoint.HashOf(headerSigningBytes(b.Header))
	}
	return out
}

// testHandler is a GossipHandler and SyncHandler that verifies signatures
// against testSet (votes with target ignoreTarget are ignored) and serves a
// fixed chain.
type testHandler struct {
	ignoreTarget uint64

	mu        sync.Mutex
	votes     map[checkpoint.SignedVote]int // every vote handed to the handler
	accepted  map[checkpoint.SignedVote]int // votes accepted
	certs     map[uint64]int                // accepted certificates by target
	blocks    map[uint64]int                // accepted blocks by number
	lastCount uint32                        // count of the last range request
	txs       map[tx.Hash]int               // transactions handed to the handler
	txOK      map[tx.Hash]int               // transactions accepted
	// txIgnoreAmount: transactions of this amount are ignored (0: none).
	txIgnoreAmount uint64
	// txHook, when set, runs first in HandleTransaction (benchmarks).
	txHook func()
	// onVote, when set, sees every accepted vote (benchmarks).
	onVote func(checkpoint.SignedVote)

	// sync data
	chain       []*flarepb.Block // blocks 1..len
	prunedBelow uint64           // blocks and certificates below are unavailable
	certStore   []checkpoint.Certificate
	status      *flarepb.Status
	proof       *checkpoint.FinalityProof
	voteStore   []checkpoint.SignedVote // served by VotesByValidator, by key
	lastKey     ed25519.PublicKey       // key of the last votes request
	lastHash    checkpoint.Hash         // hash of the last blocks-by-hash request
	// votesHook / byHashHook, when set, replace the answer of
	// VotesByValidator / BlocksByHash.
	votesHook  func() []checkpoint.SignedVote
	byHashHook func() []*flarepb.Block
	// syncHook, when set, runs first in every range request and may
	// replace the answer.
	syncHook func(ctx context.Context, start uint64, count uint32) (blocks []*flarepb.Block, certs []checkpoint.Certificate, override bool)
}

func newTestHandler() *testHandler {
	return &testHandler{
		votes:    make(map[checkpoint.SignedVote]int),
		accepted: make(map[checkpoint.SignedVote]int),
		certs:    make(map[uint64]int),
		blocks:   make(map[uint64]int),
		txs:      make(map[tx.Hash]int),
		txOK:     make(map[tx.Hash]int),
	}
}

// testSigs is the signature cache of the test handlers (as the node's pool
// has one).
var testSigs = tx.NewSigCache(1 << 16)

// HandleTransaction verifies the signature (rejects a bad one and a zero
// fee, like the pool) and accepts, except that txIgnoreAmount is ignored.
func (h *testHandler) HandleTransaction(_ context.Context, _ peer.ID, t *tx.Tx) Verdict {
	h.mu.Lock()
	hook := h.txHook
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	hash := t.Hash()
	err := testSigs.Verify(t, hash)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.txs[hash]++
	switch {
	case err != nil || t.Fee == 0:
		return Reject
	case h.txIgnoreAmount != 0 && t.Amount == h.txIgnoreAmount:
		return Ignore
	}
	h.txOK[hash]++
	return Accept
}

func (h *testHandler) sawTx(hash tx.Hash) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.txs[hash]
}

func (h *testHandler) acceptedTx(hash tx.Hash) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.txOK[hash] > 0
}

func (h *testHandler) acceptedTxCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.txOK)
}

// txKey is the sender key of the test transactions.
var txKey = func() ed25519.PrivateKey {
	seed := checkpoint.HashOf([]byte("tx sender"))
	return ed25519.NewKeyFromSeed(seed[:])
}()

// signedTx returns a transfer of testGenesis (or genesis) signed by txKey.
func signedTx(genesis checkpoint.Hash, nonce, amount, fee uint64) *tx.Tx {
	t := &tx.Tx{Genesis: genesis, Amount: amount, Fee: fee, Nonce: nonce}
	t.From = tx.AddressOf(txKey.Public().(ed25519.PublicKey))
	t.To = tx.AddressOf(testKeys[0].Public().(ed25519.PublicKey))
	t.Sign(txKey)
	return t
}

func (h *testHandler) HandleVote(_ context.Context, _ peer.ID, v checkpoint.SignedVote) Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.votes[v]++
	if v.Target.Number == h.ignoreTarget && h.ignoreTarget != 0 {
		return Ignore
	}
	if err := testSet.VerifyVote(v); err != nil {
		return Reject
	}
	h.accepted[v]++
	if h.onVote != nil {
		h.onVote(v)
	}
	return Accept
}

func (h *testHandler) HandleCertificate(_ context.Context, _ peer.ID, c checkpoint.Certificate) Verdict {
	if err := testSet.VerifyCertificate(c); err != nil {
		return Reject
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.certs[c.Target.Number]++
	return Accept
}

func (h *testHandler) HandleBlock(_ context.Context, _ peer.ID, b *flarepb.Block) Verdict {
	hd := b.GetHeader()
	if int(hd.GetProposer()) >= len(testSet.Keys) || !ed25519.Verify(testSet.Keys[hd.GetProposer()], headerSigningBytes(hd), hd.GetSignature()) {
		return Reject
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.blocks[hd.GetNumber()]++
	return Accept
}

func (h *testHandler) sawVote(v checkpoint.SignedVote) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.votes[v]
}

func (h *testHandler) acceptedVote(v checkpoint.SignedVote) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accepted[v] > 0
}

func (h *testHandler) acceptedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.accepted)
}

func (h *testHandler) hasCert(target uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.certs[target] > 0
}

func (h *testHandler) hasBlock(num uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.blocks[num] > 0
}

func (h *testHandler) Status(context.Context) *flarepb.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status
}

// configure changes the handler under its lock.
func (h *testHandler) configure(f func(h *testHandler)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func (h *testHandler) BlocksByRange(ctx context.Context, start uint64, count uint32) ([]*flarepb.Block, bool) {
	h.mu.Lock()
	h.lastCount = count
	hook, chain, pruned := h.syncHook, h.chain, h.prunedBelow
	h.mu.Unlock()
	if hook != nil {
		if blocks, _, ok := hook(ctx, start, count); ok {
			return blocks, false
		}
	}
	if start < pruned || start == 0 || start > uint64(len(chain)) {
		return nil, true
	}
	end := min(start+uint64(count), uint64(len(chain))+1)
	return chain[start-1 : end-1], end < start+uint64(count)
}

func (h *testHandler) FinalityProof(ctx context.Context) (*checkpoint.FinalityProof, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proof, h.proof != nil
}

func (h *testHandler) CertificatesByRange(ctx context.Context, start uint64, count uint32) ([]checkpoint.Certificate, bool) {
	h.mu.Lock()
	h.lastCount = count
	hook, store, pruned := h.syncHook, h.certStore, h.prunedBelow
	h.mu.Unlock()
	if hook != nil {
		if _, certs, ok := hook(ctx, start, count); ok {
			return certs, false
		}
	}
	if start < pruned {
		return nil, true
	}
	var out []checkpoint.Certificate
	for _, c := range store {
		if c.Target.Number >= start && c.Target.Number < start+uint64(count) {
			out = append(out, c)
		}
	}
	return out, false
}

// VotesByValidator serves the votes of voteStore signed by the testSet
// validator with key pub, target >= from, in store order.
func (h *testHandler) VotesByValidator(ctx context.Context, pub ed25519.PublicKey, from uint64, count uint32) ([]checkpoint.SignedVote, bool) {
	h.mu.Lock()
	h.lastCount, h.lastKey = count, pub
	hook, store := h.votesHook, h.voteStore
	h.mu.Unlock()
	if hook != nil {
		return hook(), false
	}
	var out []checkpoint.SignedVote
	for _, v := range store {
		if int(v.Validator) < len(testSet.Keys) && testSet.Keys[v.Validator].Equal(pub) && v.Target.Number >= from && uint32(len(out)) < count {
			out = append(out, v)
		}
	}
	return out, len(out) == 0
}

// BlocksByHash serves the block of chain with hash h and its ancestors.
func (h *testHandler) BlocksByHash(ctx context.Context, hash checkpoint.Hash, count uint32) ([]*flarepb.Block, bool) {
	h.mu.Lock()
	h.lastCount, h.lastHash = count, hash
	hook, chain := h.byHashHook, h.chain
	h.mu.Unlock()
	if hook != nil {
		return hook(), false
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if checkpoint.HashOf(headerSigningBytes(chain[i].GetHeader())) == hash {
			var out []*flarepb.Block
			for j := i; j >= 0 && uint32(len(out)) < count; j-- {
				out = append(out, chain[j])
			}
			return out, false
		}
	}
	return nil, true
}

func (h *testHandler) lastRequestCount() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastCount
}

// testNode is a started Network with its handler.
type testNode struct {
	*Network
	h   *testHandler
	obs *observer
}

// newTestNetwork creates (but does not start) a Network on 127.0.0.1 that
// may dial the loopback addresses it discovers.
func newTestNetwork(t testing.TB, mod func(*Config)) *Network {
	t.Helper()
	cfg := Config{
		ListenAddrs:    []string{"/ip4/127.0.0.1/tcp/0"},
		Genesis:        testGenesis,
		AllowPrivateIP: true,
		Logger:         zap.NewNop(),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func startNode(t testing.TB, n *Network) *testNode {
	t.Helper()
	h := newTestHandler()
	o := observe(n)
	require.NoError(t, n.Start(context.Background(), h, h))
	return &testNode{Network: n, h: h, obs: o}
}

func addrStrings(n *Network) []string {
	var out []string
	for _, a := range n.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// newTopology starts count nodes where node i has node i-1 as bootnode
// (star: node 0 is every node's bootnode), and waits until each is
// connected to its bootnode (discovery connects them further).
func newTopology(t testing.TB, count int, star bool, mod func(*Config)) []*testNode {
	t.Helper()
	nodes := make([]*testNode, 0, count)
	for i := range count {
		var boot []string
		if i > 0 {
			b := nodes[i-1]
			if star {
				b = nodes[0]
			}
			boot = addrStrings(b.Network)
		}
		n := newTestNetwork(t, func(c *Config) {
			c.Bootnodes = boot
			if mod != nil {
				mod(c)
			}
		})
		nodes = append(nodes, startNode(t, n))
	}
	require.Eventually(t, func() bool {
		for i := 1; i < count; i++ {
			b := nodes[i-1]
			if star {
				b = nodes[0]
			}
			if !connected(nodes[i].Network, b.ID()) {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "topology did not connect")
	return nodes
}

func connected(n *Network, p peer.ID) bool {
	for _, q := range n.Peers() {
		if q == p {
			return true
		}
	}
	return false
}

// warmUp publishes fresh probes on every topic from every node until all
// other nodes accepted one, so that the gossipsub meshes are formed in every
// direction. (A message that reaches a node before its mesh is formed is not
// forwarded: gossipsub forwards to mesh peers only.)
func warmUp(t testing.TB, nodes []*testNode) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	probe := uint64(1_000_000)
	for origin := range nodes {
		for done := false; !done; probe++ {
			require.True(t, time.Now().Before(deadline), "gossip meshes did not form")
			v := signedVote(testGenesis, origin%len(testKeys), probe)
			c := certificate(probe)
			b := testBlock(probe, checkpoint.HashOf([]byte("probe parent")))
			require.NoError(t, nodes[origin].PublishVote(ctx, v))
			require.NoError(t, nodes[origin].PublishCertificate(ctx, c))
			require.NoError(t, nodes[origin].PublishBlock(ctx, b))
			for wait := time.Now().Add(time.Second); !done && time.Now().Before(wait); {
				time.Sleep(10 * time.Millisecond)
				done = true
				for i, n := range nodes {
					if i != origin {
						done = done && n.h.acceptedVote(v) && n.h.hasCert(probe) && n.h.hasBlock(probe)
					}
				}
			}
		}
	}
}

// rawPeer is a bare libp2p host with its own gossipsub that publishes
// arbitrary bytes (the adversary of the bad-input tests).
type rawPeer struct {
	h      host.Host
	ps     *pubsub.PubSub
	topics map[string]*pubsub.Topic
	subs   []*pubsub.Subscription
	target *Network
}

func newRawPeer(t testing.TB, target *Network, opts ...pubsub.Option) *rawPeer {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = h.Close()
	})
	ps, err := pubsub.NewGossipSub(ctx, h, append([]pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithMaxMessageSize(8 << 20),
	}, opts...)...)
	require.NoError(t, err)
	require.NoError(t, h.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.host.Addrs()}))
	return &rawPeer{h: h, ps: ps, topics: make(map[string]*pubsub.Topic), target: target}
}

// publish sends data on topic once the target is known to subscribe to it.
func (r *rawPeer) publish(t testing.TB, topic string, data []byte) {
	t.Helper()
	tp, ok := r.topics[topic]
	if !ok {
		var err error
		tp, err = r.ps.Join(topic)
		require.NoError(t, err)
		r.topics[topic] = tp
	}
	require.Eventually(t, func() bool {
		for _, p := range tp.ListPeers() {
			if p == r.target.ID() {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "target never subscribed")
	require.NoError(t, tp.Publish(context.Background(), data))
}

// observation is one validation outcome seen by a network's validator.
type observation struct {
	kind   topicKind
	from   peer.ID
	data   string
	res    pubsub.ValidationResult
	reason rejectReason
}

// observer records validation outcomes of a network (set before Start).
type observer struct {
	mu  sync.Mutex
	obs []observation
}

func observe(n *Network) *observer {
	o := &observer{}
	n.observe = func(kind topicKind, from peer.ID, data []byte, res pubsub.ValidationResult, reason rejectReason) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.obs = append(o.obs, observation{kind, from, string(data), res, reason})
	}
	return o
}

// find returns the outcomes of data.
func (o *observer) find(data []byte) []observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []observation
	for _, x := range o.obs {
		if x.data == string(data) {
			out = append(out, x)
		}
	}
	return out
}

// scoreGeneration returns how many score inspections ran.
func (n *Network) scoreGeneration() uint64 {
	n.scoreMu.RLock()
	defer n.scoreMu.RUnlock()
	return n.scoreGen
}
