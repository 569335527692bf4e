package p2p

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// TestCheckTransactionEnvelope: the structural steps of the transactions
// topic, in order.
func TestCheckTransactionEnvelope(t *testing.T) {
	other := checkpoint.HashOf([]byte("other"))
	good := signedTx(testGenesis, 0, 5, 1)
	raw := good.Encode()
	env := transactionEnvelope(raw)
	// proto.Marshal of the Envelope gives the same bytes.
	require.Equal(t, encode(t, &flarepb.Envelope{Version: 1, Payload: &flarepb.Envelope_Transaction{Transaction: good.ToPB()}}), env)
	require.Equal(t, []byte{0x08, 0x01, 0x2a, byte(len(raw))}, env[:4])

	withTx := func(b []byte) []byte { return transactionEnvelope(b) }
	padded := append(append([]byte{}, env...), protowire.AppendBytes(protowire.AppendTag(nil, 15, protowire.BytesType), make([]byte, MaxTransactionEnvelopeSize))...)
	unknownInTx := append(append([]byte{}, raw...), 0x40, 0x01) // field 8 varint
	zeroNonceExplicit := func() []byte {
		// nonce 0 written explicitly: decodes to the same transaction, but
		// is not the canonical encoding.
		b := append([]byte{}, raw[:len(raw)-66]...)
		b = append(b, 0x30, 0x00)
		return append(b, raw[len(raw)-66:]...)
	}()
	shortSig := signedTx(testGenesis, 0, 5, 1).ToPB()
	shortSig.Signature = shortSig.Signature[:63]
	v2 := append([]byte{0x08, 0x02}, env[2:]...)
	unknownInEnvelope := append(append([]byte{}, env...), 0x78, 0x01) // field 15 varint

	for _, tc := range []struct {
		name string
		kind topicKind
		data []byte
		want rejectReason
	}{
		{"transaction", kindTxs, env, reasonNone},
		{"unknown envelope field", kindTxs, unknownInEnvelope, reasonNone},
		{"oversized", kindTxs, padded, reasonOversize},
		{"513 bytes", kindTxs, make([]byte, MaxTransactionEnvelopeSize+1), reasonOversize},
		{"garbage", kindTxs, []byte{0x0f, 0xde, 0xad}, reasonDecode},
		{"truncated", kindTxs, env[:len(env)-1], reasonDecode},
		{"version 2", kindTxs, v2, reasonVersion},
		{"no payload", kindTxs, []byte{0x08, 0x01}, reasonWrongType},
		{"vote on txs", kindTxs, encode(t, voteEnvelope(signedVote(testGenesis, 1, 5))), reasonWrongType},
		{"transaction on votes", kindVotes, env, reasonWrongType},
		{"transaction on blocks", kindBlocks, env, reasonWrongType},
		{"transaction twice", kindTxs, append(append([]byte{}, env...), env[2:]...), reasonMalformed},
		{"unknown field in transaction", kindTxs, withTx(unknownInTx), reasonMalformed},
		{"non-canonical transaction", kindTxs, withTx(zeroNonceExplicit), reasonMalformed},
		{"short signature", kindTxs, withTx(encode(t, shortSig)), reasonMalformed},
		{"transaction of another chain", kindTxs, transactionEnvelope(signedTx(other, 0, 5, 1).Encode()), reasonGenesis},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, reason := checkEnvelope(tc.data, tc.kind, testGenesis, DefaultMaxMessageSize)
			require.Equal(t, tc.want, reason)
			if tc.want != reasonNone {
				require.Equal(t, payload{}, p)
				return
			}
			require.Equal(t, *good, *p.tx)
		})
	}
	var e flarepb.Envelope
	require.NoError(t, proto.Unmarshal(zeroNonceExplicit, new(flarepb.Transaction)), "the non-canonical form is valid protobuf")
	require.NoError(t, proto.Unmarshal(padded, &e))
}

