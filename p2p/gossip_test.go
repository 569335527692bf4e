package p2p

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

func voteEnvelope(v checkpoint.SignedVote) *flarepb.Envelope {
	return &flarepb.Envelope{Version: EnvelopeVersion, Payload: &flarepb.Envelope_Vote{Vote: checkpoint.VoteToPB(v)}}
}

func certEnvelope(c checkpoint.Certificate) *flarepb.Envelope {
	return &flarepb.Envelope{Version: EnvelopeVersion, Payload: &flarepb.Envelope_Certificate{Certificate: checkpoint.CertificateToPB(c)}}
}

func blockEnvelope(b *flarepb.Block) *flarepb.Envelope {
	return &flarepb.Envelope{Version: EnvelopeVersion, Payload: &flarepb.Envelope_Block{Block: b}}
}

func encode(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestGossipDelivery(t *testing.T) {
	for _, tc := range []struct {
		name string
		star bool
	}{{"line", false}, {"star", true}} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := newTopology(t, 4, tc.star, nil)
			warmUp(t, nodes)
			ctx := context.Background()
			// Publish from the far end (line) or a leaf (star), and from
			// an inner node.
			for i, from := range []int{3, 1} {
				target := uint64(100 + i)
				v := signedVote(testGenesis, 2, target)
				c := certificate(target)
				b := testBlock(target, checkpoint.HashOf([]byte("parent")))
				require.NoError(t, nodes[from].PublishVote(ctx, v))
				require.NoError(t, nodes[from].PublishCertificate(ctx, c))
				require.NoError(t, nodes[from].PublishBlock(ctx, b))
				require.Eventually(t, func() bool {
					for j, n := range nodes {
						if j == from {
							continue
						}
						if !n.h.acceptedVote(v) || !n.h.hasCert(target) || !n.h.hasBlock(target) {
							return false
						}
					}
					return true
				}, 10*time.Second, 10*time.Millisecond, "message from node %d not delivered everywhere", from)
				// The publisher's own handler is not called for its own messages.
				require.Zero(t, nodes[from].h.sawVote(v))
				require.False(t, nodes[from].h.hasCert(target))
			}
		})
	}
}

