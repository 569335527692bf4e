package engine_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/engine"
)

// certifiedNode returns a full node holding blocks (interval 1) with
// checkpoints 1..upto justified by certificates of validators 0..2.
func (f *fixture) certifiedNode(blocks []asf.Block, upto int) *testNode {
	f.t.Helper()
	node := f.fullNode()
	node.gossip("", blocks)
	src := f.genesisCP()
	for _, b := range blocks[:upto] {
		tgt := f.cp(b)
		v, err := node.eng.OnCertificate(node.ctx, "", f.cert(src, tgt, 0, 1, 2))
		require.NoError(f.t, err)
		require.Equal(f.t, engine.Accept, v)
		src = tgt
	}
	return node
}

// atHead sets the clock to the slot after the last block (the node's head
// is recent).
func (f *fixture) atHead(blocks []asf.Block) {
	last := blocks[len(blocks)-1].Header.Slot
	f.clock.now = asf.SlotStart(f.spec, last+1)
}

// liarStatus is an honest status with the given lies applied.
func liarStatus(honest engine.Status, lie func(*engine.Status)) engine.Status {
	st := honest
	lie(&st)
	return st
}

// TestKeylessLiarRelayingTheRealProofDoesNotHalt: a keyless peer claims a
// finalized checkpoint at our number with another hash (unsigned), and when
// asked for its proof relays the honest network's real one. The proof
// descends from our finalized checkpoint: finality moves, nothing halts.
func TestKeylessLiarRelayingTheRealProofDoesNotHalt(t *testing.T) {
	cases := []struct {
		name string
		// ours: how many blocks the victim holds (the proof finalizes
		// checkpoint 6).
		ours          int
		wantFinalized uint64
	}{
		{name: "proof's block known", ours: 8, wantFinalized: 6},
		{name: "proof's block not held yet", ours: 4, wantFinalized: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 1)
			honest, blocks := f.finalizedNode(8) // finalized 6
			victim := f.certifiedNode(blocks[:c.ours], 4)
			require.Equal(t, uint64(3), victim.eng.Gadget().LatestFinalized().Number)
			lie := liarStatus(honest.eng.ServeStatus(), func(st *engine.Status) {
				st.Finalized = checkpoint.Checkpoint{Number: 3, Hash: checkpoint.Hash{0xba, 0xd}}
				st.Best = victim.eng.ServeStatus().Best
				st.Justified = st.Finalized
			})

			victim.eng.OnPeerConnected(victim.ctx, "liar")
			status := victim.onlyRequest()
			require.NoError(t, victim.eng.OnResponse(victim.ctx, "liar", status.ID, engine.Response{Status: lie}))
			proofReq := victim.onlyRequest()
			require.Equal(t, engine.ReqFinalityProof, proofReq.Req.Kind)
			victim.answer(honest, proofReq) // the real proof, relayed
			// Whatever else the liar is asked for, it has nothing.
			for range 8 {
				for _, r := range victim.net.takeRequests() {
					require.NoError(t, victim.eng.OnResponse(victim.ctx, r.Peer, r.ID, engine.Response{Unavailable: true}))
				}
			}
			require.False(t, victim.eng.Gadget().Halted(), "halts: %+v", victim.eng.Gadget().Halts())
			require.Equal(t, c.wantFinalized, victim.eng.Gadget().LatestFinalized().Number)
		})
	}
}

// TestProofWhoseAncestryMissesOurFinalizedHalts: a verified proof that
// finalizes a block whose hash-linked ancestry passes our finalized height
// without our block is signed conflicting finality: the node halts with it.
func TestProofWhoseAncestryMissesOurFinalizedHalts(t *testing.T) {
	f := newFixture(t, 1)
	other, _ := f.finalizedNode(8) // finalized 6 on the main chain
	fork := f.extend(f.genesis.Header, 8, "fork")
	victim := f.certifiedNode(fork, 4) // finalized 3 on the fork
	f.atHead(fork)

	victim.eng.OnPeerConnected(victim.ctx, "P")
	victim.answer(other, victim.onlyRequest()) // status: ahead in finality
	for range 16 {
		reqs := victim.net.takeRequests()
		if len(reqs) == 0 {
			break
		}
		for _, r := range reqs {
			victim.answer(other, r)
		}
	}
	require.True(t, victim.eng.Gadget().Halted())
	halts := victim.eng.Gadget().Halts()
	require.Equal(t, checkpoint.HaltConflictingFinality, halts[0].Reason)
	require.Contains(t, halts[0].Detail, "ancestry")
}

