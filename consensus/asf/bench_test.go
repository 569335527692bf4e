package asf

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
)

// buildChain returns n valid blocks on genesis with consecutive slots, each
// carrying extrinsics of txBytes bytes in total.
func buildChain(spec *chainspec.Spec, keys []ed25519.PrivateKey, n, txBytes int) []Block {
	out := make([]Block, n)
	parent := GenesisBlock(spec, checkpoint.ZeroHash).Header
	for i := range out {
		var ext [][]byte
		if txBytes > 0 {
			ext = [][]byte{make([]byte, txBytes)}
			ext[0][0] = byte(i)
		}
		out[i] = makeBlock(spec, keys, parent, uint64(i+1), ext...)
		parent = out[i].Header
	}
	return out
}

// BenchmarkImport measures block import throughput: stateless checks,
// ed25519 signature verification, fork choice and one synced Pebble batch
// per block. "disk" is the OS file system under the test temp dir, "mem" a
// Pebble MemFS (no fsync cost).
func BenchmarkImport(b *testing.B) {
	spec, err := chainspec.Builtin("local")
	require.NoError(b, err)
	keys := specKeys(b, spec)
	for _, fsName := range []string{"disk", "mem"} {
		for _, txBytes := range []int{0, 4096} {
			b.Run(fmt.Sprintf("fs=%s/body=%dB", fsName, txBytes), func(b *testing.B) {
				blocks := buildChain(spec, keys, b.N, txBytes)
				opts := ChainOptions{Logger: zap.NewNop(), Clock: &fakeClock{now: SlotStart(spec, uint64(b.N)+10)}}
				if fsName == "mem" {
					opts.FS = vfs.NewMem()
				}
				c, err := OpenChain(b.TempDir(), spec, opts)
				require.NoError(b, err)
				defer c.Close()
				ctx := context.Background()
				b.ResetTimer()
				start := time.Now()
				for _, blk := range blocks {
					if _, err := c.Import(ctx, blk); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "blocks/s")
			})
		}
	}
}

// BenchmarkOpen measures OpenChain+Close on a disk database holding a chain
// of the given length. Open reads a fixed set of keys and the tips, so the
// time should not grow with the length.
func BenchmarkOpen(b *testing.B) {
	spec, err := chainspec.Builtin("local")
	require.NoError(b, err)
	keys := specKeys(b, spec)
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("blocks=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			opts := ChainOptions{Logger: zap.NewNop(), Clock: &fakeClock{now: SlotStart(spec, uint64(n)+10)}}
			c, err := OpenChain(dir, spec, opts)
			require.NoError(b, err)
			ctx := context.Background()
			for _, blk := range buildChain(spec, keys, n, 256) {
				_, err := c.Import(ctx, blk)
				require.NoError(b, err)
			}
			require.Equal(b, uint64(n), c.Best().Number)
			require.NoError(b, c.Close())
			b.ResetTimer()
			for b.Loop() {
				c, err := OpenChain(dir, spec, opts)
				if err != nil {
					b.Fatal(err)
				}
				if c.Best().Number != uint64(n) {
					b.Fatalf("best #%d after reopen", c.Best().Number)
				}
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/open")
		})
	}
}

// floodEnv is a chain on a Pebble MemFS (fsync costs nothing there, so the
// numbers show the work that depends on the flood) with a main chain of
// mainLen blocks (slots 1..mainLen) and side one-block branches offered by
// gossip (Import) on main-chain parents, at slots 1000+k.
func floodEnv(b *testing.B, mainLen, side int) (*Chain, []Block, []ed25519.PrivateKey, *chainspec.Spec) {
	b.Helper()
	spec, err := chainspec.Builtin("local")
	require.NoError(b, err)
	keys := specKeys(b, spec)
	c, err := OpenChain(b.TempDir(), spec, ChainOptions{FS: vfs.NewMem(), Logger: zap.NewNop(), Clock: &fakeClock{now: SlotStart(spec, 1_000_000)}})
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	main := buildChain(spec, keys, mainLen, 0)
	for _, blk := range main {
		_, err := c.Import(ctx, blk)
		require.NoError(b, err)
	}
	for k := range side {
		parent := main[(k*7)%(mainLen-1)].Header
		_, err := c.Import(ctx, makeBlock(spec, keys, parent, uint64(1000+k), []byte("side")))
		if err != nil && !errors.Is(err, ErrTipLimit) {
			b.Fatal(err)
		}
	}
	return c, main, keys, spec
}

