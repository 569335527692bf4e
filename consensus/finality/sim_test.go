package finality_test

import (
	"context"
	"hash/fnv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// simulate runs rounds: each round a new checkpoint block is imported by
// every voter, and every pumpEvery rounds the bus is delivered under policy.
func simulate(t *testing.T, net *testNet, nodes, voters []*node, rounds, pumpEvery int, p deliveryPolicy) {
	t.Helper()
	ctx := context.Background()
	for r := 1; r <= rounds; r++ {
		cp := net.chain.Next()
		for _, nd := range voters {
			require.NoError(t, nd.g.OnCheckpointBlock(ctx, cp))
		}
		if r%pumpEvery == 0 {
			pump(t, net.bus, nodes, p)
		}
	}
	pump(t, net.bus, nodes, p)
}

// requireAgreement checks that every node finalized the same checkpoint,
// on the chain, with nothing conflicting.
func requireAgreement(t *testing.T, net *testNet, nodes []*node) checkpoint.Checkpoint {
	t.Helper()
	f := nodes[0].g.LatestFinalized()
	for _, nd := range nodes {
		require.Equal(t, f, nd.g.LatestFinalized(), "node %d", nd.id)
		require.False(t, nd.g.Halted(), "node %d", nd.id)
		require.Empty(t, nd.store.Evidence(), "node %d", nd.id)
		require.True(t, net.chain.IsDescendant(net.chain.tip.Hash, nd.g.LatestJustified()), "justified on the chain")
		for _, cp := range nd.obs.Finalizations() {
			require.True(t, net.chain.IsDescendant(f.Hash, cp), "every finalized checkpoint is an ancestor of the latest")
		}
		require.Equal(t, finality.LevelFinality, nd.g.Status(f.Number).Level)
		require.Equal(t, f.Hash, nd.g.Status(f.Number).Hash)
	}
	require.True(t, net.chain.IsDescendant(net.chain.tip.Hash, f))
	return f
}

func hashDrop(percent uint32, seed string) func(m message, to int) bool {
	return func(m message, to int) bool {
		if m.vote == nil {
			return false // certificates always arrive
		}
		h := fnv.New32a()
		h.Write([]byte(seed))
		h.Write(m.vote.SigningBytes())
		h.Write([]byte{byte(m.vote.Validator), byte(to)})
		return h.Sum32()%100 < percent
	}
}

func TestSimulationFourValidators(t *testing.T) {
	tests := []struct {
		name      string
		voters    int // validators that are online (of 4)
		observer  bool
		rounds    int
		pumpEvery int
		policy    deliveryPolicy
		// wantFinal is the exact finalized number expected; -1 = at least
		// minFinal.
		wantFinal int
		minFinal  uint64
	}{
		{name: "fifo", voters: 4, observer: true, rounds: 12, pumpEvery: 1, wantFinal: 11},
		{name: "lifo", voters: 4, rounds: 12, pumpEvery: 1, policy: deliveryPolicy{pick: func(n int) int { return n - 1 }}, wantFinal: 11},
		{name: "random order, delivered every third round", voters: 4, observer: true, rounds: 12, pumpEvery: 3, policy: deliveryPolicy{pick: seededPick(7)}, wantFinal: 9},
		{name: "random order, delivered every second round", voters: 4, rounds: 12, pumpEvery: 2, policy: deliveryPolicy{pick: seededPick(11)}, wantFinal: 10},
		{name: "a quarter of vote deliveries lost", voters: 4, observer: true, rounds: 16, pumpEvery: 1, policy: deliveryPolicy{drop: hashDrop(25, "a")}, wantFinal: -1, minFinal: 8},
		{name: "partitioned link between two validators", voters: 4, rounds: 12, pumpEvery: 1, policy: deliveryPolicy{drop: func(m message, to int) bool { return m.from == 1 && to == 2 || m.from == 2 && to == 1 }}, wantFinal: 11},
		{name: "one validator silent", voters: 3, observer: true, rounds: 12, pumpEvery: 1, wantFinal: 11},
		{name: "one silent, random order", voters: 3, rounds: 12, pumpEvery: 2, policy: deliveryPolicy{pick: seededPick(3)}, wantFinal: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			net := newTestNet(t, 4)
			var nodes, voters []*node
			for i := range tc.voters {
				nd := net.newNode(i)
				defer nd.close()
				nodes = append(nodes, nd)
				voters = append(voters, nd)
			}
			if tc.observer {
				nd := net.newNode(-1)
				defer nd.close()
				nodes = append(nodes, nd)
			}
			simulate(t, net, nodes, voters, tc.rounds, tc.pumpEvery, tc.policy)
			f := requireAgreement(t, net, nodes)
			if tc.wantFinal >= 0 {
				require.Equal(t, uint64(tc.wantFinal), f.Number)
			} else {
				require.GreaterOrEqual(t, f.Number, tc.minFinal)
			}
			for _, nd := range nodes {
				m := nd.g.Metrics()
				if nd.idx >= 0 {
					require.Equal(t, uint64(tc.rounds), m.OwnVotes, "one vote per checkpoint")
				}
				require.Zero(t, m.VotesRejected)
				require.Zero(t, m.CertificatesRejected)
			}
		})
	}
}

