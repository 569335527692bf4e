package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protodelim"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// syncClient speaks the sync protocol of docs/wire.md ("Sync protocol") to
// a running node with a plain libp2p host: one length-prefixed request and
// one length-prefixed response per stream.
type syncClient struct {
	t     *testing.T
	h     host.Host
	peer  peer.ID
	proto protocol.ID
}

func newSyncClient(t *testing.T, addr string, genesis string) *syncClient {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	m, err := ma.NewMultiaddr(addr)
	require.NoError(t, err)
	info, err := peer.AddrInfoFromP2pAddr(m)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, h.Connect(ctx, *info))
	return &syncClient{t: t, h: h, peer: info.ID, proto: protocol.ID("/flare/" + genesis + "/sync/1")}
}

func (c *syncClient) do(req *flarepb.SyncRequest) *flarepb.SyncResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := c.h.NewStream(ctx, c.peer, c.proto)
	require.NoError(c.t, err)
	defer s.Close()
	_, err = protodelim.MarshalTo(s, req)
	require.NoError(c.t, err)
	var resp flarepb.SyncResponse
	require.NoError(c.t, protodelim.UnmarshalFrom(&byteReader{s}, &resp))
	require.Empty(c.t, resp.GetError())
	require.Equal(c.t, uint32(1), resp.GetVersion())
	return &resp
}

type byteReader struct {
	r interface{ Read([]byte) (int, error) }
}

func (b *byteReader) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *byteReader) ReadByte() (byte, error) {
	var one [1]byte
	for {
		n, err := b.r.Read(one[:])
		if n == 1 {
			return one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

func (c *syncClient) blocks(start uint64, count uint32) *flarepb.SyncResponse {
	return c.do(&flarepb.SyncRequest{Version: 1, Request: &flarepb.SyncRequest_Blocks{Blocks: &flarepb.BlocksByRange{Start: start, Count: count}}})
}

func (c *syncClient) certs(start uint64, count uint32) *flarepb.SyncResponse {
	return c.do(&flarepb.SyncRequest{Version: 1, Request: &flarepb.SyncRequest_Certificates{Certificates: &flarepb.CertificatesByRange{Start: start, Count: count}}})
}

// TestSyncUnavailableAsDocumented checks the `unavailable` rules of
// docs/wire.md against a running validator that prunes: ranges running past
// what the server has are answered with what it has and unavailable =
// false; unavailable = true comes with an empty answer (a start above the
// best block, a certificate range starting below the retained ones even
// when part of it is retained, a range without certificates).
func TestSyncUnavailableAsDocumented(t *testing.T) {
	s := newSandbox(t)
	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	spec.Name, spec.ID, spec.SlotDurationMs, spec.CheckpointInterval = "fast", "fast", 100, 2
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	specPath := s.write("fast.json", string(b), 0o644)
	genesis := node.GenesisHash(spec)
	p := startNode(t, s, "--chain", specPath, "--alice", "--enable-asf", "--tmp", "--listen-addr", "/ip4/127.0.0.1/tcp/0",
		"--checkpoint-retention", "3", "--checkpoint-prune-interval", "1s")
	listen := p.waitLog("Listening on /ip4/127.0.0.1/")
	p.waitLog("Pruned old checkpoints")
	c := newSyncClient(t, listen["addr"].(string), hex.EncodeToString(genesis[:]))

	st := c.do(&flarepb.SyncRequest{Version: 1, Request: &flarepb.SyncRequest_Status{Status: &flarepb.StatusRequest{}}})
	require.False(t, st.GetUnavailable())
	best, fin := st.GetStatus().GetBest().GetNumber(), st.GetStatus().GetFinalized().GetNumber()
	require.Greater(t, fin, uint64(3))

	// Blocks: a range past the best block gives the blocks up to it.
	r := c.blocks(best-2, 128)
	require.False(t, r.GetUnavailable())
	require.GreaterOrEqual(t, len(r.GetBlocks()), 3)
	require.Equal(t, best-2, r.GetBlocks()[0].GetHeader().GetNumber())
	// A start above the best block: nothing, unavailable.
	r = c.blocks(best+1000, 10)
	require.True(t, r.GetUnavailable())
	require.Empty(t, r.GetBlocks())
	// The genesis block is never transmitted: a range from 0 starts at 1.
	r = c.blocks(0, 2)
	require.False(t, r.GetUnavailable())
	require.Len(t, r.GetBlocks(), 1)
	require.Equal(t, uint64(1), r.GetBlocks()[0].GetHeader().GetNumber())
	// Block 1 onwards: never the genesis block.
	r = c.blocks(1, 3)
	require.False(t, r.GetUnavailable())
	require.Len(t, r.GetBlocks(), 3)
	require.Equal(t, uint64(1), r.GetBlocks()[0].GetHeader().GetNumber())

	// Certificates: the finalized checkpoint is retained.
	r = c.certs(fin, 256)
	require.False(t, r.GetUnavailable())
	require.NotEmpty(t, r.GetCertificates())
	require.Equal(t, fin, r.GetCertificates()[0].GetTarget().GetNumber())
	// A range starting below the retained checkpoints is unavailable and
	// empty, although it reaches retained ones.
	r = c.certs(0, 256)
	require.True(t, r.GetUnavailable())
	require.Empty(t, r.GetCertificates())
	// Above everything stored: unavailable, empty.
	r = c.certs(fin+10_000, 10)
	require.True(t, r.GetUnavailable())
	require.Empty(t, r.GetCertificates())

	// Finality proof (FinalityProofRequest): the finalizing certificate
	// links the finalized checkpoint to its successor.
	r = c.do(&flarepb.SyncRequest{Version: 1, Request: &flarepb.SyncRequest_FinalityProof{FinalityProof: &flarepb.FinalityProofRequest{}}})
	require.False(t, r.GetUnavailable())
	fp := r.GetFinalityProof()
	require.NotNil(t, fp)
	f := fp.GetFinalizing()
	require.Equal(t, f.GetSource().GetNumber()+1, f.GetTarget().GetNumber())
	require.GreaterOrEqual(t, f.GetSource().GetNumber(), fin)
	if j := fp.GetJustified(); j != nil {
		require.Greater(t, j.GetTarget().GetNumber(), f.GetSource().GetNumber())
		require.GreaterOrEqual(t, j.GetSource().GetNumber(), f.GetSource().GetNumber())
	}
	require.True(t, strings.HasPrefix(string(c.proto), "/flare/"))
	require.Equal(t, 0, p.stop(syscall.SIGINT))
}
