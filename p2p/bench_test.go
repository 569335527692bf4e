package p2p

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
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

// BenchmarkVotesUnderTxFlood measures vote validation while one peer floods
// the transactions topic with 10x as many valid, distinct, signed
// transactions (every one that passes the rate limit costs an ed25519
// verification in the handler, as in the node's pool). Node A publishes
// b.N votes at voteRate to node B; the flooder, a raw gossipsub peer
// connected to B, publishes at txRate. Reported: votes/s handled by B,
// vote latency (publish on A to acceptance by B's handler) p50/p99, and the
// flood's fate at B (handled by the handler per second, rate-limited).
// "unprotected" turns the per-peer token bucket off and gives the handler
// 128 slots (the flood competes freely with votes for the CPU). Run with
// -benchtime=2000x for comparable numbers.
func BenchmarkVotesUnderTxFlood(b *testing.B) {
	for _, tc := range []struct {
		name      string
		voteRate  int // per second
		txRate    int // per second
		protected bool
	}{
		{"no-flood", 500, 0, true},
		{"flood=5000/s", 500, 5000, true},
		{"flood=5000/s/unprotected", 500, 5000, false},
		{"flood=2000/s-within-limit", 200, 2000, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			nodes := newTopology(b, 2, false, nil)
			warmUp(b, nodes)
			a, dst := nodes[0], nodes[1]
			if !tc.protected {
				dst.txLimit.reconfigure(1e9, 1<<30, 1<<30, 16)
				dst.txSlots = make(chan struct{}, txValidatorConcurrency)
			}
			votes := make([]checkpoint.SignedVote, b.N)
			for i := range votes {
				votes[i] = signedVote(testGenesis, i%len(testKeys), uint64(10_000+i))
			}
			published := make([]atomic.Int64, b.N)
			var mu sync.Mutex
			var lat []time.Duration
			dst.h.configure(func(h *testHandler) {
				h.onVote = func(v checkpoint.SignedVote) {
					i := int(v.Target.Number) - 10_000
					if i < 0 || i >= b.N {
						return
					}
					mu.Lock()
					lat = append(lat, time.Since(time.Unix(0, published[i].Load())))
					mu.Unlock()
				}
			})
			got := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(lat)
			}

			duration := time.Duration(b.N) * time.Second / time.Duration(tc.voteRate)
			var txs [][]byte
			if tc.txRate > 0 {
				n := int(duration.Seconds()*float64(tc.txRate)) + tc.txRate
				txs = make([][]byte, n)
				for i := range txs {
					txs[i] = transactionEnvelope(signedTx(testGenesis, uint64(1_000_000+i), 1, 1).Encode())
				}
			}
			txBase := dst.h.acceptedTxCount()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var flooder sync.WaitGroup
			if len(txs) > 0 {
				raw := newRawPeer(b, dst.Network, pubsub.WithPeerOutboundQueueSize(8192))
				raw.publish(b, TransactionsTopic(testGenesis), txs[0])
				tp := raw.topics[TransactionsTopic(testGenesis)]
				flooder.Go(func() {
					const tick = 10 * time.Millisecond
					perTick := tc.txRate / 100
					t := time.NewTicker(tick)
					defer t.Stop()
					for i := 1; i < len(txs); {
						select {
						case <-ctx.Done():
							return
						case <-t.C:
						}
						for j := 0; j < perTick && i < len(txs); j++ {
							_ = tp.Publish(ctx, txs[i])
							i++
						}
					}
				})
			}

			b.ResetTimer()
			start := time.Now()
			interval := time.Second / time.Duration(tc.voteRate)
			for i := range votes {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				published[i].Store(time.Now().UnixNano())
				require.NoError(b, a.PublishVote(ctx, votes[i]))
			}
			deadline := time.Now().Add(30 * time.Second)
			for got() < b.N && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			flooder.Wait()

			mu.Lock()
			sorted := slices.Clone(lat)
			mu.Unlock()
			slices.Sort(sorted)
			pct := func(p float64) float64 {
				if len(sorted) == 0 {
					return 0
				}
				return float64(sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(len(sorted))/elapsed.Seconds(), "votes/s")
			b.ReportMetric(float64(b.N-len(sorted)), "votes-lost")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(dst.h.acceptedTxCount()-txBase)/elapsed.Seconds(), "txs-handled/s")
			b.ReportMetric(float64(dst.stats.get(kindTxs, pubsub.ValidationIgnore, reasonRateLimited)+
				dst.stats.get(kindTxs, pubsub.ValidationIgnore, reasonStrike)), "txs-rate-limited")
		})
	}
}
