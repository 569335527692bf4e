package p2p

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/stretchr/testify/require"
)

// TestGossipProtocols: the node advertises gossipsub 1.1 and later only,
// not /meshsub/1.0.0 or /floodsub/1.0.0 (docs/wire.md, Transport).
func TestGossipProtocols(t *testing.T) {
	n := startNode(t, newTestNetwork(t, nil))
	var gossip []string
	for _, p := range n.host.Mux().Protocols() {
		if strings.HasPrefix(string(p), "/meshsub/") || strings.HasPrefix(string(p), "/floodsub/") {
			gossip = append(gossip, string(p))
		}
	}
	slices.Sort(gossip)
	require.Equal(t, []string{"/meshsub/1.1.0", "/meshsub/1.2.0", "/meshsub/1.3.0"}, gossip)
	require.NotContains(t, n.host.Mux().Protocols(), protocol.ID(pubsub.FloodSubID))
}

// invalidPenaltyTimes derives, from the score parameters of gossip.go, how
// long a peer stays below a threshold after k rejected messages (no other
// credit or penalty): the P4 counter decays by a constant factor per decay
// interval, and the score is invalidMessageWeight * counter^2.
func invalidPenaltyTimes(k, threshold float64) time.Duration {
	rate := -math.Log(topicScoreParams().InvalidMessageDeliveriesDecay) / scoreDecayInterval.Seconds() // per second
	cAt := math.Sqrt(threshold / invalidMessageWeight)                                                 // counter at which the score equals threshold
	if k <= cAt {
		return 0
	}
	return time.Duration(math.Log(k/cAt) / rate * float64(time.Second))
}

// TestInvalidPenaltyAsDocumented: the numbers of docs/wire.md
// ("Validation") follow from the parameters.
func TestInvalidPenaltyAsDocumented(t *testing.T) {
	decay := topicScoreParams().InvalidMessageDeliveriesDecay
	require.InDelta(t, 0.99235, decay, 0.00001, "factor per second")
	halfLife := time.Duration(math.Log(2) / -math.Log(decay) * float64(time.Second))
	require.Equal(t, 90*time.Second, halfLife.Round(time.Second))
	// One rejected message: -10, at the gossip threshold, not below it.
	require.Equal(t, time.Duration(0), invalidPenaltyTimes(1, gossipThreshold))
	// The counter of one message falls under DecayToZero (and is dropped)
	// after 10 minutes.
	require.Equal(t, 600*time.Second, time.Duration(math.Log(1/scoreDecayToZero)/-math.Log(decay)*float64(time.Second)).Round(time.Second))
	for _, tt := range []struct {
		k         float64
		threshold float64
		want      time.Duration // rounded to seconds
	}{
		{2, gossipThreshold, 90 * time.Second},
		{3, gossipThreshold, 143 * time.Second},
		{3, graylistThreshold, 8 * time.Second},
		{4, graylistThreshold, 45 * time.Second},
		{4, gossipThreshold, 181 * time.Second},
	} {
		require.Equal(t, tt.want, invalidPenaltyTimes(tt.k, tt.threshold).Round(time.Second), "k=%v threshold=%v", tt.k, tt.threshold)
	}
}

// TestRejectedDuplicatesPenalized: gossipsub marks a message id seen before
// validating it, so the same bytes are validated once per seen-messages
// window; a later copy of bytes that were rejected costs its sender an
// invalid delivery even when that sender is a fresh peer, while a copy of
// ignored bytes is free (docs/wire.md, "Validation").
func TestRejectedDuplicatesPenalized(t *testing.T) {
	b := startNode(t, newTestNetwork(t, nil))
	b.h.configure(func(h *testHandler) { h.ignoreTarget = 77 })
	garbage := []byte{0x0f, 0xde, 0xad, 0xbe, 0xef, 0x01}
	ignored := encode(t, voteEnvelope(signedVote(testGenesis, 1, 77)))

	first := newRawPeer(t, b.Network)
	first.publish(t, VotesTopic(testGenesis), garbage)
	require.Eventually(t, func() bool { return b.PeerScore(first.h.ID()) < 0 }, 10*time.Second, 20*time.Millisecond)
	require.InDelta(t, invalidMessageWeight, b.PeerScore(first.h.ID()), 1.5, "one rejected message: about -10")

	fresh := newRawPeer(t, b.Network)
	fresh.publish(t, VotesTopic(testGenesis), garbage)
	require.Eventually(t, func() bool { return b.PeerScore(fresh.h.ID()) < 0 }, 10*time.Second, 20*time.Millisecond,
		"a fresh peer re-sending rejected bytes is penalized")
	require.Len(t, b.obs.find(garbage), 1, "validated once")

	first.publish(t, VotesTopic(testGenesis), ignored)
	require.Eventually(t, func() bool { return len(b.obs.find(ignored)) == 1 }, 10*time.Second, 20*time.Millisecond)
	other := newRawPeer(t, b.Network)
	gen := b.scoreGeneration()
	other.publish(t, VotesTopic(testGenesis), ignored)
	require.Eventually(t, func() bool { return b.scoreGeneration() >= gen+3 }, 10*time.Second, 20*time.Millisecond)
	require.GreaterOrEqual(t, b.PeerScore(other.h.ID()), 0.0, "a copy of ignored bytes is free")
	require.Len(t, b.obs.find(ignored), 1, "validated once")
}

