package engine_test

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/engine"
)

// --- Gossip import ---------------------------------------------------------------

func TestOnBlockVerdicts(t *testing.T) {
	type tc struct {
		name string
		// setup runs on the node before the block is delivered; block
		// builds the delivered block.
		setup func(f *fixture, n *testNode, b1 asf.Block)
		block func(f *fixture, b1 asf.Block) asf.Block
		from  engine.PeerID
		want  engine.Verdict
		// wantBest is the best block number after the delivery.
		wantBest  uint64
		wantStats engine.Stats
		// wantStatusRequestTo: the delivery starts a catch-up with this
		// peer ("" : no request).
		wantStatusRequestTo engine.PeerID
	}
	importB1 := func(f *fixture, n *testNode, b1 asf.Block) { n.gossip("p", []asf.Block{b1}) }
	resign := func(f *fixture, b asf.Block, key int) asf.Block {
		b.Header.Sign(f.keys[key])
		return b
	}
	cases := []tc{
		{
			name:      "valid next block is accepted",
			block:     func(f *fixture, b1 asf.Block) asf.Block { return b1 },
			from:      "p",
			want:      engine.Accept,
			wantBest:  1,
			wantStats: engine.Stats{BlocksImported: 1},
		},
		{
			name:      "duplicate is ignored",
			setup:     importB1,
			block:     func(f *fixture, b1 asf.Block) asf.Block { return b1 },
			from:      "p",
			want:      engine.Ignore,
			wantBest:  1,
			wantStats: engine.Stats{BlocksImported: 1},
		},
		{
			name: "author that does not own the slot is rejected",
			block: func(f *fixture, b1 asf.Block) asf.Block {
				b1.Header.Proposer = 2 // slot 1 belongs to authority 1
				return resign(f, b1, 2)
			},
			from:      "p",
			want:      engine.Reject,
			wantStats: engine.Stats{BlocksRejected: 1},
		},
		{
			name: "unknown author is rejected",
			block: func(f *fixture, b1 asf.Block) asf.Block {
				b1.Header.Proposer = numValidators + 3
				return resign(f, b1, 0)
			},
			from:      "p",
			want:      engine.Reject,
			wantStats: engine.Stats{BlocksRejected: 1},
		},
		{
			name:      "signature by another key is rejected",
			block:     func(f *fixture, b1 asf.Block) asf.Block { return resign(f, b1, 2) },
			from:      "p",
			want:      engine.Reject,
			wantStats: engine.Stats{BlocksRejected: 1},
		},
		{
			name: "corrupted signature is rejected",
			block: func(f *fixture, b1 asf.Block) asf.Block {
				b1.Header.Signature[7] ^= 0x40
				return b1
			},
			from:      "p",
			want:      engine.Reject,
			wantStats: engine.Stats{BlocksRejected: 1},
		},
		{
			name: "body that does not match the signed root is rejected",
			block: func(f *fixture, b1 asf.Block) asf.Block {
				b1.Extrinsics = [][]byte{[]byte("smuggled")}
				return b1
			},
			from:      "p",
			want:      engine.Reject,
			wantStats: engine.Stats{BlocksRejected: 1},
		},
		{
			name: "wrong number on a known parent is rejected",
			block: func(f *fixture, b1 asf.Block) asf.Block {
				b1.Header.Number = 2
				return resign(f, b1, 1)
			},
			from:      "p",
			want:      engine.Reject,
			wantStats: engine.Stats{BlocksRejected: 1},
		},
		{
			name: "block from a future slot is ignored, not penalised",
			block: func(f *fixture, b1 asf.Block) asf.Block {
				return f.block(f.genesis.Header, startSlot+10)
			},
			from:      "p",
			want:      engine.Ignore,
			wantStats: engine.Stats{BlocksIgnored: 1},
		},
		{
			// Kept as a side branch (its children import at once), never
			// relayed.
			name:  "equivocating second block of the proposer for the slot is imported but not relayed",
			setup: importB1,
			block: func(f *fixture, b1 asf.Block) asf.Block {
				return f.block(f.genesis.Header, 1, []byte("other body"))
			},
			from:      "p",
			want:      engine.Ignore,
			wantBest:  1,
			wantStats: engine.Stats{BlocksImported: 2, BlocksEquivocating: 1},
		},
		{
			name: "unknown parent is ignored and starts a catch-up with the sender",
			block: func(f *fixture, b1 asf.Block) asf.Block {
				return f.block(b1.Header, 2) // b1 itself was never delivered
			},
			from:                "sender",
			want:                engine.Ignore,
			wantStats:           engine.Stats{BlocksIgnored: 1},
			wantStatusRequestTo: "sender",
		},
		{
			name: "unknown parent from no peer starts no catch-up",
			block: func(f *fixture, b1 asf.Block) asf.Block {
				return f.block(b1.Header, 2)
			},
			from:      "",
			want:      engine.Ignore,
			wantStats: engine.Stats{BlocksIgnored: 1},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 2)
			n := f.fullNode()
			b1 := f.block(f.genesis.Header, 1)
			if c.setup != nil {
				c.setup(f, n, b1)
			}
			n.net.takeRequests()
			b := c.block(f, b1)
			got, err := n.eng.OnBlock(n.ctx, c.from, b)
			require.NoError(t, err)
			require.Equal(t, c.want, got)
			require.Equal(t, c.wantBest, n.chain.Best().Number)
			require.Equal(t, c.wantStats, n.eng.Stats())
			if c.want != engine.Accept && c.wantBest == 0 {
				require.False(t, n.chain.HasBlock(b.Hash()), "a refused block must not be stored")
			}
			reqs := n.net.takeRequests()
			if c.wantStatusRequestTo == "" {
				require.Empty(t, reqs)
			} else {
				// The missing parent is asked for by hash from the sender,
				// and its status starts a catch-up if it is ahead.
				require.Len(t, reqs, 2)
				require.Equal(t, c.wantStatusRequestTo, reqs[0].Peer)
				require.Equal(t, engine.Request{Kind: engine.ReqBlocksByHash, Hash: b.Header.ParentHash, Count: engine.BlocksByHashPerRequest}, reqs[0].Req)
				require.Equal(t, c.wantStatusRequestTo, reqs[1].Peer)
				require.Equal(t, engine.Request{Kind: engine.ReqStatus}, reqs[1].Req)
				require.Contains(t, n.eng.Peers(), c.wantStatusRequestTo)
			}
			// Gossip never publishes: relaying is the gossip layer's job.
			require.Empty(t, n.net.publishedBlocks())
		})
	}
}