// TestOrphanBranchBySyncDoesNotHalt: a peer whose best chain does not
// contain our finalized block (an orphan branch, no proof) ends the round;
// it is no evidence.
func TestOrphanBranchBySyncDoesNotHalt(t *testing.T) {
	f := newFixture(t, 1)
	main := f.extend(f.genesis.Header, 6, "")
	victim := f.certifiedNode(main, 4) // finalized 3
	orphan := f.fullNode()
	orphan.importAll(f.extend(f.genesis.Header, 9, "orphan"))

	victim.eng.OnPeerConnected(victim.ctx, "orphan")
	for range 16 {
		reqs := victim.net.takeRequests()
		if len(reqs) == 0 {
			break
		}
		for _, r := range reqs {
			victim.answer(orphan, r)
		}
	}
	require.False(t, victim.eng.Gadget().Halted(), "halts: %+v", victim.eng.Gadget().Halts())
}

// TestFarAheadLiarTricklingKnownBlocks: a keyless peer claims best = 2^40
// and answers every blocks request with a block we already hold. Known
// blocks are not progress: the round ends, the peer is backed off, and
// with honest peers level with us the validator keeps voting.
func TestFarAheadLiarTricklingKnownBlocks(t *testing.T) {
	for _, mutant := range []bool{false, true} {
		name := "rule"
		if mutant {
			name = "mutant: known blocks count as progress"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 1)
			blocks := f.extend(f.genesis.Header, 12, "")
			honest := f.fullNode()
			honest.importAll(blocks[:8])
			n := f.newNode(nodeOpts{key: 0, syncInterval: time.Hour, mutations: engine.Mutations{CountKnownBlocksAsProgress: mutant}})
			n.gossip("", blocks[:8])
			f.atHead(blocks[:8])
			lie := liarStatus(honest.eng.ServeStatus(), func(st *engine.Status) {
				st.Best = checkpoint.Checkpoint{Number: 1 << 40, Hash: checkpoint.Hash{0xfa, 0x4}}
			})
			for _, p := range []engine.PeerID{"h1", "h2", "liar"} {
				n.eng.OnPeerConnected(n.ctx, p)
			}
			serve := func(r sentRequest) engine.Response {
				if r.Peer != "liar" {
					return honest.serve(r.Req)
				}
				if r.Req.Kind == engine.ReqStatus {
					return engine.Response{Status: lie}
				}
				if r.Req.Kind == engine.ReqBlocks {
					return engine.Response{Blocks: []asf.Block{blocks[3]}} // known
				}
				return engine.Response{Unavailable: true}
			}
			voted := map[uint64]bool{}
			for i := 8; i < 12; i++ {
				for range 6 {
					for _, r := range n.net.takeRequests() {
						require.NoError(t, n.eng.OnResponse(n.ctx, r.Peer, r.ID, serve(r)))
					}
				}
				f.atHead(blocks[:i+1])
				n.gossip("h1", blocks[i:i+1])
				honest.importAll(blocks[i : i+1])
				for _, v := range n.net.publishedVotes() {
					if v.Target.Number > 8 {
						voted[v.Target.Number] = true
					}
				}
				// Honest peers are polled again; the liar keeps lying.
				for _, p := range []engine.PeerID{"h1", "h2", "liar"} {
					n.eng.OnPeerConnected(n.ctx, p)
				}
			}
			if mutant {
				require.Less(t, len(voted), 2, "the mutant must lose votes to the liar: %v", voted)
				return
			}
			require.False(t, n.eng.Syncing())
			require.Len(t, voted, 4, "votes on checkpoints 9..12: %v", voted)
		})
	}
}

