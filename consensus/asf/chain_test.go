package asf

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func TestOpenNewChain(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis()
	require.Equal(t, GenesisBlock(e.spec, checkpoint.ZeroHash), g)
	require.Equal(t, g.Header, e.chain.Best())
	require.Equal(t, g.Hash(), e.chain.BestHash())
	gcp := checkpoint.Checkpoint{Number: 0, Hash: g.Hash()}
	require.Equal(t, gcp, e.chain.Finalized())
	require.Equal(t, gcp, e.chain.Justified())
	require.Equal(t, []checkpoint.Tip{{Hash: g.Hash()}}, e.chain.Tips())
	stored, found, err := e.chain.BlockByHash(g.Hash())
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, g.Header, stored.Header)
	e.reopen()
	require.Equal(t, g.Header, e.chain.Best())
}

func TestPersistenceAcrossReopen(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 9, "a")
	fork := e.extend(a[2].Header, 40, 3, "fork")
	_, err := e.chain.SetJustified(ctx, cp(2, a[7]))
	require.NoError(t, err)
	require.NoError(t, e.chain.SetFinalized(ctx, cp(1, a[3])))

	best, tips := e.chain.Best(), e.chain.Tips()
	e.reopen()
	require.Equal(t, best, e.chain.Best())
	require.ElementsMatch(t, tips, e.chain.Tips())
	require.Equal(t, cp(2, a[7]), e.chain.Justified())
	require.Equal(t, cp(1, a[3]), e.chain.Finalized())
	requireCanonical(t, e.chain, a)
	for _, b := range fork {
		require.False(t, e.chain.HasBlock(b.Hash()), "fork below finality was pruned")
	}
	got, err := e.chain.BlocksByRange(1, 9)
	require.NoError(t, err)
	require.Equal(t, hashes(a), hashes(got))
	for i := range a {
		require.Equal(t, a[i].Extrinsics, got[i].Extrinsics)
	}
	// The reopened chain keeps working.
	r := e.mustImport(e.block(a[8].Header, 60))
	require.True(t, r.NewBest)
}

func TestSecondOpenIsLocked(t *testing.T) {
	e := newEnv(t, localSpec(t))
	_, err := OpenChain(e.dir, e.spec, ChainOptions{})
	require.ErrorIs(t, err, ErrLocked)
	require.NotContains(t, err.Error(), "\n")
	_, err = OpenChain(e.dir, e.spec, ChainOptions{ReadOnly: true})
	require.ErrorIs(t, err, ErrLocked)
	// The first handle is unaffected and the lock is released on Close.
	e.mustImport(e.block(e.chain.Genesis().Header, 1))
	e.reopen()
	require.Equal(t, uint64(1), e.chain.Best().Number)
}

func TestOpenRefusesOtherChain(t *testing.T) {
	e := newEnv(t, localSpec(t))
	require.NoError(t, e.chain.Close())
	e.chain = nil
	dev, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	_, err = OpenChain(e.dir, dev, ChainOptions{})
	require.ErrorIs(t, err, ErrWrongChain)
	require.ErrorIs(t, err, checkpoint.ErrWrongChain)
	require.Contains(t, err.Error(), dev.Hash().String())
	require.Contains(t, err.Error(), e.spec.Hash().String())
	require.NotContains(t, err.Error(), "\n")

	// Any change to the spec is another chain.
	changed := localSpec(t)
	changed.CheckpointInterval = 8
	_, err = OpenChain(e.dir, changed, ChainOptions{})
	require.ErrorIs(t, err, ErrWrongChain)

	// An invalid spec is refused before touching the disk.
	changed.Authorities = nil
	_, err = OpenChain(filepath.Join(t.TempDir(), "x"), changed, ChainOptions{})
	require.ErrorIs(t, err, chainspec.ErrInvalidSpec)
}

// rawDB opens the chain directory with plain Pebble for tampering.
func rawDB(t *testing.T, dir string, fn func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: newPebbleLogger(zap.NewNop())})
	require.NoError(t, err)
	fn(db)
	require.NoError(t, db.Close())
}

