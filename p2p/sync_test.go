package p2p

import (
	"bufio"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// syncPair returns a server (with a 300-block chain, pruned below 10, and
// certificates at targets 1..400 except multiples of 3) and a client
// connected to it.
func syncPair(t *testing.T) (server, client *testNode) {
	t.Helper()
	nodes := newTopology(t, 2, false, nil)
	server, client = nodes[0], nodes[1]
	chain := testChain(300)
	var certs []checkpoint.Certificate
	for target := uint64(1); target <= 400; target++ {
		if target%3 != 0 {
			certs = append(certs, certificate(target))
		}
	}
	bestHash := checkpoint.HashOf(headerSigningBytes(chain[299].Header))
	server.h.configure(func(h *testHandler) {
		h.chain = chain
		h.prunedBelow = 10
		h.certStore = certs
		h.status = &flarepb.Status{
			GenesisHash: testGenesis[:],
			Best:        &flarepb.Checkpoint{Number: 300, Hash: bestHash[:]},
			Justified:   &flarepb.Checkpoint{Number: 400, Hash: certs[len(certs)-1].Target.Hash[:]},
			Finalized:   &flarepb.Checkpoint{Number: 398, Hash: make([]byte, 32)},
		}
	})
	return server, client
}

func blockNumbers(blocks []*flarepb.Block) []uint64 {
	out := make([]uint64, len(blocks))
	for i, b := range blocks {
		out[i] = b.GetHeader().GetNumber()
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestSyncStatus(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()
	st, err := client.RequestStatus(ctx, server.ID())
	require.NoError(t, err)
	require.True(t, proto.Equal(server.h.Status(ctx), st))

	// A peer of another chain is reported as such.
	server.h.configure(func(h *testHandler) {
		h.status = proto.Clone(h.status).(*flarepb.Status)
		h.status.GenesisHash = make([]byte, 32)
	})
	_, err = client.RequestStatus(ctx, server.ID())
	require.ErrorIs(t, err, checkpoint.ErrWrongChain)
}

func TestSyncBlocksByRange(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name            string
		start           uint64
		count           uint32
		want            []uint64
		wantUnavailable bool
		handlerCount    uint32
	}{
		{"range", 20, 5, span(20, 24), false, 5},
		{"clamped", 10, 1000, span(10, 137), false, MaxBlocksPerRequest},
		{"pruned", 5, 10, nil, true, 10},
		{"past the tip", 298, 10, span(298, 300), true, 10},
		{"unknown", 1000, 10, nil, true, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks, unavailable, err := client.RequestBlocks(ctx, server.ID(), tc.start, tc.count)
			require.NoError(t, err)
			require.Equal(t, tc.wantUnavailable, unavailable)
			if tc.want == nil {
				require.Empty(t, blocks)
			} else {
				require.Equal(t, tc.want, blockNumbers(blocks))
			}
			require.Equal(t, tc.handlerCount, server.h.lastRequestCount())
			for _, b := range blocks {
				want := server.h.chain[b.GetHeader().GetNumber()-1]
				require.True(t, proto.Equal(want, b))
			}
		})
	}
}

func TestSyncCertificatesByRange(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()
	targets := func(certs []checkpoint.Certificate) []uint64 {
		var out []uint64
		for _, c := range certs {
			out = append(out, c.Target.Number)
		}
		return out
	}
	certs, unavailable, err := client.RequestCertificates(ctx, server.ID(), 10, 6)
	require.NoError(t, err)
	require.False(t, unavailable)
	require.Equal(t, []uint64{10, 11, 13, 14}, targets(certs))
	for _, c := range certs {
		require.NoError(t, testSet.VerifyCertificate(c), "certificate does not survive the round trip")
	}

	certs, _, err = client.RequestCertificates(ctx, server.ID(), 10, 10_000)
	require.NoError(t, err)
	require.Equal(t, uint32(MaxCertificatesPerRequest), server.h.lastRequestCount())
	var want []uint64
	for target := uint64(10); target < 10+MaxCertificatesPerRequest; target++ {
		if target%3 != 0 {
			want = append(want, target)
		}
	}
	require.Equal(t, want, targets(certs))

	certs, unavailable, err = client.RequestCertificates(ctx, server.ID(), 2, 5)
	require.NoError(t, err)
	require.True(t, unavailable)
	require.Empty(t, certs)
}

func TestSyncMalformedRequests(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()

	// Semantic problems come back as error responses.
	_, _, err := client.RequestBlocks(ctx, server.ID(), 20, 0)
	require.ErrorIs(t, err, ErrRemote)
	_, _, err = client.RequestCertificates(ctx, server.ID(), ^uint64(0)-3, 10)
	require.ErrorIs(t, err, ErrRemote)
	_, err = client.request(ctx, server.ID(), &flarepb.SyncRequest{Version: 9, Request: &flarepb.SyncRequest_Status{Status: &flarepb.StatusRequest{}}})
	require.ErrorIs(t, err, ErrRemote)
	_, err = client.request(ctx, server.ID(), &flarepb.SyncRequest{Version: SyncVersion})
	require.ErrorIs(t, err, ErrRemote)

	// Undecodable bytes: an error response, then the stream ends.
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage protobuf", []byte{5, 0x0f, 1, 2, 3, 4}},
		{"oversized length prefix", []byte{0xff, 0xff, 0x03}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := client.host.NewStream(ctx, server.ID(), server.syncProto)
			require.NoError(t, err)
			defer s.Close()
			require.NoError(t, s.SetDeadline(time.Now().Add(10*time.Second)))
			_, err = s.Write(tc.data)
			require.NoError(t, err)
			r := bufio.NewReader(s)
			var resp flarepb.SyncResponse
			require.NoError(t, readDelimited(r, &resp, MaxSyncResponseSize))
			require.Contains(t, resp.GetError(), "malformed request")
			_, err = r.ReadByte()
			require.Error(t, err, "stream still open after an error response")
		})
	}
	// The server still serves well-formed requests.
	_, err = client.RequestStatus(ctx, server.ID())
	require.NoError(t, err)
}