// --- Production -------------------------------------------------------------------

func TestOnSlotAuthorsOnlyInOwnSlots(t *testing.T) {
	f := newFixture(t, 2)
	n := f.newNode(nodeOpts{key: 1})
	genesisHash := f.genesis.Hash()
	steps := []struct {
		slot       uint64
		wantNumber uint64 // 0: no block
	}{
		{slot: 0},
		{slot: 1, wantNumber: 1},
		{slot: 2},
		{slot: 3},
		{slot: 4},
		{slot: 5, wantNumber: 2},
		{slot: 5}, // same slot again: the best block is already in it
		{slot: 8},
		{slot: 9, wantNumber: 3},
		{slot: startSlot + 1}, // own slot (1001 % 4 == 1) not started yet
	}
	parent := genesisHash
	var authored []asf.Block
	for _, s := range steps {
		b, err := n.eng.OnSlot(n.ctx, s.slot)
		require.NoError(t, err, "slot %d", s.slot)
		if s.wantNumber == 0 {
			require.Nil(t, b, "slot %d belongs to authority %d", s.slot, asf.ProposerOf(f.spec, s.slot))
			continue
		}
		require.NotNil(t, b, "slot %d", s.slot)
		require.Equal(t, s.wantNumber, b.Header.Number)
		require.Equal(t, s.slot, b.Header.Slot)
		require.Equal(t, checkpoint.ValidatorIndex(1), b.Header.Proposer)
		require.Equal(t, parent, b.Header.ParentHash)
		require.True(t, b.Header.VerifySignature(f.auth.Keys[1]))
		require.Equal(t, b.Hash(), n.chain.BestHash())
		parent = b.Hash()
		authored = append(authored, *b)
	}
	require.Equal(t, authored, n.net.publishedBlocks(), "every authored block is published, nothing else")
	require.Equal(t, uint64(3), n.eng.Stats().BlocksAuthored)

	// The block authored by the node does not come back as new gossip.
	v, err := n.eng.OnBlock(n.ctx, "p", authored[0])
	require.NoError(t, err)
	require.Equal(t, engine.Ignore, v)
}

func TestOnSlotWithoutProducerAuthorsNothing(t *testing.T) {
	f := newFixture(t, 2)
	n := f.fullNode()
	for slot := range uint64(numValidators) {
		b, err := n.eng.OnSlot(n.ctx, slot+1)
		require.NoError(t, err)
		require.Nil(t, b)
	}
	require.Zero(t, n.chain.Best().Number)
	require.Empty(t, n.net.publishedBlocks())
}