func TestOpenRefusesCorruption(t *testing.T) {
	setup := func(t *testing.T) (*env, []Block) {
		e := newEnv(t, localSpec(t))
		a := e.extend(e.chain.Genesis().Header, 1, 6, "a")
		require.NoError(t, e.chain.Close())
		e.chain = nil
		return e, a
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *pebble.DB, a []Block)
		is     error
		sub    string
	}{
		{"unknown schema version", func(t *testing.T, db *pebble.DB, _ []Block) {
			require.NoError(t, db.Set(keySchema, []byte{0, 0, 0, 9}, pebble.Sync))
		}, ErrSchema, "schema 9, this node reads version 3"},
		{"schema of blocks without state", func(t *testing.T, db *pebble.DB, _ []Block) {
			require.NoError(t, db.Set(keySchema, []byte{0, 0, 0, 2}, pebble.Sync))
		}, ErrSchema, "blocks without a state root"},
		{"schema marker missing", func(t *testing.T, db *pebble.DB, _ []Block) {
			require.NoError(t, db.Delete(keySchema, pebble.Sync))
		}, ErrSchema, "no chain schema marker"},
		{"chain identity truncated", func(t *testing.T, db *pebble.DB, _ []Block) {
			require.NoError(t, db.Set(keyGenesis, []byte{1, 2}, pebble.Sync))
		}, ErrCorrupted, "chain identity"},
		{"best pointer garbage", func(t *testing.T, db *pebble.DB, _ []Block) {
			require.NoError(t, db.Set(keyBest, []byte("garbage"), pebble.Sync))
		}, ErrCorrupted, "best block pointer is 7 bytes"},
		{"best block missing", func(t *testing.T, db *pebble.DB, a []Block) {
			require.NoError(t, db.Delete(hashKey(tagHeader, a[5].Hash()), pebble.Sync))
		}, ErrCorrupted, "missing"},
		{"best header altered", func(t *testing.T, db *pebble.DB, a []Block) {
			h := a[5].Header
			h.Slot++
			require.NoError(t, db.Set(hashKey(tagHeader, a[5].Hash()), marshalHeader(h), pebble.Sync))
		}, ErrCorrupted, "hashes to"},
		{"best header truncated", func(t *testing.T, db *pebble.DB, a []Block) {
			require.NoError(t, db.Set(hashKey(tagHeader, a[5].Hash()), []byte("flare/block/v2"), pebble.Sync))
		}, ErrCorrupted, "not a flare/block/v2 header"},
		{"canonical index lost the best block", func(t *testing.T, db *pebble.DB, _ []Block) {
			require.NoError(t, db.Delete(canonicalKey(6), pebble.Sync))
		}, ErrCorrupted, "not canonical"},
		{"canonical genesis replaced", func(t *testing.T, db *pebble.DB, a []Block) {
			h := a[0].Hash()
			require.NoError(t, db.Set(canonicalKey(0), h[:], pebble.Sync))
		}, ErrCorrupted, "genesis"},
		{"finalized checkpoint garbage", func(t *testing.T, db *pebble.DB, _ []Block) {
			require.NoError(t, db.Set(keyFinalized, []byte{1}, pebble.Sync))
		}, ErrCorrupted, "finalized checkpoint"},
		{"justified checkpoint off the best chain", func(t *testing.T, db *pebble.DB, a []Block) {
			require.NoError(t, db.Set(keyJustified, marshalCheckpoint(checkpoint.Checkpoint{Number: 1, Hash: a[2].Hash()}), pebble.Sync))
		}, ErrCorrupted, "justified checkpoint"},
		{"best is not a tip", func(t *testing.T, db *pebble.DB, a []Block) {
			require.NoError(t, db.Delete(hashKey(tagTip, a[5].Hash()), pebble.Sync))
		}, ErrCorrupted, "not a tip"},
		{"malformed tip entry", func(t *testing.T, db *pebble.DB, _ []Block) {
			require.NoError(t, db.Set([]byte{tagTip, 1, 2}, u64(1), pebble.Sync))
		}, ErrCorrupted, "malformed tip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, a := setup(t)
			rawDB(t, e.dir, func(db *pebble.DB) { tc.tamper(t, db, a) })
			_, err := OpenChain(e.dir, e.spec, ChainOptions{})
			require.ErrorIs(t, err, tc.is)
			require.Contains(t, err.Error(), tc.sub)
			require.NotContains(t, err.Error(), "\n")
			// The failed open released its lock.
			rawDB(t, e.dir, func(*pebble.DB) {})
		})
	}
}

func TestOpenRefusesForeignDatabase(t *testing.T) {
	dir := t.TempDir()
	rawDB(t, dir, func(db *pebble.DB) {
		require.NoError(t, db.Set([]byte("some/other/app"), []byte("data"), pebble.Sync))
	})
	_, err := OpenChain(dir, localSpec(t), ChainOptions{})
	require.ErrorIs(t, err, ErrSchema)
}

func TestCorruptedBlockReadsAreReported(t *testing.T) {
	e := newEnv(t, localSpec(t))
	a := e.extend(e.chain.Genesis().Header, 1, 3, "a")
	require.NoError(t, e.chain.Close())
	e.chain = nil
	rawDB(t, e.dir, func(db *pebble.DB) {
		other, err := EncodeBlock(a[0])
		require.NoError(t, err)
		require.NoError(t, db.Set(hashKey(tagBlock, a[1].Hash()), other, pebble.Sync))
	})
	e.open()
	_, _, err := e.chain.BlockByHash(a[1].Hash())
	require.ErrorIs(t, err, ErrCorrupted)
	_, err = e.chain.BlocksByRange(0, 4)
	require.ErrorIs(t, err, ErrCorrupted)
}