func TestGossipBadInput(t *testing.T) {
	const maxSize = 16 << 10
	// Line A - B - C - D; the adversary connects to B only.
	nodes := newTopology(t, 4, false, func(c *Config) { c.MaxMessageSize = maxSize })
	for _, n := range nodes {
		n.h.configure(func(h *testHandler) { h.ignoreTarget = 77 })
	}
	warmUp(t, nodes)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	otherGenesis := checkpoint.HashOf([]byte("another chain"))

	badSig := signedVote(testGenesis, 1, 50)
	badSig.Signature[0] ^= 0xff
	wrongChainVote := signedVote(otherGenesis, 1, 51)
	shortSig := voteEnvelope(signedVote(testGenesis, 1, 52))
	shortSig.GetVote().Signature = shortSig.GetVote().GetSignature()[:63]
	v2 := voteEnvelope(signedVote(testGenesis, 1, 53))
	v2.Version = 2
	badCertHash := certEnvelope(certificate(54))
	badCertHash.GetCertificate().Target.Hash = make([]byte, 31)
	wrongParent := testBlock(1, checkpoint.HashOf([]byte("not genesis")))
	ignored := signedVote(testGenesis, 1, 77)

	for i, tc := range []struct {
		name       string
		topic      string
		data       []byte
		wantRes    pubsub.ValidationResult
		wantReason rejectReason
		vote       *checkpoint.SignedVote // payload vote, if any
		handler    bool                   // the handler must see the vote
	}{
		{"garbage bytes", VotesTopic(testGenesis), []byte{0x0f, 0xde, 0xad, 0xbe, 0xef}, pubsub.ValidationReject, reasonDecode, nil, false},
		{"oversized message", BlocksTopic(testGenesis),
			encode(t, blockEnvelope(testBlock(9, checkpoint.HashOf([]byte("p")), make([]byte, maxSize+1000)))),
			pubsub.ValidationReject, reasonOversize, nil, false},
		{"wrong genesis", VotesTopic(testGenesis), encode(t, voteEnvelope(wrongChainVote)), pubsub.ValidationReject, reasonGenesis, &wrongChainVote, false},
		{"unknown version", VotesTopic(testGenesis), encode(t, v2), pubsub.ValidationReject, reasonVersion, nil, false},
		{"wrong type on topic", CertificatesTopic(testGenesis), encode(t, voteEnvelope(signedVote(testGenesis, 1, 55))), pubsub.ValidationReject, reasonWrongType, nil, false},
		{"malformed vote (short signature)", VotesTopic(testGenesis), encode(t, shortSig), pubsub.ValidationReject, reasonMalformed, nil, false},
		{"malformed certificate (short hash)", CertificatesTopic(testGenesis), encode(t, badCertHash), pubsub.ValidationReject, reasonMalformed, nil, false},
		{"block 1 not on genesis", BlocksTopic(testGenesis), encode(t, blockEnvelope(wrongParent)), pubsub.ValidationReject, reasonGenesis, nil, false},
		{"handler reject (bad signature)", VotesTopic(testGenesis), encode(t, voteEnvelope(badSig)), pubsub.ValidationReject, reasonNone, &badSig, true},
		{"handler ignore", VotesTopic(testGenesis), encode(t, voteEnvelope(ignored)), pubsub.ValidationIgnore, reasonNone, &ignored, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := newRawPeer(t, b.Network)
			genBefore := b.scoreGeneration()
			raw.publish(t, tc.topic, tc.data)

			var got []observation
			require.Eventually(t, func() bool {
				got = b.obs.find(tc.data)
				return len(got) > 0
			}, 10*time.Second, 10*time.Millisecond, "B never validated the message")
			require.Len(t, got, 1)
			require.Equal(t, raw.h.ID(), got[0].from)
			require.Equal(t, tc.wantRes, got[0].res)
			require.Equal(t, tc.wantReason, got[0].reason)
			if tc.vote != nil {
				if tc.handler {
					require.Equal(t, 1, b.h.sawVote(*tc.vote))
				} else {
					require.Zero(t, b.h.sawVote(*tc.vote), "handler called for a structurally invalid message")
				}
			}

			if tc.wantRes == pubsub.ValidationReject {
				require.Eventually(t, func() bool { return b.PeerScore(raw.h.ID()) < 0 },
					10*time.Second, 20*time.Millisecond, "sender not penalized")
			} else {
				// Two score inspections after the validation: the score
				// is fresh and must carry no penalty.
				require.Eventually(t, func() bool { return b.scoreGeneration() >= genBefore+3 },
					10*time.Second, 20*time.Millisecond)
				require.GreaterOrEqual(t, b.PeerScore(raw.h.ID()), 0.0, "ignored message penalized its sender")
			}

			// Honest traffic keeps flowing end to end, and passes B after
			// the bad message did: the bad message never reached C or D.
			marker := signedVote(testGenesis, 3, uint64(5000+i))
			require.NoError(t, a.PublishVote(context.Background(), marker))
			require.Eventually(t, func() bool { return d.h.acceptedVote(marker) && c.h.acceptedVote(marker) },
				10*time.Second, 10*time.Millisecond, "honest vote not delivered")
			require.Empty(t, c.obs.find(tc.data), "bad message forwarded to C")
			require.Empty(t, d.obs.find(tc.data), "bad message forwarded to D")
			require.Empty(t, a.obs.find(tc.data), "bad message forwarded to A")
			if tc.vote != nil {
				require.Zero(t, c.h.sawVote(*tc.vote))
			}
			if tc.wantReason != reasonNone {
				kind := map[string]topicKind{VotesTopic(testGenesis): kindVotes, BlocksTopic(testGenesis): kindBlocks, CertificatesTopic(testGenesis): kindCerts}[tc.topic]
				require.Equal(t, uint64(1), b.stats.get(kind, pubsub.ValidationReject, tc.wantReason))
			}
		})
	}
}

func TestPublishErrors(t *testing.T) {
	ctx := context.Background()
	n := newTestNetwork(t, func(c *Config) { c.MaxMessageSize = 4 << 10 })
	v := signedVote(testGenesis, 0, 3)
	require.ErrorIs(t, n.PublishVote(ctx, v), ErrNotStarted)
	node := startNode(t, n)
	require.ErrorIs(t, node.Start(ctx, node.h, node.h), ErrAlreadyStarted)

	// Accepted locally without calling the handler.
	require.NoError(t, node.PublishVote(ctx, v))
	require.Zero(t, node.h.sawVote(v))

	// The local validator runs the structural checks.
	err := node.PublishVote(ctx, signedVote(checkpoint.HashOf([]byte("x")), 0, 3))
	require.Error(t, err)
	var verr pubsub.ValidationError
	require.ErrorAs(t, err, &verr)
	require.ErrorIs(t, node.PublishBlock(ctx, testBlock(2, testGenesis, make([]byte, 5<<10))), ErrMessageTooLarge)
	require.Error(t, node.PublishBlock(ctx, nil))

	require.NoError(t, node.Close())
	require.NoError(t, node.Close())
	require.ErrorIs(t, node.PublishVote(ctx, v), ErrClosed)
	_, ok := <-node.PeerEvents()
	require.False(t, ok, "PeerEvents not closed")
}