func TestReadyValidatorVotesOnItsCheckpointBlock(t *testing.T) {
	f := newFixture(t, 1)
	n := f.newNode(nodeOpts{key: 1})
	require.False(t, n.eng.SignerPending())
	b, err := n.eng.OnSlot(n.ctx, 1)
	require.NoError(t, err)
	require.NotNil(t, b)
	votes := n.net.publishedVotes()
	require.Len(t, votes, 1)
	require.Equal(t, checkpoint.ValidatorIndex(1), votes[0].Validator)
	require.Equal(t, f.genesisCP(), votes[0].Source)
	require.Equal(t, f.cp(*b), votes[0].Target)
	require.NoError(t, votes[0].Verify(f.auth.Keys[1]))
}

// --- Sync -------------------------------------------------------------------------

func TestSyncCatchesUpWithPeerAhead(t *testing.T) {
	f := newFixture(t, 2)
	peer := f.fullNode()
	blocks := f.extend(f.genesis.Header, 10, "")
	peer.importAll(blocks)
	// A validator (authority 0, slots 0 mod 4): it must neither author nor
	// vote while the catch-up runs.
	n := f.newNode(nodeOpts{key: 0})

	n.eng.OnPeerConnected(n.ctx, "B")
	status := n.onlyRequest()
	require.Equal(t, sentRequest{Peer: "B", ID: status.ID, Req: engine.Request{Kind: engine.ReqStatus}}, status)
	n.eng.OnPeerConnected(n.ctx, "B") // already being polled
	require.Empty(t, n.net.takeRequests())

	n.answer(peer, status)
	require.Equal(t, uint64(10), n.eng.Peers()["B"].Best.Number)
	first := n.onlyRequest()
	require.Equal(t, engine.PeerID("B"), first.Peer)
	require.Equal(t, engine.Request{Kind: engine.ReqBlocks, Start: 1, Count: 10}, first.Req)
	require.True(t, n.eng.Syncing(), "behind: its best block is old and the only peer shows more")

	// A partial answer: imported, and the rest is asked for.
	require.NoError(t, n.eng.OnResponse(n.ctx, "B", first.ID, engine.Response{Blocks: blocks[:4]}))
	require.Equal(t, uint64(4), n.chain.Best().Number)
	second := n.onlyRequest()
	require.Equal(t, engine.Request{Kind: engine.ReqBlocks, Start: 5, Count: 6}, second.Req)
	require.True(t, n.eng.Syncing())
	b, err := n.eng.OnSlot(n.ctx, 12)
	require.NoError(t, err)
	require.Nil(t, b, "no block is authored while catching up")
	require.Empty(t, n.net.publishedVotes(), "no vote is cast while catching up")

	// The rest: the round completes and the peer is asked again at once.
	n.answer(peer, second)
	require.Equal(t, blocks[9].Hash(), n.chain.BestHash())
	require.False(t, n.eng.Syncing())
	again := n.onlyRequest()
	require.Equal(t, engine.Request{Kind: engine.ReqStatus}, again.Req)
	st := n.eng.Stats()
	require.Equal(t, uint64(1), st.SyncRounds)
	require.Equal(t, uint64(10), st.SyncedBlocks)
	// Caught up: the head checkpoint (block 10 = checkpoint 5) is voted.
	votes := n.net.publishedVotes()
	require.Len(t, votes, 1)
	require.Equal(t, f.cp(blocks[9]), votes[0].Target)

	n.answer(peer, again)
	require.True(t, n.eng.CaughtUp())
	require.Empty(t, n.net.takeRequests())
	b, err = n.eng.OnSlot(n.ctx, 12)
	require.NoError(t, err)
	require.NotNil(t, b)
	require.Equal(t, uint64(11), b.Header.Number)
}

