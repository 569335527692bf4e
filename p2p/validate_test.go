package p2p

import (
	"bufio"
	"bytes"
	"context"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

func TestCheckEnvelope(t *testing.T) {
	const maxSize = 4 << 10
	other := checkpoint.HashOf([]byte("other"))
	vote := signedVote(testGenesis, 1, 5)
	cert := certificate(6)
	block := testBlock(7, checkpoint.HashOf([]byte("parent")))
	first := testBlock(1, testGenesis)

	mutVote := func(f func(*flarepb.Vote)) []byte {
		e := voteEnvelope(vote)
		f(e.GetVote())
		return encode(t, e)
	}
	mutCert := func(f func(*flarepb.Certificate)) []byte {
		e := certEnvelope(cert)
		f(e.GetCertificate())
		return encode(t, e)
	}
	mutBlock := func(b *flarepb.Block, f func(*flarepb.BlockHeader)) []byte {
		b = proto.Clone(b).(*flarepb.Block)
		f(b.GetHeader())
		return encode(t, blockEnvelope(b))
	}

	for _, tc := range []struct {
		name string
		kind topicKind
		data []byte
		want rejectReason
	}{
		{"vote", kindVotes, encode(t, voteEnvelope(vote)), reasonNone},
		{"certificate", kindCerts, encode(t, certEnvelope(cert)), reasonNone},
		{"block", kindBlocks, encode(t, blockEnvelope(block)), reasonNone},
		{"block 1 on genesis", kindBlocks, encode(t, blockEnvelope(first)), reasonNone},

		{"oversized", kindVotes, make([]byte, maxSize+1), reasonOversize},
		{"oversized valid envelope", kindBlocks, encode(t, blockEnvelope(testBlock(7, testGenesis, make([]byte, maxSize)))), reasonOversize},
		{"garbage", kindVotes, []byte{0x0f, 0xde, 0xad}, reasonDecode},
		{"truncated", kindVotes, encode(t, voteEnvelope(vote))[:20], reasonDecode},
		{"empty", kindVotes, nil, reasonVersion},
		{"version 0", kindVotes, encode(t, &flarepb.Envelope{Payload: &flarepb.Envelope_Vote{Vote: checkpoint.VoteToPB(vote)}}), reasonVersion},
		{"version 2", kindVotes, encode(t, &flarepb.Envelope{Version: 2, Payload: &flarepb.Envelope_Vote{Vote: checkpoint.VoteToPB(vote)}}), reasonVersion},
		{"no payload", kindVotes, encode(t, &flarepb.Envelope{Version: 1}), reasonWrongType},
		{"vote on certs", kindCerts, encode(t, voteEnvelope(vote)), reasonWrongType},
		{"vote on blocks", kindBlocks, encode(t, voteEnvelope(vote)), reasonWrongType},
		{"certificate on votes", kindVotes, encode(t, certEnvelope(cert)), reasonWrongType},
		{"block on votes", kindVotes, encode(t, blockEnvelope(block)), reasonWrongType},
		{"vote of another chain", kindVotes, encode(t, voteEnvelope(signedVote(other, 1, 5))), reasonGenesis},
		{"vote without genesis", kindVotes, mutVote(func(v *flarepb.Vote) { v.GenesisHash = nil }), reasonGenesis},
		{"certificate of another chain", kindCerts, mutCert(func(c *flarepb.Certificate) { c.GenesisHash = other[:] }), reasonGenesis},
		{"block 1 not on genesis", kindBlocks, mutBlock(first, func(h *flarepb.BlockHeader) { h.ParentHash = other[:] }), reasonGenesis},
		{"vote short signature", kindVotes, mutVote(func(v *flarepb.Vote) { v.Signature = v.Signature[:63] }), reasonMalformed},
		{"vote without target", kindVotes, mutVote(func(v *flarepb.Vote) { v.Target = nil }), reasonMalformed},
		{"vote short source hash", kindVotes, mutVote(func(v *flarepb.Vote) { v.Source.Hash = v.Source.Hash[:31] }), reasonMalformed},
		{"certificate nil signature entry", kindCerts, mutCert(func(c *flarepb.Certificate) { c.Signatures[1].Signature = nil }), reasonMalformed},
		{"certificate without source", kindCerts, mutCert(func(c *flarepb.Certificate) { c.Source = nil }), reasonMalformed},
		{"block without header", kindBlocks, encode(t, blockEnvelope(&flarepb.Block{})), reasonMalformed},
		{"block 0", kindBlocks, mutBlock(block, func(h *flarepb.BlockHeader) { h.Number = 0 }), reasonMalformed},
		{"block short parent", kindBlocks, mutBlock(block, func(h *flarepb.BlockHeader) { h.ParentHash = h.ParentHash[:31] }), reasonMalformed},
		{"block short body root", kindBlocks, mutBlock(block, func(h *flarepb.BlockHeader) { h.BodyRoot = nil }), reasonMalformed},
		{"block long signature", kindBlocks, mutBlock(block, func(h *flarepb.BlockHeader) { h.Signature = append(h.Signature, 0) }), reasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, reason := checkEnvelope(tc.data, tc.kind, testGenesis, maxSize)
			require.Equal(t, tc.want, reason)
			if tc.want != reasonNone {
				require.Equal(t, payload{}, p)
				return
			}
			switch tc.kind {
			case kindVotes:
				require.Equal(t, vote, *p.vote)
			case kindCerts:
				require.Equal(t, cert, *p.cert)
			case kindBlocks:
				require.NotNil(t, p.block)
			}
		})
	}
}

