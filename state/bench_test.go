package state

import (
	"crypto/ed25519"
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

const benchAccounts = 100_000

// benchKey is a cheap deterministic key for account i of the benchmarks.
func benchKey(i int) ed25519.PrivateKey {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i))
	seed[31] = 0xbe
	return ed25519.NewKeyFromSeed(seed[:])
}

type benchState struct {
	dir  string
	db   *pebble.DB
	s    *DB
	root checkpoint.Hash
	keys []ed25519.PrivateKey
	addr []tx.Address
}

// newBenchState writes a genesis of benchAccounts accounts.
func newBenchState(b *testing.B) *benchState {
	b.Helper()
	dir, err := os.MkdirTemp("", "state-bench")
	require.NoError(b, err)
	db := openPebble(b, dir)
	bs := &benchState{dir: dir, db: db, s: Open(db, zap.NewNop())}
	spec := &chainspec.Spec{MinFee: 1}
	for i := range benchAccounts {
		k := benchKey(i)
		bs.keys = append(bs.keys, k)
		a := tx.AddressOf(k.Public().(ed25519.PublicKey))
		bs.addr = append(bs.addr, a)
		spec.Balances = append(spec.Balances, chainspec.Balance{Address: a.String(), Balance: 1_000_000_000})
	}
	bs.root = commitGenesis(b, db, bs.s, spec)
	require.NoError(b, db.Flush())
	b.Cleanup(func() {
		_ = db.Close()
		_ = os.RemoveAll(dir)
	})
	return bs
}

// body returns n signed transfers between distinct random-ish accounts,
// each sender once (nonce 0).
func (bs *benchState) body(n int, sigs *tx.SigCache) [][]byte {
	out := make([][]byte, n)
	for i := range n {
		from := (i * 7919) % benchAccounts
		to := (from + 1 + i*31) % benchAccounts
		t := &tx.Tx{Genesis: testGenesis, To: bs.addr[to], Amount: 10, Fee: 1}
		t.Sign(bs.keys[from])
		if sigs != nil {
			if err := sigs.Verify(t, t.Hash()); err != nil {
				panic(err)
			}
		}
		out[i] = t.Encode()
	}
	return out
}

func BenchmarkState(b *testing.B) {
	bs := newBenchState(b)
	env := testEnv(1)
	for _, n := range []int{1, 1000, 10000} {
		sigs := tx.NewSigCache(2 * n)
		body := bs.body(n, sigs)
		for _, mode := range []struct {
			name string
			sigs *tx.SigCache
		}{{"cached-sigs", sigs}, {"verify", nil}} {
			b.Run("execute/"+itoa(n)+"/"+mode.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if mode.sigs == nil {
						// Empty the process-wide cache of verified
						// signatures too, so that every signature verifies.
						b.StopTimer()
						checkpoint.ForgetVerifiedSignatures()
						b.StartTimer()
					}
					r, err := bs.s.Execute(bs.root, env, body, mode.sigs)
					if err != nil {
						b.Fatal(err)
					}
					_ = r
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "transfers/s")
			})
		}
		b.Run("write/"+itoa(n), func(b *testing.B) {
			r, err := bs.s.Execute(bs.root, env, body, sigs)
			require.NoError(b, err)
			b.ResetTimer()
			for b.Loop() {
				batch := bs.db.NewBatch()
				if err := r.Write(batch, blockHash("bench", n)); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(batch.Len()), "batch-bytes")
				_ = batch.Close()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "transfers/s")
		})
	}

	b.Run("proof", func(b *testing.B) {
		total, maxSize, nodes := 0, 0, 0
		count := 0
		for b.Loop() {
			a := bs.addr[(count*104729)%benchAccounts]
			p, err := bs.s.Prove(bs.root, a)
			if err != nil {
				b.Fatal(err)
			}
			size := 0
			for _, n := range p {
				size += len(n)
			}
			total += size
			nodes += len(p)
			maxSize = max(maxSize, size)
			count++
			if _, ok, err := VerifyProof(bs.root, a, p); err != nil || !ok {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total)/float64(count), "proof-bytes")
		b.ReportMetric(float64(maxSize), "max-proof-bytes")
		b.ReportMetric(float64(nodes)/float64(count), "proof-nodes")
	})

	b.Run("disk", func(b *testing.B) {
		for b.Loop() {
		}
		it, err := bs.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagNode}, UpperBound: []byte{tagNode + 1}})
		require.NoError(b, err)
		n, bytes := 0, 0
		for ok := it.First(); ok; ok = it.Next() {
			n++
			bytes += len(it.Key()) + len(it.Value())
		}
		require.NoError(b, it.Close())
		require.NoError(b, bs.db.Flush())
		require.NoError(b, bs.db.Compact(b.Context(), []byte{0}, []byte{0xff}, true))
		m := bs.db.Metrics()
		b.ReportMetric(float64(n), "nodes")
		b.ReportMetric(float64(bytes), "node-kv-bytes")
		b.ReportMetric(float64(m.DiskSpaceUsage()), "disk-bytes")
	})

	b.Run("sync", func(b *testing.B) {
		for b.Loop() {
			dst := newTestDBAt(b)
			sy, err := dst.s.NewSyncer(bs.root)
			require.NoError(b, err)
			var export, verify, stage time.Duration
			wire, chunks := 0, 0
			for {
				start, done := sy.Next()
				if done {
					break
				}
				t0 := time.Now()
				c, err := bs.s.ExportChunk(bs.root, start, 4096, 0)
				require.NoError(b, err)
				t1 := time.Now()
				require.NoError(b, VerifyChunk(bs.root, start, c))
				t2 := time.Now()
				require.NoError(b, sy.Add(c)) // verifies again, then stages
				t3 := time.Now()
				export += t1.Sub(t0)
				verify += t2.Sub(t1)
				stage += t3.Sub(t2) - t2.Sub(t1)
				chunks++
				for i := range c.Keys {
					wire += len(c.Keys[i]) + len(c.Values[i])
				}
				for _, p := range c.Proof {
					wire += len(p)
				}
			}
			t0 := time.Now()
			batch := dst.db.NewBatch()
			require.NoError(b, sy.Finish(batch, blockHash("synced")))
			require.NoError(b, batch.Commit(pebble.Sync))
			finish := time.Since(t0)
			b.ReportMetric(export.Seconds(), "export-s")
			b.ReportMetric(verify.Seconds(), "verify-s")
			b.ReportMetric(stage.Seconds(), "stage-s")
			b.ReportMetric(finish.Seconds(), "finish-s")
			b.ReportMetric(float64(wire), "wire-bytes")
			b.ReportMetric(float64(chunks), "chunks")
			has, err := dst.s.HasState(bs.root)
			require.NoError(b, err)
			require.True(b, has)
		}
	})
}

func newTestDBAt(b *testing.B) *benchState {
	dir := b.TempDir()
	db := openPebble(b, dir)
	b.Cleanup(func() { _ = db.Close() })
	return &benchState{dir: dir, db: db, s: Open(db, zap.NewNop())}
}

func itoa(n int) string {
	switch n {
	case 1:
		return "1"
	case 1000:
		return "1000"
	case 10000:
		return "10000"
	}
	return "n"
}
