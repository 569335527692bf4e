package txpool_test

import (
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// benchTxs returns senders×perSender signed txs (sender-major, nonces from
// 0, fees varying by sender) and a state funding every sender; cached
// because signing 50,000 txs takes about a second.
var benchCache sync.Map

type benchSet struct {
	txs   []*tx.Tx
	raw   [][]byte
	state *memState
}

func benchTxs(senders, perSender int) *benchSet {
	key := [2]int{senders, perSender}
	if v, ok := benchCache.Load(key); ok {
		return v.(*benchSet)
	}
	s := &benchSet{state: newState()}
	keys := make([]ed25519.PrivateKey, senders)
	for i := range keys {
		keys[i] = keyN(10_000 + i)
		s.state.set(addr(keys[i]), 1<<40, 0)
	}
	for i, k := range keys {
		for n := 0; n < perSender; n++ {
			x := mk(k, uint64(n), 1+uint64((i*7919+n)%1000), 1)
			s.txs = append(s.txs, x)
			s.raw = append(s.raw, x.Encode())
		}
	}
	benchCache.Store(key, s)
	return s
}

func benchConfig(n int) txpool.Config {
	c := testConfig()
	c.MaxTxs, c.MaxBytes, c.MaxFuture = n, n*tx.MaxEncodedSize, n
	c.MaxPerAccount = 64
	return c
}

func benchAdd(b *testing.B, warm bool) {
	set := benchTxs(1000, 10)
	n := len(set.raw)
	var sigs *tx.SigCache
	var p *txpool.Pool
	reset := func() {
		sigs = tx.NewSigCache(2 * n)
		// checkpoint keeps a process-wide cache of verified signatures too.
		checkpoint.ForgetVerifiedSignatures()
		if warm {
			for _, x := range set.txs {
				_ = sigs.Verify(x, x.Hash())
			}
		}
		p = txpool.New(benchConfig(n), newClock(), sigs, set.state)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var paused time.Duration
	for i := 0; i < b.N; i++ {
		if i%n == 0 {
			b.StopTimer()
			t0 := time.Now()
			reset()
			paused += time.Since(t0)
			b.StartTimer()
		}
		if _, _, err := p.Add(set.raw[i%n]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/(time.Since(start)-paused).Seconds(), "tx/s")
}

// BenchmarkAddVerify: Add of raw bytes with a signature verification each.
func BenchmarkAddVerify(b *testing.B) { benchAdd(b, false) }

// BenchmarkAddCached: Add of raw bytes whose signature is in the SigCache.
func BenchmarkAddCached(b *testing.B) { benchAdd(b, true) }

func fill(b *testing.B, set *benchSet, cfg txpool.Config) *txpool.Pool {
	sigs := tx.NewSigCache(len(set.txs))
	for _, x := range set.txs {
		_ = sigs.Verify(x, x.Hash())
	}
	p := txpool.New(cfg, newClock(), sigs, set.state)
	for _, x := range set.txs {
		if _, _, err := p.AddTx(x); err != nil {
			b.Fatal(err)
		}
	}
	return p
}

// BenchmarkPending: Pending of all 10,000 ready txs of 1,000 senders.
func BenchmarkPending(b *testing.B) {
	set := benchTxs(1000, 10)
	p := fill(b, set, benchConfig(len(set.txs)))
	b.ReportAllocs()
	b.ResetTimer()
	var got int
	for i := 0; i < b.N; i++ {
		got = len(p.Pending(10_000, 0))
	}
	if got != 10_000 {
		b.Fatalf("pending %d", got)
	}
	b.ReportMetric(float64(got), "txs/op")
}

// BenchmarkUpdate: Update after a block of 5,000 included txs (the best
// Pending ones) in a pool of 50,000 (5,000 senders × 10).
func BenchmarkUpdate(b *testing.B) {
	set := benchTxs(5000, 10)
	cfg := benchConfig(len(set.txs))
	b.ReportAllocs()
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := fill(b, set, cfg)
		block := p.Pending(5000, 0)
		st := set.state.clone()
		for _, x := range block {
			if !st.apply(x, cfg.MinFee, sink) {
				b.Fatal("pending tx does not execute")
			}
		}
		b.StartTimer()
		t0 := time.Now()
		p.Update(st, block, nil)
		total += time.Since(t0)
		b.StopTimer()
		if p.Len() != len(set.txs)-5000 {
			b.Fatalf("pool has %d", p.Len())
		}
	}
	b.ReportMetric(total.Seconds()*1000/float64(b.N), "ms/update")
}
