package p2p

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// BenchmarkGossipVotes measures sustained vote gossip: node 0 publishes
// b.N distinct signed votes (at most benchWindow ahead of the slowest
// receiver) and every other node's handler verifies and accepts each one.
// votes/s counts votes delivered to all receivers per second.
func BenchmarkGossipVotes(b *testing.B) {
	const benchWindow = 256
	for _, tc := range []struct {
		hosts int
		star  bool
	}{{2, false}, {4, false}, {4, true}} {
		shape := "line"
		if tc.star {
			shape = "star"
		}
		b.Run(fmt.Sprintf("%s/hosts=%d", shape, tc.hosts), func(b *testing.B) {
			nodes := newTopology(b, tc.hosts, tc.star, nil)
			warmUp(b, nodes)
			votes := make([]checkpoint.SignedVote, b.N)
			for i := range votes {
				votes[i] = signedVote(testGenesis, i%len(testKeys), uint64(10_000+i))
			}
			receivers := nodes[1:]
			base := make([]int, len(receivers))
			for i, r := range receivers {
				base[i] = r.h.acceptedCount()
			}
			slowest := func() int {
				m := b.N
				for i, r := range receivers {
					m = min(m, r.h.acceptedCount()-base[i])
				}
				return m
			}
			ctx := context.Background()
			deadline := time.Now().Add(2 * time.Minute)
			b.ResetTimer()
			start := time.Now()
			for i := range votes {
				for i-slowest() >= benchWindow {
					require.True(b, time.Now().Before(deadline), "votes lost: receivers stuck")
					time.Sleep(100 * time.Microsecond)
				}
				require.NoError(b, nodes[0].PublishVote(ctx, votes[i]))
			}
			for slowest() < b.N {
				require.True(b, time.Now().Before(deadline), "votes lost: receivers stuck")
				time.Sleep(100 * time.Microsecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "votes/s")
			b.ReportMetric(float64(b.N*len(receivers))/elapsed.Seconds(), "deliveries/s")
		})
	}
}