func TestSyncFailedRequestEndsRoundAndPollsOtherPeers(t *testing.T) {
	const timeout = 4 * time.Second
	cases := []struct {
		name       string
		fail       func(n *testNode, blocksReq sentRequest)
		wantFailed uint64
	}{
		{
			name: "no answer within RequestTimeout",
			fail: func(n *testNode, r sentRequest) {
				n.tick(timeout - time.Millisecond)
				require.Empty(n.f.t, n.net.takeRequests(), "not timed out yet")
				require.Zero(n.f.t, n.eng.Stats().RequestsFailed)
				n.tick(time.Millisecond)
			},
			wantFailed: 1,
		},
		{
			name: "transport error",
			fail: func(n *testNode, r sentRequest) {
				require.NoError(n.f.t, n.eng.OnResponse(n.ctx, r.Peer, r.ID, engine.Response{Err: errors.New("stream reset")}))
			},
			wantFailed: 1,
		},
		{
			name: "peer disconnected",
			fail: func(n *testNode, r sentRequest) {
				n.eng.OnPeerDisconnected(r.Peer)
				require.NotContains(n.f.t, n.eng.Peers(), r.Peer)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 2)
			ahead := f.fullNode()
			blocks := f.extend(f.genesis.Header, 6, "")
			ahead.importAll(blocks)
			level := f.fullNode()
			n := f.newNode(nodeOpts{key: -1, syncInterval: time.Hour, requestTimeout: timeout})

			n.eng.OnPeerConnected(n.ctx, "B")
			n.eng.OnPeerConnected(n.ctx, "C")
			reqs := n.net.takeRequests()
			require.Len(t, reqs, 2)
			require.Equal(t, []engine.PeerID{"B", "C"}, []engine.PeerID{reqs[0].Peer, reqs[1].Peer})
			n.answer(level, reqs[1])
			require.True(t, n.eng.CaughtUp())
			require.Empty(t, n.net.takeRequests())
			n.answer(ahead, reqs[0])
			blocksReq := n.onlyRequest()
			require.Equal(t, engine.Request{Kind: engine.ReqBlocks, Start: 1, Count: 6}, blocksReq.Req)

			c.fail(n, blocksReq)
			// The round ended; the other peer is polled at once, the
			// failed one is not.
			next := n.onlyRequest()
			require.Equal(t, engine.PeerID("C"), next.Peer)
			require.Equal(t, engine.Request{Kind: engine.ReqStatus}, next.Req)
			require.Equal(t, c.wantFailed, n.eng.Stats().RequestsFailed)
			require.False(t, n.eng.Syncing())

			// A late answer to the failed request is dropped.
			require.NoError(t, n.eng.OnResponse(n.ctx, "B", blocksReq.ID, ahead.serve(blocksReq.Req)))
			require.Zero(t, n.chain.Best().Number)
			require.Empty(t, n.net.takeRequests())

			// A new round can start once B's back-off (one request
			// time-out after a first failed round) passed: B is asked
			// again and answered.
			n.eng.OnPeerConnected(n.ctx, "B")
			n.answer(ahead, n.onlyRequest())
			require.Empty(t, n.net.takeRequests(), "no round with a peer in back-off")
			f.clock.Advance(timeout)
			n.eng.OnPeerConnected(n.ctx, "B")
			status := n.onlyRequest()
			require.Equal(t, engine.PeerID("B"), status.Peer)
			n.answer(ahead, status)
			retry := n.onlyRequest()
			require.Equal(t, engine.Request{Kind: engine.ReqBlocks, Start: 1, Count: 6}, retry.Req)
			n.answer(ahead, retry)
			require.Equal(t, blocks[5].Hash(), n.chain.BestHash())
			require.Equal(t, uint64(2), n.eng.Stats().SyncRounds)
		})
	}
}

func TestStatusPollEverySyncIntervalAndTimeout(t *testing.T) {
	const interval, timeout = 2 * time.Second, 4 * time.Second
	f := newFixture(t, 2)
	peer := f.fullNode()
	n := f.newNode(nodeOpts{key: -1, syncInterval: interval, requestTimeout: timeout})

	n.eng.OnPeerConnected(n.ctx, "B")
	r := n.onlyRequest()
	n.tick(interval - time.Millisecond)
	require.Empty(t, n.net.takeRequests())
	n.answer(peer, r)
	require.True(t, n.eng.CaughtUp())
	n.tick(time.Millisecond) // SyncInterval since the last poll
	unanswered := n.onlyRequest()
	require.Equal(t, engine.Request{Kind: engine.ReqStatus}, unanswered.Req)
	// While a poll is outstanding, the peer is not polled again.
	n.tick(timeout - time.Millisecond)
	require.Empty(t, n.net.takeRequests())
	require.Zero(t, n.eng.Stats().RequestsFailed)
	// It times out; the peer is polled again (its last poll is older than
	// SyncInterval).
	n.tick(time.Millisecond)
	require.Equal(t, uint64(1), n.eng.Stats().RequestsFailed)
	repoll := n.onlyRequest()
	require.Equal(t, engine.Request{Kind: engine.ReqStatus}, repoll.Req)
	require.NotEqual(t, unanswered.ID, repoll.ID)
}

