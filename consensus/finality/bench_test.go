package finality_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// votePool caches pre-signed votes per validator count: checkpoint t is
// voted (t-1 -> t) by every validator, in target order. Signing is not part
// of the measurement.
var votePool = struct {
	sync.Mutex
	votes map[int][]checkpoint.SignedVote
	certs map[int][]checkpoint.Certificate
}{votes: map[int][]checkpoint.SignedVote{}, certs: map[int][]checkpoint.Certificate{}}

func chainCheckpoints(net *testNet, count int) []checkpoint.Checkpoint {
	cps := []checkpoint.Checkpoint{net.genesis()}
	for len(cps) <= count {
		cps = append(cps, net.chain.Next())
	}
	return cps
}

func signParallel(total int, sign func(i int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < total; i = int(next.Add(1) - 1) {
				sign(i)
			}
		}()
	}
	wg.Wait()
}

func benchVotes(net *testNet, n, want int) []checkpoint.SignedVote {
	votePool.Lock()
	defer votePool.Unlock()
	have := votePool.votes[n]
	if len(have) >= want {
		return have[:want]
	}
	targets := (want + n - 1) / n
	cps := chainCheckpoints(net, targets)
	out := make([]checkpoint.SignedVote, targets*n)
	signParallel(len(out), func(i int) {
		t := i/n + 1
		out[i] = net.vote(i%n, cps[t-1], cps[t])
	})
	votePool.votes[n] = out
	return out[:want]
}

func benchCerts(net *testNet, n, want int) []checkpoint.Certificate {
	votePool.Lock()
	defer votePool.Unlock()
	have := votePool.certs[n]
	if len(have) >= want {
		return have[:want]
	}
	cps := chainCheckpoints(net, want)
	q := checkpoint.Quorum(n)
	out := make([]checkpoint.Certificate, want)
	signParallel(want, func(i int) { out[i] = net.cert(cps[i], cps[i+1], seq(0, q)...) })
	votePool.certs[n] = out
	return out
}

// openBenchGadget builds an observer gadget on a checkpointdb on disk.
func openBenchGadget(b *testing.B, net *testNet) (*finality.CheckpointFinality, *checkpointdb.CheckpointDB) {
	db, err := checkpointdb.Open(b.TempDir(), checkpointdb.Options{FS: vfs.Default, Genesis: net.auth.Genesis, Logger: zap.NewNop()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	g, err := finality.New(finality.Config{Authorities: net.auth, Persistence: finality.DefaultPersistenceConfig()},
		finality.Deps{Store: db, Clock: net.clock})
	require.NoError(b, err)
	require.NoError(b, g.RestoreFromStorage(context.Background()))
	return g, db
}

// ingestParallelism is the worker-pool size per core feeding OnVote (gossip
// validation runs many goroutines; a worker waiting on a synced certificate
// write leaves its core to the others).
const ingestParallelism = 4

// ingestLead is how far ahead of finality the benchmark feeder may run.
const ingestLead = finality.DefaultFutureWindow / 2

// BenchmarkVoteIngest measures durable peer-vote ingest through the gadget:
// cheap checks, ed25519 verification, StoreVote into checkpointdb on disk,
// tallying, certificate formation (synced StoreCertificate) and finality,
// fed by a worker pool on all cores; the final Flush (WAL sync) that makes
// every vote durable is inside the measurement. The verify-only
// sub-benchmark is the ceiling: the same votes, only ed25519.Verify.
func BenchmarkVoteIngest(b *testing.B) {
	for _, n := range []int{21, 100} {
		b.Run(fmt.Sprintf("verify-only/validators=%d", n), func(b *testing.B) {
			net := newTestNet(b, n)
			votes := benchVotes(net, n, b.N)
			var next atomic.Int64
			b.SetParallelism(ingestParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					v := votes[next.Add(1)-1]
					if err := v.Verify(net.auth.Keys[v.Validator]); err != nil {
						b.Error(err)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "votes/s")
		})
		b.Run(fmt.Sprintf("gadget/validators=%d", n), func(b *testing.B) {
			ctx := context.Background()
			net := newTestNet(b, n)
			votes := benchVotes(net, n, b.N)
			g, db := openBenchGadget(b, net)
			var next atomic.Int64
			var accepted atomic.Int64
			b.SetParallelism(ingestParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					// The network delivers votes for checkpoints near the
					// finalized one; a feeder running more than half a
					// window ahead waits (votes past the window would be
					// ignored, which is not ingest).
					for votes[i].Target.Number > g.LatestFinalized().Number+ingestLead {
						time.Sleep(20 * time.Microsecond)
					}
					verdict, err := g.OnVote(ctx, votes[i])
					if err != nil {
						b.Error(err)
						return
					}
					if verdict == finality.VerdictAccept {
						accepted.Add(1)
					}
				}
			})
			require.NoError(b, db.Flush(ctx))
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "votes/s")
			b.ReportMetric(float64(accepted.Load())/float64(b.N), "accepted/vote")
			if b.N >= 10*n {
				require.Greater(b, g.LatestFinalized().Number, uint64(0))
			}
		})
	}
}

// BenchmarkCertificateVerify measures the full re-verification of a quorum
// certificate (AuthoritySet.VerifyCertificate: shape, then every signature);
// uncached: the cache of verified signatures is emptied before each
// verification (cached, a repeated certificate costs one hash per
// signature).
func BenchmarkCertificateVerify(b *testing.B) {
	for _, n := range []int{21, 100} {
		b.Run(fmt.Sprintf("validators=%d", n), func(b *testing.B) {
			net := newTestNet(b, n)
			cert := benchCerts(net, n, 1)[0]
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				checkpoint.ForgetVerifiedSignatures()
				b.StartTimer()
				if err := net.auth.VerifyCertificate(cert); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/cert")
			b.ReportMetric(float64(len(cert.Signatures)), "signatures")
		})
	}
}

// BenchmarkCertificateIngest measures OnCertificate for new certificates:
// shape check, full verification, synced StoreCertificate with pointers,
// finality.
func BenchmarkCertificateIngest(b *testing.B) {
	for _, n := range []int{21, 100} {
		b.Run(fmt.Sprintf("validators=%d", n), func(b *testing.B) {
			ctx := context.Background()
			net := newTestNet(b, n)
			certs := benchCerts(net, n, b.N)
			g, _ := openBenchGadget(b, net)
			b.ResetTimer()
			for i := range b.N {
				verdict, err := g.OnCertificate(ctx, certs[i])
				if err != nil || verdict != finality.VerdictAccept {
					b.Fatalf("certificate %d: %v %v", i, verdict, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/cert")
			if b.N > 1 {
				require.Equal(b, uint64(b.N-1), g.LatestFinalized().Number)
			}
		})
	}
}