func TestCorruptedFileIsRefused(t *testing.T) {
	e := newEnv(t, localSpec(t))
	e.extend(e.chain.Genesis().Header, 1, 20, strings.Repeat("x", 100))
	require.NoError(t, e.chain.db.Flush())
	require.NoError(t, e.chain.Close())
	e.chain = nil
	// Flip bytes in the middle of every table file.
	tables, err := filepath.Glob(filepath.Join(e.dir, "*.sst"))
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	for _, p := range tables {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		for i := len(data) / 4; i < len(data)/2; i += 7 {
			data[i] ^= 0x5a
		}
		require.NoError(t, os.WriteFile(p, data, 0o600))
	}
	c, err := OpenChain(e.dir, e.spec, ChainOptions{})
	if err == nil {
		_ = c.Close()
	}
	require.ErrorIs(t, err, ErrCorrupted)
	require.NotContains(t, err.Error(), "\n")
	t.Logf("refused with: %v", err)
}

func TestReadOnly(t *testing.T) {
	e := newEnv(t, localSpec(t))
	a := e.extend(e.chain.Genesis().Header, 1, 5, "a")
	require.NoError(t, e.chain.Close())
	e.chain = nil

	ro, err := OpenChain(e.dir, e.spec, ChainOptions{ReadOnly: true})
	require.NoError(t, err)
	defer ro.Close()
	require.Equal(t, a[4].Header, ro.Best())
	got, err := ro.BlocksByRange(1, 5)
	require.NoError(t, err)
	require.Equal(t, hashes(a), hashes(got))
	_, err = ro.Import(context.Background(), makeBlock(e.spec, e.keys, a[4].Header, 6))
	require.ErrorIs(t, err, ErrReadOnly)
	_, err = ro.SetJustified(context.Background(), cp(1, a[3]))
	require.ErrorIs(t, err, ErrReadOnly)
	require.ErrorIs(t, ro.SetFinalized(context.Background(), cp(1, a[3])), ErrReadOnly)

	_, err = OpenChain(filepath.Join(t.TempDir(), "missing"), e.spec, ChainOptions{ReadOnly: true})
	require.ErrorIs(t, err, os.ErrNotExist)
	empty := t.TempDir()
	_, err = OpenChain(empty, e.spec, ChainOptions{ReadOnly: true})
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestClosed(t *testing.T) {
	e := newEnv(t, localSpec(t))
	require.NoError(t, e.chain.Close())
	require.NoError(t, e.chain.Close())
	_, err := e.chain.Import(context.Background(), e.block(e.chain.Genesis().Header, 1))
	require.ErrorIs(t, err, ErrClosed)
	_, _, err = e.chain.BlockByHash(e.chain.Genesis().Hash())
	require.ErrorIs(t, err, ErrClosed)
	_, err = e.chain.BlocksByRange(0, 1)
	require.ErrorIs(t, err, ErrClosed)
	_, err = e.chain.SetJustified(context.Background(), e.chain.Finalized())
	require.ErrorIs(t, err, ErrClosed)
	e.chain = nil
}

// TestImportRechecksFinalityOnForks plants a fork that does not descend from
// the finalized block directly in the database (pruning would have removed
// it) and checks that Import still refuses to extend it.
func TestImportRechecksFinalityOnForks(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	a := e.extend(e.chain.Genesis().Header, 1, 8, "a")
	fork := make([]Block, 4) // #3..#6 on a2
	parent := a[1].Header
	for i := range fork {
		fork[i] = e.block(parent, uint64(40+i), []byte("fork"))
		parent = fork[i].Header
	}
	require.NoError(t, e.chain.SetFinalized(ctx, cp(1, a[3])))
	require.NoError(t, e.chain.Close())
	e.chain = nil
	rawDB(t, e.dir, func(db *pebble.DB) {
		for _, b := range fork[:3] {
			enc, err := EncodeBlock(b)
			require.NoError(t, err)
			require.NoError(t, db.Set(hashKey(tagHeader, b.Hash()), marshalHeader(b.Header), pebble.NoSync))
			require.NoError(t, db.Set(hashKey(tagBlock, b.Hash()), enc, pebble.NoSync))
		}
		require.NoError(t, db.Set(hashKey(tagTip, fork[2].Hash()), u64(5), pebble.Sync))
	})
	e.open()
	_, err := e.chain.Import(ctx, fork[3])
	require.ErrorIs(t, err, ErrConflictsFinalized)
	require.Contains(t, err.Error(), "does not descend from finalized")
	require.Equal(t, a[7].Hash(), e.chain.BestHash())
}