func TestDelimitedFraming(t *testing.T) {
	req := &flarepb.SyncRequest{Version: 1, Request: &flarepb.SyncRequest_Blocks{Blocks: &flarepb.BlocksByRange{Start: 300, Count: 5}}}
	var buf bytes.Buffer
	require.NoError(t, writeDelimited(&buf, req, MaxSyncRequestSize))
	body, err := proto.Marshal(req)
	require.NoError(t, err)
	require.Equal(t, append([]byte{byte(len(body))}, body...), buf.Bytes(), "one uvarint length byte, then the message")
	var got flarepb.SyncRequest
	require.NoError(t, readDelimited(bufio.NewReader(&buf), &got, MaxSyncRequestSize))
	require.True(t, proto.Equal(req, &got))

	require.ErrorIs(t, writeDelimited(&buf, req, 3), ErrMessageTooLarge)
	require.ErrorIs(t, readDelimited(bufio.NewReader(bytes.NewReader([]byte{0x81, 0x08})), &got, 1024), errLimit)
	require.Error(t, readDelimited(bufio.NewReader(bytes.NewReader([]byte{10, 1, 2})), &got, 1024), "short body")
	require.Error(t, readDelimited(bufio.NewReader(bytes.NewReader(nil)), &got, 1024), "no length")
}

func TestCheckRange(t *testing.T) {
	for _, tc := range []struct {
		name        string
		start       uint64
		count       uint32
		wantCount   uint32
		wantProblem bool
	}{
		{"plain", 5, 10, 10, false},
		{"at limit", 5, 128, 128, false},
		{"clamped", 5, 129, 128, false},
		{"max clamped", 0, ^uint32(0), 128, false},
		{"zero", 5, 0, 0, true},
		{"overflow", ^uint64(0) - 5, 10, 0, true},
		{"last block", ^uint64(0) - 10, 10, 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, count, problem := checkRange(tc.start, tc.count, 128)
			require.Equal(t, tc.wantProblem, problem != "")
			if !tc.wantProblem {
				require.Equal(t, tc.start, start)
				require.Equal(t, tc.wantCount, count)
			}
		})
	}
}

func TestConnectionLimit(t *testing.T) {
	n := newTestNetwork(t, func(c *Config) { c.MaxPeers = 2 })
	startNode(t, n)
	target := peer.AddrInfo{ID: n.ID(), Addrs: n.host.Addrs()}
	ok, refused := 0, 0
	for range 12 {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
		require.NoError(t, err)
		t.Cleanup(func() { _ = h.Close() })
		if err := h.Connect(context.Background(), target); err != nil {
			refused++
			continue
		}
		ok++
	}
	require.Positive(t, refused, "resource manager admitted every connection")
	require.LessOrEqual(t, ok, 2+4, "more inbound connections than MaxPeers+4")
	require.LessOrEqual(t, len(n.Peers()), 2+4)
}