// BenchmarkFlood shows that what a hostile or stale flood costs the chain
// does not grow with the flood:
//
//   - refuse-equivocation: Import of one more validly signed block for a
//     (proposer, slot) that already has one (the signature check and one
//     slot index read; the evidence was written by the first copy). A flood
//     of 300 copies costs 300 times this, and no tip.
//   - import-best/side=N: importing the next best-chain block after N
//     one-block side branches were offered (at most MaxTips are kept).
//   - new-side-branch/side=N: one more side branch when N were offered:
//     past MaxTips this is the eviction path (rank every tip, delete one).
//   - fork-choice/side=N: a full fork-choice run over all tips, which
//     SetJustified and SetFinalized do.
func BenchmarkFlood(b *testing.B) {
	ctx := context.Background()
	b.Run("refuse-equivocation", func(b *testing.B) {
		c, main, keys, spec := floodEnv(b, 200, 0)
		slot := uint64(201)
		_, err := c.Import(ctx, makeBlock(spec, keys, main[199].Header, slot, []byte("first")))
		require.NoError(b, err)
		// The second version is kept as a side branch; the copies after it
		// are the ones refused.
		res, err := c.Import(ctx, makeBlock(spec, keys, main[199].Header, slot, []byte("second")))
		require.ErrorIs(b, err, ErrEquivocation)
		require.True(b, res.Equivocation)
		copies := make([]Block, b.N)
		for i := range copies {
			copies[i] = makeBlock(spec, keys, main[198-i%150].Header, slot, []byte(fmt.Sprintf("copy-%d", i)))
		}
		b.ResetTimer()
		for _, blk := range copies {
			if res, err := c.Import(ctx, blk); !errors.Is(err, ErrEquivocation) || res.Equivocation {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(len(c.Tips())), "tips")
	})
	for _, side := range []int{0, 64, 300, 1000} {
		b.Run(fmt.Sprintf("import-best/side=%d", side), func(b *testing.B) {
			c, _, keys, spec := floodEnv(b, 200, side)
			next := make([]Block, b.N)
			parent := c.Best()
			for i := range next {
				next[i] = makeBlock(spec, keys, parent, uint64(5000+i))
				parent = next[i].Header
			}
			b.ResetTimer()
			for _, blk := range next {
				if _, err := c.Import(ctx, blk); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(c.Tips())), "tips")
		})
		b.Run(fmt.Sprintf("new-side-branch/side=%d", side), func(b *testing.B) {
			c, main, keys, spec := floodEnv(b, 200, side)
			blocks := make([]Block, b.N)
			for i := range blocks {
				blocks[i] = makeBlock(spec, keys, main[197-i%50].Header, uint64(200_000+i), []byte("new side"))
			}
			b.ResetTimer()
			for _, blk := range blocks {
				if _, err := c.Import(ctx, blk); err != nil && !errors.Is(err, ErrTipLimit) {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(c.Tips())), "tips")
		})
		b.Run(fmt.Sprintf("fork-choice/side=%d", side), func(b *testing.B) {
			c, _, _, _ := floodEnv(b, 200, side)
			c.mu.RLock()
			defer c.mu.RUnlock()
			tips := c.tipList()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.forkChoice(c.db, tips, c.justified); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(tips)), "tips")
		})
	}
}
