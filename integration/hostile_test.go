package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/p2p"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// sendHostileTraffic connects a raw libp2p/gossipsub peer (no validators of
// its own) to the first node and publishes every kind of bad message from
// the bad-input matrix: garbage, oversized, unknown version, wrong type on a
// topic, wrong chain, malformed and badly signed votes, a certificate below
// quorum, and replays of a captured valid vote. The caller checks that the
// honest nodes keep finalizing. Which verdict each case gets, and that the
// sender's score drops, is asserted by p2p's bad-input matrix tests.
func sendHostileTraffic(t *testing.T, ln *localNet) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target, err := peer.AddrInfoFromP2pAddr(ma.StringCast(ln.addrs[0]))
	require.NoError(t, err)
	genesis := node.GenesisHash(ln.spec)
	// rawPeer is a bare host with a gossipsub speaking the nodes' message
	// format (no pubsub signature, no author) but validating nothing.
	rawPeer := func() (*pubsub.PubSub, func(string) *pubsub.Topic) {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport))
		require.NoError(t, err)
		t.Cleanup(func() { _ = h.Close() })
		ps, err := pubsub.NewGossipSub(ctx, h,
			pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
			pubsub.WithNoAuthor(),
			pubsub.WithMaxMessageSize(4<<20))
		require.NoError(t, err)
		require.NoError(t, h.Connect(ctx, *target))
		return ps, func(name string) *pubsub.Topic {
			tp, err := ps.Join(name)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return slices.Contains(tp.ListPeers(), target.ID) },
				10*time.Second, 10*time.Millisecond, "node never announced its topic subscription")
			return tp
		}
	}
	// The attacker never subscribes, so its publishes go straight to the
	// node (fanout) rather than waiting for a mesh the node may never graft
	// it into; a separate spy subscribes to capture a real vote to replay.
	_, join := rawPeer()
	votes, certs, blocks := join(p2p.VotesTopic(genesis)), join(p2p.CertificatesTopic(genesis)), join(p2p.BlocksTopic(genesis))
	_, spyJoin := rawPeer()
	sub, err := spyJoin(p2p.VotesTopic(genesis)).Subscribe()
	require.NoError(t, err)
	defer sub.Cancel()
	// Capture one real vote to replay later.
	var captured []byte
	require.Eventually(t, func() bool {
		mctx, mcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer mcancel()
		m, err := sub.Next(mctx)
		if err != nil {
			return false
		}
		captured = m.Data
		return true
	}, 30*time.Second, 10*time.Millisecond, "no vote gossip seen by the hostile peer")

	env := func(e *flarepb.Envelope) []byte {
		b, err := proto.Marshal(e)
		require.NoError(t, err)
		return b
	}
	cp := func(n uint64) *flarepb.Checkpoint {
		h := checkpoint.HashOf([]byte{byte(n)})
		return &flarepb.Checkpoint{Number: n, Hash: h[:]}
	}
	// A target inside the node's voting window, so that the bad signature is
	// actually checked (and rejected) rather than ignored as old.
	fin := uint64(metricValue(t, ln.metrics[0], "flare_finality_finalized_checkpoint"))
	other := checkpoint.HashOf([]byte("another chain"))
	vote := func(g []byte, s []byte) *flarepb.Envelope {
		return &flarepb.Envelope{Version: 1, Payload: &flarepb.Envelope_Vote{Vote: &flarepb.Vote{
			GenesisHash: g, SetId: ln.spec.SetID, Source: cp(fin + 1), Target: cp(fin + 8), Validator: 1, Signature: s}}}
	}
	// First a well-formed vote with a bad signature: it passes every cheap
	// check, so the node's gadget verifies and rejects it. (Sent first
	// because the invalid messages below soon get this peer graylisted,
	// after which the node drops everything it sends.)
	rejected := `flare_finality_messages_total{kind="vote",verdict="reject"}`
	rejectedBefore := metricValue(t, ln.metrics[0], rejected)
	badSig := make([]byte, 64)
	_, _ = rand.Read(badSig)
	require.NoError(t, votes.Publish(ctx, env(vote(genesis[:], badSig))))
	require.Eventually(t, func() bool {
		return metricValue(t, ln.metrics[0], rejected) > rejectedBefore
	}, 20*time.Second, 50*time.Millisecond, "the badly signed vote was not rejected by the gadget")
	for round := 0; round < 20; round++ {
		// Every round's messages differ (fresh random bytes), so gossipsub's
		// seen-cache does not drop them as duplicates.
		sig := make([]byte, 64)
		_, _ = rand.Read(sig)
		big := make([]byte, 600<<10)
		_, _ = rand.Read(big)
		bad := []struct {
			topic *pubsub.Topic
			data  []byte
		}{
			{votes, append([]byte("garbage \x00\x01\x02"), sig...)},
			{votes, big},
			{votes, env(&flarepb.Envelope{Version: 99, Payload: vote(genesis[:], sig).Payload})},
			{blocks, env(vote(genesis[:], sig))},     // wrong type on the topic
			{votes, env(vote(other[:], sig))},        // wrong chain
			{votes, env(vote(genesis[:], sig[:10]))}, // malformed signature
			{votes, env(vote(genesis[:], sig))},      // bad signature
			{certs, env(&flarepb.Envelope{Version: 1, Payload: &flarepb.Envelope_Certificate{Certificate: &flarepb.Certificate{
				GenesisHash: genesis[:], SetId: ln.spec.SetID, Source: cp(fin), Target: cp(fin + 2),
				Signatures: []*flarepb.CertificateSignature{{Validator: 0, Signature: sig}}}}})}, // below quorum
		}
		for _, b := range bad {
			_ = b.topic.Publish(ctx, b.data)
		}
		_ = votes.Publish(ctx, captured) // replay of a valid vote
	}
}