// TestTxLimiter: the token bucket, the sustained-excess strike (once per
// window) and its score, and the pruning of idle buckets.
func TestTxLimiter(t *testing.T) {
	l := newTxLimiter(100, 200, 50, 4)
	now := time.Unix(1_700_000_000, 0)
	a, b := peer.ID("a"), peer.ID("b")
	count := func(p peer.ID, n int, at time.Time) (pass, ignore, reject int) {
		for range n {
			switch l.allow(p, at) {
			case limitPass:
				pass++
			case limitIgnore:
				ignore++
			default:
				reject++
			}
		}
		return
	}
	// The burst passes, then 50 tokenless messages are ignored, the 51st
	// earns a strike, the rest of the window is ignored.
	pass, ignore, reject := count(a, 400, now)
	require.Equal(t, [3]int{200, 199, 1}, [3]int{pass, ignore, reject})
	// Another peer has its own bucket.
	pass, _, _ = count(b, 10, now)
	require.Equal(t, 10, pass)
	// 100 ms later: 10 tokens; the excess window is still the same.
	pass, ignore, reject = count(a, 20, now.Add(100*time.Millisecond))
	require.Equal(t, [3]int{10, 10, 0}, [3]int{pass, ignore, reject})
	require.InDelta(t, -10, l.score(a, now), 0.001)
	require.Zero(t, l.score(b, now))
	// A second later: 100 new tokens and a new window, again 50 ignored
	// before a strike: two strikes, -10 * 2^2 (minus a second of decay).
	pass, ignore, reject = count(a, 200, now.Add(1100*time.Millisecond))
	require.Equal(t, [3]int{100, 99, 1}, [3]int{pass, ignore, reject})
	require.InDelta(t, -40, l.score(a, now.Add(1100*time.Millisecond)), 0.5)
	// Strikes halve in 90 s.
	require.InDelta(t, -10, l.score(a, now.Add(1100*time.Millisecond+90*time.Second)), 0.2)
	// A peer within its rate is never limited.
	c := peer.ID("c")
	for i := range 1000 {
		require.Equal(t, limitPass, l.allow(c, now.Add(time.Duration(i)*10*time.Millisecond)))
	}
	// Idle buckets are pruned when the map is full; active ones stay, and so
	// do struck ones until their strikes decayed (10 minutes).
	l.allow(peer.ID("h"), now.Add(time.Minute))
	for _, p := range []peer.ID{"i", "j", "k", "l", "m"} {
		l.allow(p, now.Add(2*time.Minute))
	}
	require.NotZero(t, l.score(a, now.Add(2*time.Minute)), "a struck peer is not pruned")
	later := now.Add(time.Hour)
	for _, p := range []peer.ID{"d", "e", "f", "g"} {
		l.allow(p, later)
	}
	require.LessOrEqual(t, l.size(), 5)
	require.Equal(t, limitPass, l.allow(a, later), "a pruned bucket is a full bucket")
}

// txWarmUp publishes fresh transactions from every node until every other
// node accepted one (the transactions meshes formed).
func txWarmUp(t testing.TB, nodes []*testNode, nonce *uint64) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for origin := range nodes {
		for done := false; !done; *nonce++ {
			require.True(t, time.Now().Before(deadline), "transaction meshes did not form")
			x := signedTx(testGenesis, *nonce, 1, 1)
			require.NoError(t, nodes[origin].PublishTransaction(ctx, x))
			for wait := time.Now().Add(time.Second); !done && time.Now().Before(wait); {
				time.Sleep(10 * time.Millisecond)
				done = true
				for i, n := range nodes {
					if i != origin {
						done = done && n.h.acceptedTx(x.Hash())
					}
				}
			}
		}
	}
}

// TestTransactionGossip: a transaction published by one host reaches the
// handler of every other host of a line (relayed hop by hop), never the
// publisher's own handler.
func TestTransactionGossip(t *testing.T) {
	nodes := newTopology(t, 4, false, nil)
	nonce := uint64(1000)
	txWarmUp(t, nodes, &nonce)
	ctx := context.Background()
	for _, from := range []int{0, 3, 1} {
		x := signedTx(testGenesis, nonce, 7, 2)
		nonce++
		require.NoError(t, nodes[from].PublishTransaction(ctx, x))
		require.Eventually(t, func() bool {
			for i, n := range nodes {
				if i != from && !n.h.acceptedTx(x.Hash()) {
					return false
				}
			}
			return true
		}, 10*time.Second, 10*time.Millisecond, "transaction from node %d not delivered everywhere", from)
		require.Zero(t, nodes[from].h.sawTx(x.Hash()))
		for i, n := range nodes {
			if i != from {
				require.Equal(t, 1, n.h.sawTx(x.Hash()), "node %d validated the transaction more than once", i)
			}
		}
	}
	require.Error(t, nodes[0].PublishTransaction(ctx, nil))
	// The local validator runs the structural checks: another chain's
	// transaction is not published.
	require.Error(t, nodes[0].PublishTransaction(ctx, signedTx(checkpoint.HashOf([]byte("x")), 1, 1, 1)))
}

