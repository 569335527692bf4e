package p2p

import (
	"bufio"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
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
