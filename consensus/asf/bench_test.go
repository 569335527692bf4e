package asf

import (
	"context"
	"crypto/ed25519"
	"fmt"
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
	parent := GenesisBlock(spec).Header
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