// TestTransactionGossipBadInput: hostile inputs on the transactions topic
// get their verdict (reject with a penalty, or ignore without one), never
// reach the handler when structurally invalid, and are never forwarded.
func TestTransactionGossipBadInput(t *testing.T) {
	nodes := newTopology(t, 3, false, nil)
	for _, n := range nodes {
		n.h.configure(func(h *testHandler) { h.txIgnoreAmount = 77 })
	}
	nonce := uint64(5000)
	txWarmUp(t, nodes, &nonce)
	a, b, c := nodes[0], nodes[1], nodes[2]

	badSig := signedTx(testGenesis, 1, 5, 1)
	badSig.Signature[0] ^= 0xff
	zeroFee := signedTx(testGenesis, 2, 5, 0)
	ignored := signedTx(testGenesis, 3, 77, 1)
	env := transactionEnvelope(signedTx(testGenesis, 4, 5, 1).Encode())
	oversized := append(append([]byte{}, env...), protowire.AppendBytes(protowire.AppendTag(nil, 15, protowire.BytesType), make([]byte, 600))...)
	nonCanonical := signedTx(testGenesis, 5, 5, 1).Encode()
	nonCanonical = append(nonCanonical, 0x40, 0x01)

	for i, tc := range []struct {
		name       string
		data       []byte
		wantRes    pubsub.ValidationResult
		wantReason rejectReason
		tx         *tx.Tx // payload reaching the handler, if any
	}{
		{"garbage", []byte{0x0f, 0xde, 0xad, 0xbe, 0xef}, pubsub.ValidationReject, reasonDecode, nil},
		{"oversized", oversized, pubsub.ValidationReject, reasonOversize, nil},
		{"vote on the transactions topic", encode(t, voteEnvelope(signedVote(testGenesis, 1, 9))), pubsub.ValidationReject, reasonWrongType, nil},
		{"non-canonical transaction", transactionEnvelope(nonCanonical), pubsub.ValidationReject, reasonMalformed, nil},
		{"another chain", transactionEnvelope(signedTx(checkpoint.HashOf([]byte("x")), 6, 5, 1).Encode()), pubsub.ValidationReject, reasonGenesis, nil},
		{"handler reject (bad signature)", transactionEnvelope(badSig.Encode()), pubsub.ValidationReject, reasonNone, badSig},
		{"handler reject (fee too low)", transactionEnvelope(zeroFee.Encode()), pubsub.ValidationReject, reasonNone, zeroFee},
		{"handler ignore", transactionEnvelope(ignored.Encode()), pubsub.ValidationIgnore, reasonNone, ignored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := newRawPeer(t, b.Network)
			genBefore := b.scoreGeneration()
			raw.publish(t, TransactionsTopic(testGenesis), tc.data)
			var got []observation
			require.Eventually(t, func() bool {
				got = b.obs.find(tc.data)
				return len(got) > 0
			}, 10*time.Second, 10*time.Millisecond, "B never validated the message")
			require.Len(t, got, 1)
			require.Equal(t, tc.wantRes, got[0].res)
			require.Equal(t, tc.wantReason, got[0].reason)
			if tc.tx != nil {
				require.Equal(t, 1, b.h.sawTx(tc.tx.Hash()))
			}
			if tc.wantRes == pubsub.ValidationReject {
				require.Eventually(t, func() bool { return b.PeerScore(raw.h.ID()) < 0 },
					10*time.Second, 20*time.Millisecond, "sender not penalized")
				require.InDelta(t, invalidMessageWeight, b.PeerScore(raw.h.ID()), 1.5, "one invalid transaction: about -10")
			} else {
				require.Eventually(t, func() bool { return b.scoreGeneration() >= genBefore+3 },
					10*time.Second, 20*time.Millisecond)
				require.GreaterOrEqual(t, b.PeerScore(raw.h.ID()), 0.0, "ignored transaction penalized its sender")
			}
			// Honest transactions keep flowing; the bad one went no further.
			marker := signedTx(testGenesis, uint64(9000+i), 1, 1)
			require.NoError(t, a.PublishTransaction(context.Background(), marker))
			require.Eventually(t, func() bool { return c.h.acceptedTx(marker.Hash()) }, 10*time.Second, 10*time.Millisecond)
			require.Empty(t, c.obs.find(tc.data), "bad message forwarded to C")
			require.Empty(t, a.obs.find(tc.data), "bad message forwarded to A")
			if tc.wantReason != reasonNone {
				require.Equal(t, uint64(1), b.stats.get(kindTxs, pubsub.ValidationReject, tc.wantReason))
			}
		})
	}
}