// TestFreshRecordLearnsItsKeysVotesFromPeers: a peer stores a vote of our
// key (1 -> 2) that the network's live gossip would never show again; the
// fresh record's watermarks go above it, so its first vote cannot surround
// it. Without any answer, the source watermark is the head checkpoint.
func TestFreshRecordLearnsItsKeysVotesFromPeers(t *testing.T) {
	cases := []struct {
		name           string
		answer         func(f *fixture, cps []checkpoint.Checkpoint) *engine.Response
		wantMinSource  uint64
		wantMinTarget  uint64
		skipVotesFetch bool
	}{
		{
			name: "peer stores an old vote of the key",
			answer: func(f *fixture, cps []checkpoint.Checkpoint) *engine.Response {
				return &engine.Response{Votes: []checkpoint.SignedVote{f.vote(0, cps[1], cps[2])}}
			},
			wantMinSource: 1, wantMinTarget: 6,
		},
		{
			name:          "no peer answers",
			answer:        func(*fixture, []checkpoint.Checkpoint) *engine.Response { return nil },
			wantMinSource: 6, wantMinTarget: 6,
		},
		{
			name: "forged vote of the key is not learned",
			answer: func(f *fixture, cps []checkpoint.Checkpoint) *engine.Response {
				v := f.vote(0, cps[3], cps[5])
				v.Signature[0] ^= 1
				return &engine.Response{Votes: []checkpoint.SignedVote{v}}
			},
			wantMinSource: 0, wantMinTarget: 6,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 1)
			blocks := f.extend(f.genesis.Header, 6, "")
			cps := []checkpoint.Checkpoint{f.genesisCP()}
			for _, b := range blocks {
				cps = append(cps, f.cp(b))
			}
			peer := f.fullNode()
			peer.importAll(blocks)
			n := f.newNode(nodeOpts{key: 0, fresh: true, syncInterval: time.Hour})
			n.gossip("P", blocks)
			f.atHead(blocks)
			n.eng.OnPeerConnected(n.ctx, "P")
			n.answer(peer, n.onlyRequest())
			votesReq := n.onlyRequest()
			require.Equal(t, engine.ReqVotes, votesReq.Req.Kind)
			require.Equal(t, ed25519.PublicKey(f.keys[0].Public().(ed25519.PublicKey)), votesReq.Req.Key)
			if resp := c.answer(f, cps); resp != nil {
				require.NoError(t, n.eng.OnResponse(n.ctx, "P", votesReq.ID, *resp))
			}
			n.tick(0)
			n.tick(time.Minute)
			require.False(t, n.eng.SignerPending())
			rec, err := n.cpdbSignerRecord()
			require.NoError(t, err)
			require.Equal(t, c.wantMinSource, rec.MinSource)
			require.Equal(t, c.wantMinTarget, rec.MinTarget)
			require.False(t, n.eng.Gadget().Halted())
		})
	}
}

// TestRestartedRecordHearsTheNetworkBeforeItsFirstVote: a ready record (a
// restart, or a copy of a base path) votes only after a status round and
// the peers' stored votes of its key; a stored vote it did not sign (the
// original instance kept voting) halts it before any vote leaves.
func TestRestartedRecordHearsTheNetworkBeforeItsFirstVote(t *testing.T) {
	for _, foreign := range []bool{false, true} {
		name := "no foreign vote: votes after the check"
		if foreign {
			name = "a stored vote it did not sign: halts, never votes"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 1)
			blocks := f.extend(f.genesis.Header, 4, "")
			peer := f.fullNode()
			peer.importAll(blocks[:3])
			n := f.newNode(nodeOpts{key: 0, startCheck: true, signedBefore: true, syncInterval: time.Hour})
			n.gossip("P", blocks[:3])
			f.atHead(blocks[:3])
			b, err := n.eng.OnSlot(n.ctx, blocks[2].Header.Slot+1)
			require.NoError(t, err)
			require.Nil(t, b, "no block authored before hearing the network")
			require.Empty(t, n.net.publishedVotes(), "no vote before hearing the network")

			n.eng.OnPeerConnected(n.ctx, "P")
			n.answer(peer, n.onlyRequest())
			votesReq := n.onlyRequest()
			require.Equal(t, engine.ReqVotes, votesReq.Req.Kind)
			resp := engine.Response{Unavailable: true}
			if foreign {
				resp = engine.Response{Votes: []checkpoint.SignedVote{f.vote(0, f.genesisCP(), f.cp(blocks[2]))}}
			}
			require.NoError(t, n.eng.OnResponse(n.ctx, "P", votesReq.ID, resp))
			n.tick(0)
			if foreign {
				require.True(t, n.eng.Gadget().Halted())
				require.Equal(t, checkpoint.HaltDoppelganger, n.eng.Gadget().Halts()[0].Reason)
				n.gossip("P", blocks[3:])
				require.Empty(t, n.net.publishedVotes())
				return
			}
			require.Len(t, n.net.publishedVotes(), 1)
		})
	}
}