func TestSyncIgnoresPeerOfAnotherChain(t *testing.T) {
	f := newFixture(t, 2)
	n := f.fullNode()
	n.eng.OnPeerConnected(n.ctx, "X")
	r := n.onlyRequest()
	other := checkpoint.HashOf([]byte("another chain"))
	st := engine.Status{Genesis: other, Best: checkpoint.Checkpoint{Number: 50, Hash: checkpoint.HashOf([]byte("b50"))}}
	require.NoError(t, n.eng.OnResponse(n.ctx, "X", r.ID, engine.Response{Status: st}))
	require.Empty(t, n.net.takeRequests())
	require.False(t, n.eng.CaughtUp())
	require.Zero(t, n.eng.Stats().SyncRounds)
}

func TestSyncResponseFromWrongPeerOrUnknownIDIsDropped(t *testing.T) {
	f := newFixture(t, 2)
	peer := f.fullNode()
	peer.importAll(f.extend(f.genesis.Header, 4, ""))
	n := f.fullNode()
	n.eng.OnPeerConnected(n.ctx, "B")
	r := n.onlyRequest()
	resp := peer.serve(r.Req)
	require.NoError(t, n.eng.OnResponse(n.ctx, "M", r.ID, resp))     // not asked
	require.NoError(t, n.eng.OnResponse(n.ctx, "B", r.ID+100, resp)) // never sent
	require.Empty(t, n.net.takeRequests())
	require.Zero(t, n.eng.Stats().SyncRounds)
	n.answer(peer, r)
	require.Equal(t, engine.Request{Kind: engine.ReqBlocks, Start: 1, Count: 4}, n.onlyRequest().Req)
}

func TestSyncCertificatesAndFinalityProof(t *testing.T) {
	type tc struct {
		name string
		// answerCerts answers the certificates request; answerProof the
		// finality-proof request, if one is expected.
		answerCerts func(f *fixture, peer *testNode, r sentRequest) engine.Response
		answerProof func(f *fixture, peer *testNode, r sentRequest) engine.Response
		// finalized and justified numbers after the round.
		wantF, wantJ uint64
		wantStats    func(t *testing.T, st engine.Stats)
		// wantRepoll: the round succeeded and the peer is asked again.
		wantRepoll bool
	}
	served := func(f *fixture, peer *testNode, r sentRequest) engine.Response { return peer.serve(r.Req) }
	cases := []tc{
		{
			name:        "certificates replayed",
			answerCerts: served,
			wantF:       3, wantJ: 4,
			wantStats: func(t *testing.T, st engine.Stats) {
				require.Equal(t, uint64(4), st.SyncedCertificates)
				require.Zero(t, st.ProofsApplied)
			},
			wantRepoll: true,
		},
		{
			name: "pruned certificates: finality proof applied",
			answerCerts: func(f *fixture, peer *testNode, r sentRequest) engine.Response {
				return engine.Response{Unavailable: true}
			},
			answerProof: served,
			wantF:       3, wantJ: 4,
			wantStats: func(t *testing.T, st engine.Stats) {
				require.Zero(t, st.SyncedCertificates)
				require.Equal(t, uint64(1), st.ProofsApplied)
			},
			wantRepoll: true,
		},
		{
			name: "certificate without quorum ends the round",
			answerCerts: func(f *fixture, peer *testNode, r sentRequest) engine.Response {
				return engine.Response{Certificates: []checkpoint.Certificate{f.cert(f.genesisCP(), checkpoint.Checkpoint{Number: 1, Hash: peer.mustCanonical(1)}, 0, 1)}}
			},
			wantStats: func(t *testing.T, st engine.Stats) { require.Zero(t, st.SyncedCertificates) },
		},
		{
			name: "forged finality proof ends the round",
			answerCerts: func(f *fixture, peer *testNode, r sentRequest) engine.Response {
				return engine.Response{Unavailable: true}
			},
			answerProof: func(f *fixture, peer *testNode, r sentRequest) engine.Response {
				resp := peer.serve(r.Req)
				require.NotNil(f.t, resp.Proof)
				p := *resp.Proof
				sigs := append([]checkpoint.CertSignature(nil), p.Finalizing.Signatures...)
				sigs[0].Signature[3] ^= 1
				p.Finalizing.Signatures = sigs
				return engine.Response{Proof: &p}
			},
			wantStats: func(t *testing.T, st engine.Stats) { require.Zero(t, st.ProofsApplied) },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 1)
			peer, blocks := f.finalizedNode(5) // justified 4, finalized 3
			n := f.fullNode()

			n.eng.OnPeerConnected(n.ctx, "X")
			n.answer(peer, n.onlyRequest())
			br := n.onlyRequest()
			require.Equal(t, engine.Request{Kind: engine.ReqBlocks, Start: 1, Count: 5}, br.Req)
			n.answer(peer, br)
			require.Equal(t, blocks[4].Hash(), n.chain.BestHash())

			cr := n.onlyRequest()
			require.Equal(t, engine.Request{Kind: engine.ReqCertificates, Start: 1, Count: 4}, cr.Req)
			require.NoError(t, n.eng.OnResponse(n.ctx, cr.Peer, cr.ID, c.answerCerts(f, peer, cr)))
			if c.answerProof != nil {
				pr := n.onlyRequest()
				require.Equal(t, engine.Request{Kind: engine.ReqFinalityProof}, pr.Req)
				require.NoError(t, n.eng.OnResponse(n.ctx, pr.Peer, pr.ID, c.answerProof(f, peer, pr)))
			}

			g := n.eng.Gadget()
			require.Equal(t, c.wantF, g.LatestFinalized().Number)
			require.Equal(t, c.wantJ, g.LatestJustified().Number)
			require.Equal(t, c.wantF, n.chain.Finalized().Number, "the chain follows the gadget's finality")
			if c.wantF > 0 {
				require.Equal(t, f.cp(blocks[c.wantF-1]), n.chain.Finalized())
				p, ok := n.eng.ServeFinalityProof()
				require.True(t, ok)
				require.Equal(t, f.cp(blocks[c.wantF-1]), p.Finalizing.Source)
			}
			c.wantStats(t, n.eng.Stats())
			require.False(t, n.eng.Syncing())
			reqs := n.net.takeRequests()
			if c.wantRepoll {
				require.Len(t, reqs, 1)
				require.Equal(t, engine.Request{Kind: engine.ReqStatus}, reqs[0].Req)
				n.answer(peer, reqs[0])
				require.True(t, n.eng.CaughtUp())
				require.Empty(t, n.net.takeRequests())
			} else {
				// The round failed; there is no other peer to poll.
				require.Empty(t, reqs)
			}
		})
	}
}