// TestTransactionRateLimit: a peer flooding the transactions topic beyond
// its token bucket has the excess ignored (counted), and once the excess is
// sustained it earns strikes (its application-specific score) until it is
// graylisted, while honest transactions and votes from other peers still
// flow.
func TestTransactionRateLimit(t *testing.T) {
	nodes := newTopology(t, 2, false, nil)
	a, b := nodes[0], nodes[1]
	// A small bucket so that the test floods quickly: 50/s, burst 100, a
	// reject after 50 tokenless messages per second.
	b.txLimit.reconfigure(50, 100, 50, 16)
	nonce := uint64(20_000)
	txWarmUp(t, nodes, &nonce)

	raw := newRawPeer(t, b.Network)
	vote := signedVote(testGenesis, 2, 31)
	raw.publish(t, VotesTopic(testGenesis), encode(t, voteEnvelope(vote)))
	require.Eventually(t, func() bool { return b.h.acceptedVote(vote) }, 10*time.Second, 10*time.Millisecond)

	// 400 valid transactions at once: the burst (100) is handled, the rest
	// is ignored as rate-limited, and one earns a strike.
	var flood []*tx.Tx
	for i := range 400 {
		x := signedTx(testGenesis, uint64(30_000+i), 3, 1)
		flood = append(flood, x)
		raw.publish(t, TransactionsTopic(testGenesis), transactionEnvelope(x.Encode()))
		if i%16 == 15 {
			time.Sleep(2 * time.Millisecond) // the raw peer's outbound queue holds 32 RPCs
		}
	}
	limited := func() uint64 {
		return b.stats.get(kindTxs, pubsub.ValidationIgnore, reasonRateLimited) + b.stats.get(kindTxs, pubsub.ValidationIgnore, reasonStrike)
	}
	require.Eventually(t, func() bool {
		handled := 0
		for _, x := range flood {
			handled += b.h.sawTx(x.Hash())
		}
		return uint64(handled)+limited() >= 400
	}, 20*time.Second, 20*time.Millisecond, "flood not fully validated")
	handled := 0
	for _, x := range flood {
		handled += b.h.sawTx(x.Hash())
	}
	require.GreaterOrEqual(t, handled, 100, "the burst is handled")
	require.Less(t, handled, 200, "the excess is not handled")
	require.GreaterOrEqual(t, b.stats.get(kindTxs, pubsub.ValidationIgnore, reasonStrike), uint64(1), "sustained excess: no strike")
	require.Zero(t, b.stats.get(kindTxs, pubsub.ValidationReject, reasonRateLimited))
	require.Eventually(t, func() bool { return b.PeerScore(raw.h.ID()) < 0 }, 10*time.Second, 20*time.Millisecond, "flooder not penalized")

	// Keep flooding for a few windows: one strike per second graylists it.
	for w := range 4 {
		for i := range 200 {
			x := signedTx(testGenesis, uint64(40_000+w*1000+i), 3, 1)
			raw.publish(t, TransactionsTopic(testGenesis), transactionEnvelope(x.Encode()))
			if i%16 == 15 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		time.Sleep(1100 * time.Millisecond)
	}
	require.Eventually(t, func() bool { return b.PeerScore(raw.h.ID()) < graylistThreshold }, 10*time.Second, 20*time.Millisecond,
		"sustained flooder not graylisted (score %v)", b.PeerScore(raw.h.ID()))

	// Honest traffic from A still flows.
	marker := signedTx(testGenesis, 99_999, 1, 1)
	require.NoError(t, a.PublishTransaction(context.Background(), marker))
	require.Eventually(t, func() bool { return b.h.acceptedTx(marker.Hash()) }, 10*time.Second, 10*time.Millisecond)
	v := signedVote(testGenesis, 1, 32)
	require.NoError(t, a.PublishVote(context.Background(), v))
	require.Eventually(t, func() bool { return b.h.acceptedVote(v) }, 10*time.Second, 10*time.Millisecond)
}
