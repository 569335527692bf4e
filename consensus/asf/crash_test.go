package asf

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// TestCrashKeepsImportedBlocks crashes a Pebble MemFS (dropping every write
// that was not synced) after each operation and checks that everything that
// returned survives.
func TestCrashKeepsImportedBlocks(t *testing.T) {
	spec := localSpec(t)
	keys := specKeys(t, spec)
	clock := &fakeClock{now: SlotStart(spec, 1_000_000)}
	fs := vfs.NewCrashableMem()
	opts := ChainOptions{FS: fs, Clock: clock, Logger: zap.NewNop()}
	const dir = "/data/chain"
	c, err := OpenChain(dir, spec, opts)
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()

	type state struct {
		best      checkpoint.Hash
		finalized checkpoint.Checkpoint
		justified checkpoint.Checkpoint
		stored    []checkpoint.Hash
	}
	var want state
	want.stored = []checkpoint.Hash{c.Genesis().Hash()}
	recovered := func(crashed *vfs.MemFS) {
		t.Helper()
		r, err := OpenChain(dir, spec, ChainOptions{FS: crashed, Clock: clock, Logger: zap.NewNop()})
		require.NoError(t, err)
		defer r.Close()
		require.Equal(t, want.best, r.BestHash())
		require.Equal(t, want.finalized, r.Finalized())
		require.Equal(t, want.justified, r.Justified())
		for _, h := range want.stored {
			require.True(t, r.HasBlock(h), "block %s lost in the crash", h.Short())
		}
	}
	snapshot := func() {
		want.best, want.finalized, want.justified = c.BestHash(), c.Finalized(), c.Justified()
		recovered(fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}))
	}
	snapshot()

	parent := c.Genesis().Header
	var main []Block
	for i := range 12 {
		b := makeBlock(spec, keys, parent, uint64(i+1), []byte{byte(i)})
		_, err := c.Import(ctx, b)
		require.NoError(t, err)
		want.stored = append(want.stored, b.Hash())
		main = append(main, b)
		parent = b.Header
		snapshot()
	}
	fork := makeBlock(spec, keys, main[9].Header, 40, []byte("fork"))
	_, err = c.Import(ctx, fork)
	require.NoError(t, err)
	want.stored = append(want.stored, fork.Hash())
	snapshot()

	_, err = c.SetJustified(ctx, cp(2, main[7]))
	require.NoError(t, err)
	snapshot()
	require.NoError(t, c.SetFinalized(ctx, cp(1, main[3])))
	snapshot()

	// With a random share of unsynced data surviving, the database still
	// opens consistently and keeps everything that was acknowledged.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 8 {
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 10 + 10*i, RNG: rng})
		recovered(crashed)
	}
}

// TestConcurrentImportAndRead runs imports of two forks and readers at the
// same time (meaningful under -race) and checks the final fork choice.
func TestConcurrentImportAndRead(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	build := func(first uint64, n int, salt string) []Block {
		out := make([]Block, n)
		parent := g
		for i := range out {
			out[i] = e.block(parent, first+uint64(i), []byte(salt))
			parent = out[i].Header
		}
		return out
	}
	a, b := build(1, 20, "a"), build(100, 24, "b")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, branch := range [][]Block{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, blk := range branch {
				_, err := e.chain.Import(ctx, blk)
				require.NoError(t, err)
			}
		}()
	}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			best := e.chain.Best()
			blocks, err := e.chain.BlocksByRange(0, 64)
			require.NoError(t, err)
			require.NotEmpty(t, blocks)
			_ = e.chain.IsDescendant(best.Hash(), checkpoint.Checkpoint{Number: 0, Hash: g.Hash()})
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	require.Equal(t, b[23].Hash(), e.chain.BestHash())
	requireCanonical(t, e.chain, b)
	require.Len(t, e.chain.Tips(), 2)
}

// TestCrashKeepsBlockEvidence: evidence is stored with a synced write before
// Import reports the equivocation, so a crash right after keeps it, and the
// slot index that refuses later copies survives with the block.
func TestCrashKeepsBlockEvidence(t *testing.T) {
	spec := localSpec(t)
	keys := specKeys(t, spec)
	clock := &fakeClock{now: SlotStart(spec, 1_000_000)}
	fs := vfs.NewCrashableMem()
	const dir = "/data/chain"
	c, err := OpenChain(dir, spec, ChainOptions{FS: fs, Clock: clock, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	g := c.Genesis().Header
	first := makeBlock(spec, keys, g, 5, []byte("first"))
	_, err = c.Import(ctx, first)
	require.NoError(t, err)
	second := makeBlock(spec, keys, g, 5, []byte("second"))
	res, err := c.Import(ctx, second)
	require.ErrorIs(t, err, ErrEquivocation)
	require.True(t, res.Equivocation, "the second version is kept")

	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	r, err := OpenChain(dir, spec, ChainOptions{FS: crashed, Clock: clock, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer r.Close()
	ev, err := r.BlockEvidence(0, 10)
	require.NoError(t, err)
	require.Equal(t, []BlockEquivocation{{Proposer: 1, Slot: 5, First: first.Header, Second: second.Header}}, ev)
	require.True(t, r.HasBlock(second.Hash()), "stored with a synced write before Import returned")
	third := makeBlock(spec, keys, g, 5, []byte("third"))
	_, err = r.Import(ctx, third)
	require.ErrorIs(t, err, ErrEquivocation)
	require.False(t, r.HasBlock(third.Hash()))
}