// TestMissingParentFetchedByHash: a gossip block whose parent (a second
// version of an equivocated slot, say) is unknown makes the node ask the
// sender for the parent by hash; both import at once.
func TestMissingParentFetchedByHash(t *testing.T) {
	f := newFixture(t, 1)
	blocks := f.extend(f.genesis.Header, 5, "")
	peer := f.fullNode()
	peer.importAll(blocks)
	n := f.fullNode()
	n.gossip("P", blocks[:2])
	v, err := n.eng.OnBlock(n.ctx, "P", blocks[4])
	require.ErrorIs(t, err, nil)
	require.Equal(t, engine.Ignore, v)
	reqs := n.net.takeRequests()
	require.Equal(t, engine.Request{Kind: engine.ReqBlocksByHash, Hash: blocks[3].Hash(), Count: engine.BlocksByHashPerRequest}, reqs[0].Req)
	n.answer(peer, reqs[0])
	require.Equal(t, blocks[4].Hash(), n.chain.BestHash())

	// A lost answer is asked of another peer at once.
	more := f.extend(blocks[4].Header, 2, "")
	peer.importAll(more)
	n.eng.OnPeerConnected(n.ctx, "Q")
	n.answer(peer, n.onlyRequest())
	n.net.takeRequests()
	_, _ = n.eng.OnBlock(n.ctx, "P", more[1])
	reqs = n.net.takeRequests()
	require.Equal(t, engine.ReqBlocksByHash, reqs[0].Req.Kind)
	require.NoError(t, n.eng.OnResponse(n.ctx, "P", reqs[0].ID, engine.Response{Err: engine.ErrRequestTimeout}))
	retry := n.net.takeRequests()
	require.NotEmpty(t, retry)
	require.Equal(t, engine.PeerID("Q"), retry[0].Peer)
	n.answer(peer, retry[0])
	require.Equal(t, more[1].Hash(), n.chain.BestHash())
}

// TestDoppelgangerListenAtRestart: with Config.DoppelgangerListen a
// restarted record listens two checkpoint intervals after the status
// exchange before its first vote.
func TestDoppelgangerListenAtRestart(t *testing.T) {
	f := newFixture(t, 1)
	blocks := f.extend(f.genesis.Header, 4, "")
	peer := f.fullNode()
	peer.importAll(blocks[:3])
	n := f.newNode(nodeOpts{key: 0, startCheck: true, signedBefore: true, doppelganger: true, syncInterval: time.Hour})
	n.gossip("P", blocks[:3])
	f.atHead(blocks[:3])
	n.eng.OnPeerConnected(n.ctx, "P")
	n.answer(peer, n.onlyRequest())
	n.answer(peer, n.onlyRequest()) // votes: none stored
	n.tick(0)
	listen := 2 * time.Duration(f.interval) * f.spec.SlotDuration()
	n.tick(listen - time.Millisecond)
	require.Empty(t, n.net.publishedVotes(), "still listening")
	n.tick(time.Millisecond)
	require.Len(t, n.net.publishedVotes(), 1)
}