func TestSyncBadResponses(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()
	other := checkpoint.HashOf([]byte("other chain"))
	wrongChainCert := certificate(20)
	wrongChainCert.Genesis = other
	for _, tc := range []struct {
		name   string
		blocks []*flarepb.Block
		certs  []checkpoint.Certificate
		certs2 bool
	}{
		{name: "block outside the range", blocks: testChain(40)[30:32]},
		{name: "blocks out of order", blocks: []*flarepb.Block{testChain(21)[20], testChain(21)[19]}},
		{name: "block without header", blocks: []*flarepb.Block{{}}},
		{name: "certificate outside the range", certs: []checkpoint.Certificate{certificate(99)}, certs2: true},
		{name: "certificates out of order", certs: []checkpoint.Certificate{certificate(21), certificate(20)}, certs2: true},
		{name: "certificate of another chain", certs: []checkpoint.Certificate{wrongChainCert}, certs2: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server.h.configure(func(h *testHandler) {
				h.syncHook = func(context.Context, uint64, uint32) ([]*flarepb.Block, []checkpoint.Certificate, bool) {
					return tc.blocks, tc.certs, true
				}
			})
			var err error
			if tc.certs2 {
				_, _, err = client.RequestCertificates(ctx, server.ID(), 20, 5)
			} else {
				_, _, err = client.RequestBlocks(ctx, server.ID(), 20, 5)
			}
			require.ErrorIs(t, err, ErrBadResponse)
		})
	}
}