// metricValue reads one sample from a node's /metrics: name is the metric
// name with its labels exactly as exposed (sorted by label name).
func metricValue(t *testing.T, port int, name string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestSlotFloodByOneAuthority: a hostile peer holding one authority's key
// (dave's public dev key; dave itself is not running) publishes 300
// distinct, validly signed blocks for one of dave's slots. Each node
// imports one (the first it sees), stores the equivocation as evidence
// once, relays no second one, and the three honest validators keep
// finalizing.
func TestSlotFloodByOneAuthority(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	ln := newLocalNet(t, 250, 1, 0)
	honest := []int{0, 1, 2}
	for _, i := range honest {
		ln.start(i)
	}
	ln.waitFinalized(5, 60*time.Second, honest...)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	genesis := node.GenesisHash(ln.spec)
	target, err := peer.AddrInfoFromP2pAddr(ma.StringCast(ln.addrs[0]))
	require.NoError(t, err)
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport))
	require.NoError(t, err)
	defer h.Close()
	// Content-hash message ids like the nodes': without them every
	// author-less message has the same id and the sender's own seen-cache
	// drops all but the first.
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMaxMessageSize(4<<20), pubsub.WithMessageIdFn(func(m *pubsubpb.Message) string {
			sum := checkpoint.HashOf(m.GetData())
			return string(sum[:])
		}))
	require.NoError(t, err)
	require.NoError(t, h.Connect(ctx, *target))
	blocks, err := ps.Join(p2p.BlocksTopic(genesis))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return slices.Contains(blocks.ListPeers(), target.ID) }, 10*time.Second, 10*time.Millisecond)

	dave, err := chainspec.DevKey("dave")
	require.NoError(t, err)
	const daveIndex = 3
	n := uint64(len(ln.spec.Authorities))
	// Dave's next slot, a little ahead.
	slot := asf.SlotAt(ln.spec, time.Now()) + 2
	for slot%n != daveIndex {
		slot++
	}
	time.Sleep(time.Until(asf.SlotStart(ln.spec, slot)))
	var st struct {
		Best     uint64 `json:"best"`
		BestHash string `json:"best_hash"`
	}
	body, err := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/status", ln.metrics[0]))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	parent, err := checkpoint.ParseHash(st.BestHash)
	require.NoError(t, err)
	const copies = 300
	// Every copy is a valid block: one self-transfer of dave's with its own
	// amount, executed on the parent's state (the genesis state: nobody sent
	// anything on this network), so each is a distinct, importable block.
	genesisRoot, err := state.GenesisRoot(ln.spec)
	require.NoError(t, err)
	var blk struct {
		StateRoot string `json:"state_root"`
	}
	body, err = httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/blocks/%s", ln.metrics[0], st.BestHash))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(body), &blk))
	require.Equal(t, genesisRoot.String(), blk.StateRoot, "the parent's state is the genesis state")
	sdb, err := pebble.Open(t.TempDir(), &pebble.Options{})
	require.NoError(t, err)
	defer sdb.Close()
	st8 := state.Open(sdb, nil)
	wb := sdb.NewBatch()
	_, err = st8.WriteGenesis(ln.spec, wb, genesis)
	require.NoError(t, err)
	require.NoError(t, wb.Commit(pebble.Sync))
	daveAddr := tx.AddressOf(dave.Public().(ed25519.PublicKey))
	for i := range copies {
		x := &tx.Tx{Genesis: genesis, To: daveAddr, Amount: uint64(i), Fee: ln.spec.MinFee}
		x.Sign(dave)
		b := asf.Block{Header: asf.Header{ParentHash: parent, Number: st.Best + 1, Slot: slot, Proposer: daveIndex,
			TimestampMs: uint64(asf.SlotStart(ln.spec, slot).UnixMilli())},
			Extrinsics: [][]byte{x.Encode()}}
		res, err := st8.Execute(genesisRoot, state.Env{Genesis: genesis, MinFee: ln.spec.MinFee, Number: st.Best + 1, Proposer: daveAddr}, b.Extrinsics, nil)
		require.NoError(t, err)
		b.Header.StateRoot = res.Root
		b.Header.BodyRoot = asf.BodyRoot(b.Extrinsics)
		b.Header.Sign(dave)
		data, err := proto.Marshal(&flarepb.Envelope{Version: 1, Payload: &flarepb.Envelope_Block{Block: asf.BlockToPB(b)}})
		require.NoError(t, err)
		require.NoError(t, blocks.Publish(ctx, data))
		// Paced below gossipsub's per-peer outbound queue (32 messages),
		// which would otherwise drop most of them at the sender.
		time.Sleep(2 * time.Millisecond)
	}
	f := ln.maxFinalized(honest...)
	ln.waitFinalized(f+5, 60*time.Second, honest...)
	reEquivocation := regexp.MustCompile(`^Proposer equivocation`)
	for _, i := range honest {
		p := ln.procs[i]
		recorded := 0
		for _, l := range p.all(reEquivocation) {
			if s, _ := l.Fields["slot"].(float64); uint64(s) == slot {
				recorded++
			}
		}
		require.LessOrEqual(t, recorded, 1, "%s: evidence for one (proposer, slot) is recorded once", p.name)
	}
	// At least the node the flood was sent to saw the equivocation.
	p0 := ln.procs[0]
	require.Eventually(t, func() bool { return len(p0.all(reEquivocation)) > 0 }, 10*time.Second, 50*time.Millisecond,
		"the equivocating copies were not recorded as evidence")
	for _, i := range honest {
		ln.stop(i)
	}
	for name, votes := range ln.votes {
		requireNoConflicts(t, votes)
		t.Logf("%s released %d votes", name, len(votes))
	}
}