// --- Fresh signer record ------------------------------------------------------

// TestFreshSignerCatchesUpListensThenVotes: a fresh record votes only after
// the node caught up and listened doppelgangerIntervals (2) checkpoint
// intervals of slot time, and then not for anything at or below the head it
// had when it stopped listening.
func TestFreshSignerCatchesUpListensThenVotes(t *testing.T) {
	const interval = 4
	listen := 2 * interval * time.Second // 2 intervals of 4 one-second slots
	f := newFixture(t, interval)
	peer := f.fullNode()
	inits := 0
	n := f.newNode(nodeOpts{key: 0, fresh: true, syncInterval: time.Hour, onSignerInit: func() { inits++ }})
	require.True(t, n.eng.SignerPending())
	require.False(t, n.eng.CaughtUp())

	blocks := f.extend(f.genesis.Header, 3*interval, "")
	n.gossip("P", blocks[:interval]) // checkpoint 1
	peer.importAll(blocks[:interval])

	// Not caught up: time passes, nothing happens.
	n.tick(10 * listen)
	require.True(t, n.eng.SignerPending())
	require.Empty(t, n.net.publishedVotes())

	// Caught up: a peer's status shows nothing ahead.
	n.eng.OnPeerConnected(n.ctx, "P")
	n.answer(peer, n.onlyRequest())
	require.True(t, n.eng.CaughtUp())
	require.True(t, n.eng.SignerPending())
	// The peer is asked for the votes of our key it stores: none.
	votesReq := n.onlyRequest()
	require.Equal(t, engine.Request{Kind: engine.ReqVotes, Key: f.keys[0].Public().(ed25519.PublicKey), Start: 1, Count: engine.VotesPerRequest}, votesReq.Req)
	n.answer(peer, votesReq)

	n.tick(0) // starts listening now, at the head checkpoint 1
	listenStart := f.clock.Now()
	n.gossip("P", blocks[interval:2*interval]) // checkpoint 2, while listening
	n.tick(listen - time.Millisecond)
	require.True(t, n.eng.SignerPending(), "listened %s of %s", f.clock.Now().Sub(listenStart), listen)
	require.Empty(t, n.net.publishedVotes())
	require.Zero(t, inits)

	n.tick(time.Millisecond)
	require.False(t, n.eng.SignerPending())
	require.Equal(t, 1, inits)
	rec, err := n.cpdbSignerRecord()
	require.NoError(t, err)
	require.Equal(t, uint64(2), rec.MinTarget, "target watermark at the head checkpoint")
	require.Zero(t, rec.MinSource)
	require.Empty(t, n.net.publishedVotes(), "the head checkpoint (2) is at the watermark: no vote")

	// The next checkpoint is voted.
	n.gossip("P", blocks[2*interval:])
	votes := n.net.publishedVotes()
	require.Len(t, votes, 1)
	require.Equal(t, checkpoint.ValidatorIndex(0), votes[0].Validator)
	require.Equal(t, f.genesisCP(), votes[0].Source)
	require.Equal(t, f.cp(blocks[3*interval-1]), votes[0].Target)

	n.tick(10 * listen)
	require.Equal(t, 1, inits, "initialised once")
}