// TestTransactionTopicAsDocumented: the limits table of docs/wire.md
// ("Transactions topic") states the values of the code, the validation
// slots of the transactions topic leave those of the other topics intact,
// and the topic's score parameters give at most +1.
func TestTransactionTopicAsDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "wire.md"))
	require.NoError(t, err)
	doc := string(raw)
	for code, value := range map[string]string{
		"MaxTransactionEnvelopeSize": fmt.Sprint(MaxTransactionEnvelopeSize),
		"DefaultTxRate":              fmt.Sprint(DefaultTxRate),
		"DefaultTxBurst":             fmt.Sprint(DefaultTxBurst),
		"DefaultTxExcessReject":      fmt.Sprint(DefaultTxExcessReject),
		"txValidatorConcurrency":     fmt.Sprint(txValidatorConcurrency),
		"txHandlerSlots":             fmt.Sprint(txHandlerSlots),
		"txValidatorTimeout":         strings.ReplaceAll(txValidatorTimeout.String(), "s", " s"),
		"validatorConcurrency":       fmt.Sprint(validatorConcurrency),
		"validateThrottle":           fmt.Sprint(validateThrottle),
	} {
		var row string
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "|") && strings.HasSuffix(line, "| `"+code+"` |") {
				row = line
			}
		}
		require.NotEmpty(t, row, "no row for %s in docs/wire.md", code)
		require.Contains(t, row, "| "+value+" |", "docs/wire.md states another value for %s", code)
	}
	require.Equal(t, time.Second, txExcessWindow)
	require.Contains(t, doc, "`/flare/<genesis hex>/txs/1`")
	require.LessOrEqual(t, int(kindTxs)*validatorConcurrency+txValidatorConcurrency, validateThrottle,
		"the transactions topic could take the validation slots of the others")

	p := txTopicScoreParams()
	maxPositive := p.TimeInMeshWeight*p.TimeInMeshCap + p.FirstMessageDeliveriesWeight*p.FirstMessageDeliveriesCap
	require.InDelta(t, 1.0, maxPositive, 1e-9, "at most +1 from transactions")
	require.Zero(t, p.TimeInMeshWeight)
	base := topicScoreParams()
	require.Equal(t, base.InvalidMessageDeliveriesWeight, p.InvalidMessageDeliveriesWeight)
	require.Equal(t, base.InvalidMessageDeliveriesDecay, p.InvalidMessageDeliveriesDecay)
	require.Equal(t, base.TopicWeight, p.TopicWeight)
	require.InDelta(t, 11.0, base.TimeInMeshWeight*base.TimeInMeshCap+base.FirstMessageDeliveriesWeight*base.FirstMessageDeliveriesCap, 1e-9)

	// The network uses them for the topic.
	n := newTestNetwork(t, nil)
	params, _ := n.peerScoreParams()
	require.Equal(t, p, params.Topics[TransactionsTopic(testGenesis)])
	require.Len(t, params.Topics, int(numKinds))
	// Strikes score like invalid deliveries, outside the topic scores.
	require.Equal(t, 1.0, params.AppSpecificWeight)
	require.Equal(t, float64(invalidMessageWeight), float64(strikeWeight))
	require.Equal(t, base.InvalidMessageDeliveriesDecay, strikeDecay)
}