func TestSimulationTwoSilentValidators(t *testing.T) {
	net := newTestNet(t, 4)
	nodes := net.newNodes(2)
	obs := net.newNode(-1)
	defer obs.close()
	all := append([]*node{obs}, nodes...)
	simulate(t, net, all, nodes, 10, 1, deliveryPolicy{})
	g0 := net.genesis()
	for _, nd := range all {
		require.Equal(t, g0, nd.g.LatestFinalized(), "no finality without a quorum")
		require.Equal(t, g0, nd.g.LatestJustified())
		require.False(t, nd.g.Halted())
		require.Empty(t, nd.store.Evidence())
		require.Zero(t, nd.g.Metrics().CertificatesFormed)
		for n := uint64(1); n <= 10; n++ {
			st := nd.g.Status(n)
			require.Equal(t, finality.LevelPreCommitment, st.Level)
			require.Equal(t, 2, st.Weight)
			_, ok := nd.g.Certificate(n)
			require.False(t, ok)
		}
	}
	for _, m := range net.bus.Sent() {
		require.Nil(t, m.cert, "nothing conflicting, no certificate")
		require.Equal(t, g0, m.vote.Source, "without justification every vote links from genesis")
	}
}

// syncBroadcaster delivers synchronously to every other gadget from inside
// Broadcast, the way a local loopback delivery could.
type syncBroadcaster struct {
	t     *testing.T
	self  int
	peers func() []*finality.CheckpointFinality
}

func (b *syncBroadcaster) BroadcastVote(ctx context.Context, v checkpoint.SignedVote) error {
	for i, g := range b.peers() {
		if i == b.self {
			continue
		}
		if _, err := g.OnVote(ctx, v); err != nil {
			b.t.Errorf("deliver vote: %v", err)
		}
	}
	return nil
}

func (b *syncBroadcaster) BroadcastCertificate(ctx context.Context, c checkpoint.Certificate) error {
	for i, g := range b.peers() {
		if i == b.self {
			continue
		}
		if _, err := g.OnCertificate(ctx, c); err != nil {
			b.t.Errorf("deliver certificate: %v", err)
		}
	}
	return nil
}

func TestConcurrentSynchronousDelivery(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	var mu sync.Mutex
	var gadgets []*finality.CheckpointFinality
	peers := func() []*finality.CheckpointFinality {
		mu.Lock()
		defer mu.Unlock()
		return gadgets
	}
	var nodes []*node
	for i := range 4 {
		nd := net.newNode(i, withBroadcaster(&syncBroadcaster{t: t, self: i, peers: peers}))
		defer nd.close()
		nodes = append(nodes, nd)
	}
	mu.Lock()
	for _, nd := range nodes {
		gadgets = append(gadgets, nd.g)
	}
	mu.Unlock()
	const rounds = 10
	for range rounds {
		cp := net.chain.Next()
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := nd.g.OnCheckpointBlock(ctx, cp); err != nil {
					t.Errorf("vote: %v", err)
				}
			}()
		}
		wg.Wait()
	}
	f := requireAgreement(t, net, nodes)
	require.Equal(t, uint64(rounds-1), f.Number)
}