func TestFreshSignerAloneListensWithoutPeers(t *testing.T) {
	f := newFixture(t, 2)
	n := f.newNode(nodeOpts{key: 0, fresh: true, alone: true})
	require.True(t, n.eng.CaughtUp(), "a node that is alone is caught up")
	require.True(t, n.eng.SignerPending())
	n.tick(0)
	n.tick(4*time.Second - time.Millisecond)
	require.True(t, n.eng.SignerPending())
	n.tick(time.Millisecond)
	require.False(t, n.eng.SignerPending())
	require.Empty(t, n.net.takeRequests(), "no peer is ever asked")
}

func TestFreshSignerHaltsOnItsKeyAboveTheHead(t *testing.T) {
	const interval = 2
	f := newFixture(t, interval)
	n := f.newNode(nodeOpts{key: 0, fresh: true, alone: true})
	blocks := f.extend(f.genesis.Header, 3*interval, "")
	n.gossip("P", blocks[:interval]) // head checkpoint 1
	n.tick(0)                        // listening, mark 1

	// An old vote of the key (at or below the mark) is history...
	old := f.vote(0, f.genesisCP(), f.cp(blocks[interval-1]))
	_, err := n.eng.OnVote(n.ctx, "P", old)
	require.NoError(t, err)
	require.False(t, n.eng.Gadget().Halted())
	// ...one above it means another instance signs with the key now.
	n.gossip("P", blocks[interval:2*interval])
	dup := f.vote(0, f.genesisCP(), f.cp(blocks[2*interval-1]))
	_, err = n.eng.OnVote(n.ctx, "P", dup)
	require.NoError(t, err)
	require.True(t, n.eng.Gadget().Halted())

	n.tick(time.Hour)
	n.gossip("P", blocks[2*interval:])
	require.True(t, n.eng.SignerPending(), "a halted node never initialises its record")
	require.Empty(t, n.net.publishedVotes())
}

// --- Serving peers ----------------------------------------------------------------

func TestServeStatus(t *testing.T) {
	f := newFixture(t, 1)
	fresh := f.fullNode()
	require.Equal(t, engine.Status{
		Genesis:   f.genesis.Hash(),
		Best:      f.genesisCP(),
		Justified: f.genesisCP(),
		Finalized: f.genesisCP(),
	}, fresh.eng.ServeStatus())

	n, blocks := f.finalizedNode(5)
	require.Equal(t, engine.Status{
		Genesis:   f.genesis.Hash(),
		Best:      checkpoint.Checkpoint{Number: 5, Hash: blocks[4].Hash()},
		Justified: f.cp(blocks[3]),
		Finalized: f.cp(blocks[2]),
	}, n.eng.ServeStatus())
}

func TestServeBlocks(t *testing.T) {
	f := newFixture(t, 1)
	n := f.fullNode()
	blocks := f.extend(f.genesis.Header, 6, "")
	n.gossip("P", blocks)
	// A side branch is never served.
	fork := f.block(blocks[2].Header, blocks[5].Header.Slot+1, []byte("fork"))
	_, err := n.chain.Import(n.ctx, fork)
	require.NoError(t, err)
	require.Equal(t, blocks[5].Hash(), n.chain.BestHash())

	cases := []struct {
		start           uint64
		count           uint32
		want            []asf.Block
		wantUnavailable bool
	}{
		{start: 1, count: 3, want: blocks[0:3]},
		{start: 4, count: 100, want: blocks[3:6]},
		{start: 6, count: 1, want: blocks[5:6]},
		{start: 7, count: 5, wantUnavailable: true},
		{start: 1, count: 0, wantUnavailable: true},
	}
	for _, c := range cases {
		got, unavailable := n.eng.ServeBlocks(c.start, c.count)
		require.Equal(t, c.wantUnavailable, unavailable, "start %d count %d", c.start, c.count)
		require.Equal(t, c.want, got, "start %d count %d", c.start, c.count)
	}
}