func TestSyncTimeouts(t *testing.T) {
	server, client := syncPair(t)
	release := make(chan struct{})
	defer close(release)
	server.h.configure(func(h *testHandler) {
		h.syncHook = func(ctx context.Context, start uint64, _ uint32) ([]*flarepb.Block, []checkpoint.Certificate, bool) {
			if start != 999 {
				return nil, nil, false
			}
			select { // a stuck handler
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil, true
		}
	})

	t.Run("client deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, _, err := client.RequestBlocks(ctx, server.ID(), 999, 1)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("client cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		_, _, err := client.RequestBlocks(ctx, server.ID(), 999, 1)
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("server deadline on a silent client", func(t *testing.T) {
		impatient := newTestNetwork(t, func(c *Config) { c.Bootnodes = addrStrings(client.Network) })
		impatient.syncServeTimeout = 300 * time.Millisecond
		startNode(t, impatient)
		require.Eventually(t, func() bool { return connected(client.Network, impatient.ID()) },
			10*time.Second, 10*time.Millisecond)
		s, err := client.host.NewStream(context.Background(), impatient.ID(), impatient.syncProto)
		require.NoError(t, err)
		defer s.Close()
		// Nothing is written: the server must give up on its own. The
		// multistream header is sent with the first write, so send an
		// incomplete length prefix.
		_, err = s.Write([]byte{0x80})
		require.NoError(t, err)
		require.NoError(t, s.SetDeadline(time.Now().Add(10*time.Second)))
		var resp flarepb.SyncResponse
		require.NoError(t, readDelimited(bufio.NewReader(s), &resp, MaxSyncResponseSize))
		require.Contains(t, resp.GetError(), "malformed request")
	})

	t.Run("no connection, no dial", func(t *testing.T) {
		stranger := newTestNetwork(t, nil)
		_, err := client.RequestStatus(context.Background(), stranger.ID())
		require.Error(t, err)
		require.False(t, errors.Is(err, context.DeadlineExceeded))
		require.NotEqual(t, network.Connected, client.host.Network().Connectedness(stranger.ID()))
	})
}

func TestSyncFinalityProof(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()

	// None yet: unavailable, not an error.
	p, unavailable, err := client.RequestFinalityProof(ctx, server.ID())
	require.NoError(t, err)
	require.True(t, unavailable)
	require.Nil(t, p)

	fin := certificate(399)
	require.True(t, fin.Finalizes())
	just := certificate(400)
	proof := checkpoint.FinalityProof{Finalizing: fin, Justified: &just}
	server.h.configure(func(h *testHandler) { h.proof = &proof })
	p, unavailable, err = client.RequestFinalityProof(ctx, server.ID())
	require.NoError(t, err)
	require.False(t, unavailable)
	require.Equal(t, proof, *p, "the proof survives the round trip")

	// A proof of another chain is a bad response.
	other := proof
	other.Finalizing.Genesis[0] ^= 1
	server.h.configure(func(h *testHandler) { h.proof = &other })
	_, _, err = client.RequestFinalityProof(ctx, server.ID())
	require.ErrorIs(t, err, ErrBadResponse)
}

func voteTargets(votes []checkpoint.SignedVote) []uint64 {
	var out []uint64
	for _, v := range votes {
		out = append(out, v.Target.Number)
	}
	return out
}

func TestSyncVotesByValidator(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()
	var store []checkpoint.SignedVote
	for target := uint64(1); target <= 200; target++ {
		store = append(store, signedVote(testGenesis, int(target%2), target))
	}
	server.h.configure(func(h *testHandler) { h.voteStore = store })

	votes, unavailable, err := client.RequestVotes(ctx, server.ID(), testSet.Keys[1], 10, 4)
	require.NoError(t, err)
	require.False(t, unavailable)
	require.Equal(t, []uint64{11, 13, 15, 17}, voteTargets(votes))
	for _, v := range votes {
		require.NoError(t, testSet.VerifyVote(v), "vote does not survive the round trip")
	}
	server.h.configure(func(h *testHandler) {
		require.Equal(t, testSet.Keys[1], h.lastKey)
		require.Equal(t, uint32(4), h.lastCount)
	})

	// Clamped to MaxVotesPerRequest.
	votes, _, err = client.RequestVotes(ctx, server.ID(), testSet.Keys[0], 0, 1000)
	require.NoError(t, err)
	require.Equal(t, uint32(MaxVotesPerRequest), server.h.lastRequestCount())
	require.Len(t, votes, MaxVotesPerRequest)

	// An unknown key: unavailable.
	votes, unavailable, err = client.RequestVotes(ctx, server.ID(), testSet.Keys[3], 0, 10)
	require.NoError(t, err)
	require.True(t, unavailable)
	require.Empty(t, votes)

	// Malformed requests: refused by the server.
	_, _, err = client.RequestVotes(ctx, server.ID(), testSet.Keys[0], 0, 0)
	require.ErrorIs(t, err, ErrRemote)
	_, err = client.request(ctx, server.ID(), &flarepb.SyncRequest{Version: SyncVersion,
		Request: &flarepb.SyncRequest_Votes{Votes: &flarepb.VotesByValidator{PublicKey: testSet.Keys[0][:31], Count: 1}}})
	require.ErrorIs(t, err, ErrRemote)
	_, _, err = client.RequestVotes(ctx, server.ID(), testSet.Keys[0][:31], 0, 1)
	require.Error(t, err, "a short key is sent")
}

func TestSyncBlocksByHash(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()
	hashOf := func(b *flarepb.Block) checkpoint.Hash { return checkpoint.HashOf(headerSigningBytes(b.GetHeader())) }
	chain := server.h.chain

	blocks, unavailable, err := client.RequestBlocksByHash(ctx, server.ID(), hashOf(chain[99]), 5)
	require.NoError(t, err)
	require.False(t, unavailable)
	require.Equal(t, []uint64{100, 99, 98, 97, 96}, blockNumbers(blocks))
	require.Equal(t, hashOf(chain[99]), server.h.lastHash)
	for i, b := range blocks {
		require.True(t, proto.Equal(chain[99-i], b))
	}

	// Clamped; never below block 1.
	blocks, _, err = client.RequestBlocksByHash(ctx, server.ID(), hashOf(chain[99]), 1000)
	require.NoError(t, err)
	require.Equal(t, uint32(MaxBlocksByHashPerRequest), server.h.lastRequestCount())
	require.Len(t, blocks, MaxBlocksByHashPerRequest)
	blocks, _, err = client.RequestBlocksByHash(ctx, server.ID(), hashOf(chain[2]), 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{3, 2, 1}, blockNumbers(blocks))

	// Unknown hash: unavailable.
	blocks, unavailable, err = client.RequestBlocksByHash(ctx, server.ID(), checkpoint.HashOf([]byte("unknown")), 10)
	require.NoError(t, err)
	require.True(t, unavailable)
	require.Empty(t, blocks)

	// Malformed requests.
	_, _, err = client.RequestBlocksByHash(ctx, server.ID(), hashOf(chain[5]), 0)
	require.ErrorIs(t, err, ErrRemote)
	_, err = client.request(ctx, server.ID(), &flarepb.SyncRequest{Version: SyncVersion,
		Request: &flarepb.SyncRequest_BlocksByHash{BlocksByHash: &flarepb.BlocksByHash{Hash: make([]byte, 31), Count: 1}}})
	require.ErrorIs(t, err, ErrRemote)
}

func TestSyncBadVotesAndBlocksByHash(t *testing.T) {
	server, client := syncPair(t)
	ctx := context.Background()
	other := checkpoint.HashOf([]byte("other chain"))
	chain := testChain(20)
	wanted := checkpoint.HashOf(headerSigningBytes(chain[9].Header))
	for _, tc := range []struct {
		name   string
		votes  []checkpoint.SignedVote
		blocks []*flarepb.Block
		// raw: answered by a bare host (the flare server would never
		// send it: over the count, or a block it skips).
		raw bool
	}{
		{name: "vote below from", votes: []checkpoint.SignedVote{signedVote(testGenesis, 1, 9)}},
		{name: "votes out of order", votes: []checkpoint.SignedVote{signedVote(testGenesis, 1, 12), signedVote(testGenesis, 1, 11)}},
		{name: "votes of two validators", votes: []checkpoint.SignedVote{signedVote(testGenesis, 1, 11), signedVote(testGenesis, 2, 12)}},
		{name: "duplicate vote", votes: []checkpoint.SignedVote{signedVote(testGenesis, 1, 11), signedVote(testGenesis, 1, 11)}},
		{name: "vote of another chain", votes: []checkpoint.SignedVote{signedVote(other, 1, 11)}},
		{name: "too many votes", votes: []checkpoint.SignedVote{signedVote(testGenesis, 1, 11), signedVote(testGenesis, 1, 12), signedVote(testGenesis, 1, 13)}, raw: true},
		{name: "blocks not consecutive", blocks: []*flarepb.Block{chain[9], chain[7]}},
		{name: "blocks oldest first", blocks: []*flarepb.Block{chain[7], chain[8]}},
		{name: "block without header", blocks: []*flarepb.Block{{}}, raw: true},
		{name: "block 1 of another chain", blocks: []*flarepb.Block{testBlock(1, other)}},
		{name: "too many blocks", blocks: []*flarepb.Block{chain[9], chain[8], chain[7]}, raw: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := server.ID()
			if tc.raw {
				p = rawSyncServer(t, client, func(*flarepb.SyncRequest) *flarepb.SyncResponse {
					resp := &flarepb.SyncResponse{Version: SyncVersion, Blocks: tc.blocks}
					for _, v := range tc.votes {
						resp.Votes = append(resp.Votes, checkpoint.VoteToPB(v))
					}
					return resp
				})
			} else {
				server.h.configure(func(h *testHandler) {
					h.votesHook = func() []checkpoint.SignedVote { return tc.votes }
					h.byHashHook = func() []*flarepb.Block { return tc.blocks }
				})
			}
			var err error
			if tc.votes != nil {
				_, _, err = client.RequestVotes(ctx, p, testSet.Keys[1], 10, 2)
			} else {
				_, _, err = client.RequestBlocksByHash(ctx, p, wanted, 2)
			}
			require.ErrorIs(t, err, ErrBadResponse)
		})
	}
}

// rawSyncServer starts a bare libp2p host connected to client that answers
// every sync request with answer's response (written without a size
// limit), and returns its peer id.
func rawSyncServer(t *testing.T, client *testNode, answer func(*flarepb.SyncRequest) *flarepb.SyncResponse) peer.ID {
	t.Helper()
	hst, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
	require.NoError(t, err)
	t.Cleanup(func() { _ = hst.Close() })
	hst.SetStreamHandler(client.syncProto, func(s network.Stream) {
		defer func() { _ = s.Close() }()
		var req flarepb.SyncRequest
		if err := readDelimited(bufio.NewReader(s), &req, MaxSyncRequestSize); err != nil {
			_ = s.Reset()
			return
		}
		_ = writeDelimited(s, answer(&req), 1<<30)
	})
	require.NoError(t, hst.Connect(context.Background(), peer.AddrInfo{ID: client.ID(), Addrs: client.host.Addrs()}))
	return hst.ID()
}

// TestSyncPerKindResponseLimits: each request kind is read with its own
// limit; a status response over MaxStatusResponseSize is refused although
// it is far below MaxSyncResponseSize.
func TestSyncPerKindResponseLimits(t *testing.T) {
	client := startNode(t, newTestNetwork(t, nil))
	ctx := context.Background()
	padding := 0
	raw := rawSyncServer(t, client, func(*flarepb.SyncRequest) *flarepb.SyncResponse {
		return &flarepb.SyncResponse{Version: SyncVersion, Status: &flarepb.Status{GenesisHash: testGenesis[:],
			Best: &flarepb.Checkpoint{Number: 1, Hash: make([]byte, 32+padding)}}}
	})
	// Within the limit: the answer reaches the status checks.
	_, err := client.RequestStatus(ctx, raw)
	require.NoError(t, err)

	padding = MaxStatusResponseSize
	_, err = client.RequestStatus(ctx, raw)
	require.ErrorIs(t, err, ErrBadResponse)
	require.ErrorIs(t, err, errLimit)

	// The same oversized body is fine for a kind with a larger limit.
	_, _, err = client.RequestBlocks(ctx, raw, 1, 1)
	require.NoError(t, err)

	// Votes: 64 votes fit; the limit is far below the blocks limit.
	var votes []*flarepb.Vote
	for target := uint64(1); target <= MaxVotesPerRequest; target++ {
		votes = append(votes, checkpoint.VoteToPB(signedVote(testGenesis, 1, target)))
	}
	full := &flarepb.SyncResponse{Version: SyncVersion, Votes: votes}
	require.Less(t, proto.Size(full), MaxVotesResponseSize)
	require.Less(t, proto.Size(votes[0])+3, MaxVoteEncodedSize)
	require.Less(t, MaxVotesResponseSize, 32<<10)

	// A finality proof of two certificates of MaxCertificateSignatures
	// signatures fits its limit.
	big := certificate(399)
	for len(big.Signatures) < checkpoint.MaxCertificateSignatures {
		big.Signatures = append(big.Signatures, checkpoint.CertSignature{Validator: checkpoint.ValidatorIndex(^uint32(0) - uint32(len(big.Signatures)))})
	}
	big.SetID, big.Source.Number, big.Target.Number = ^uint64(0), ^uint64(0)-1, ^uint64(0) // the longest varints
	pc := checkpoint.CertificateToPB(big)
	require.LessOrEqual(t, proto.Size(pc), MaxCertificateEncodedSize)
	proof := &flarepb.SyncResponse{Version: SyncVersion, Unavailable: true, FinalityProof: &flarepb.FinalityProof{Finalizing: pc, Justified: pc}}
	require.LessOrEqual(t, proto.Size(proof)+binaryMaxVarint, MaxFinalityProofResponseSize)
}

const binaryMaxVarint = 10