func TestServeFinalityProofAndCertificates(t *testing.T) {
	f := newFixture(t, 1)
	fresh := f.fullNode()
	p, ok := fresh.eng.ServeFinalityProof()
	require.False(t, ok)
	require.Nil(t, p)
	_, unavailable := fresh.eng.ServeCertificates(fresh.ctx, 1, 10)
	require.True(t, unavailable)

	n, blocks := f.finalizedNode(5)
	p, ok = n.eng.ServeFinalityProof()
	require.True(t, ok)
	require.NotNil(t, p)
	require.Equal(t, f.cp(blocks[2]), p.Finalizing.Source)
	require.Equal(t, f.cp(blocks[3]), p.Finalizing.Target)
	fin, just, err := f.auth.VerifyFinalityProof(*p)
	require.NoError(t, err)
	require.Equal(t, n.eng.Gadget().LatestFinalized(), fin)
	require.Equal(t, n.eng.Gadget().LatestJustified(), just)
	// The chain database keeps the same proof.
	cp, found, err := n.chain.FinalityProof()
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, p.Finalizing.Source, cp.Finalizing.Source)

	cases := []struct {
		start           uint64
		count           uint32
		wantTargets     []uint64
		wantUnavailable bool
	}{
		{start: 1, count: 10, wantTargets: []uint64{1, 2, 3, 4}},
		{start: 2, count: 2, wantTargets: []uint64{2, 3}},
		{start: 4, count: 1, wantTargets: []uint64{4}},
		{start: 5, count: 3, wantUnavailable: true},
		{start: 1, count: 0, wantUnavailable: true},
	}
	for _, c := range cases {
		certs, unavailable := n.eng.ServeCertificates(n.ctx, c.start, c.count)
		require.Equal(t, c.wantUnavailable, unavailable, "start %d count %d", c.start, c.count)
		var targets []uint64
		for _, cert := range certs {
			targets = append(targets, cert.Target.Number)
			require.Equal(t, f.cp(blocks[cert.Target.Number-1]), cert.Target)
			require.NoError(t, f.auth.VerifyCertificate(cert))
		}
		require.Equal(t, c.wantTargets, targets, "start %d count %d", c.start, c.count)
	}
}

// TestEquivocatorCheckpointVotedOnceBuiltOn: a checkpoint block whose
// proposer is known to equivocate is voted only once a block builds on it,
// and then for the version the best chain holds; a checkpoint of an honest
// proposer is voted on import.
func TestEquivocatorCheckpointVotedOnceBuiltOn(t *testing.T) {
	const interval = 2
	f := newFixture(t, interval)
	require.Equal(t, 4, numValidators, "slot s is proposed by validator s mod 4")
	n := f.newNode(nodeOpts{key: 0})
	votes := func() []checkpoint.SignedVote { return n.net.publishedVotes() }

	// Slots 1..4: validator 2 signs two blocks for slot 2 (checkpoint 1).
	b := f.extend(f.genesis.Header, 2, "")
	n.gossip("P", b)
	require.Len(t, votes(), 1, "no evidence yet: checkpoint 1 voted on import")
	other := f.block(b[0].Header, 2, []byte("second version"))
	v, err := n.eng.OnBlock(n.ctx, "P", other)
	require.NoError(t, err)
	require.Equal(t, engine.Ignore, v)
	require.Equal(t, uint64(1), n.eng.Stats().BlocksEquivocating)
	require.True(t, n.chain.Equivocated(2))
	require.False(t, n.chain.Equivocated(0))

	b = append(b, f.extend(b[1].Header, 2, "")...) // slots 3, 4: checkpoint 2 by validator 0
	n.gossip("P", b[2:])
	require.Len(t, votes(), 2, "an honest proposer's checkpoint is voted on import")
	require.Equal(t, f.cp(b[3]), votes()[1].Target)

	// Slots 5, 6: checkpoint 3 is validator 2's block; the node got version A.
	b = append(b, f.extend(b[3].Header, 2, "")...)
	n.gossip("P", b[4:])
	require.Len(t, votes(), 2, "the equivocator's checkpoint block is not voted on import")

	// The next proposer built on version B: the node syncs B (a branch with
	// an equivocating block) and the child, then votes for B.
	versionB := f.block(b[4].Header, 6, []byte("version B"))
	_, err = n.chain.ImportSynced(n.ctx, versionB)
	require.NoError(t, err)
	child := f.block(versionB.Header, 7)
	n.gossip("P", []asf.Block{child})
	require.Len(t, votes(), 3)
	require.Equal(t, f.cp(versionB), votes()[2].Target, "the version the next proposer built on")
	require.Equal(t, f.genesisCP(), votes()[2].Source, "nothing justified: only this node votes")
}
