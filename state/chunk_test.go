package state

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// syncSource is a state of n genesis accounts and a few blocks.
func syncSource(t testing.TB, n int) (*pebble.DB, *DB, checkpoint.Hash) {
	db, s, _ := newTestDB(t)
	root := commitGenesis(t, db, s, manySpec(n))
	rng := rand.New(rand.NewPCG(9, 10))
	cs := &chainState{n: n, nonces: map[int]uint64{}}
	for i := 1; i <= 3; i++ {
		root = write(t, db, s, root, testEnv(uint64(i)), cs.block(rng, 20), blockHash("src", i))
	}
	return db, s, root
}

// leaves returns every key and value of the state root.
func leaves(t testing.TB, s *DB, root checkpoint.Hash) ([][]byte, [][]byte) {
	c, err := s.ExportChunk(root, [32]byte{}, 0, 0)
	require.NoError(t, err)
	require.False(t, c.More)
	require.Empty(t, c.Proof)
	return c.Keys, c.Values
}

func TestChunkRoundTrip(t *testing.T) {
	_, src, root := syncSource(t, 700)
	wantK, wantV := leaves(t, src, root)
	require.GreaterOrEqual(t, len(wantK), 700)
	for _, tc := range []struct {
		name        string
		maxAccounts int
		maxBytes    int
	}{
		{"one account", 1, 0},
		{"7 accounts", 7, 0},
		{"100 accounts", 100, 0},
		{"1 KB", 0, 1000},
		{"whole state", 0, 0},
		{"accounts and bytes", 50, 480},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.maxAccounts == 1 {
				t.Skip("slow")
			}
			db, dst, _ := newTestDB(t)
			sy, err := dst.NewSyncer(root)
			require.NoError(t, err)
			chunks := 0
			for {
				start, done := sy.Next()
				if done {
					break
				}
				c, err := src.ExportChunk(root, start, tc.maxAccounts, tc.maxBytes)
				require.NoError(t, err)
				require.NoError(t, VerifyChunk(root, start, c))
				if tc.maxAccounts > 0 {
					require.LessOrEqual(t, len(c.Keys), tc.maxAccounts)
				}
				require.NoError(t, sy.Add(c))
				chunks++
			}
			require.EqualValues(t, len(wantK), sy.Accounts())
			b := db.NewBatch()
			require.NoError(t, sy.Finish(b, blockHash("synced")))
			require.NoError(t, b.Commit(pebble.Sync))
			t.Logf("%d chunks", chunks)

			complete(t, db, root)
			requireExactly(t, db, dst, root)
			gotK, gotV := leaves(t, dst, root)
			require.Equal(t, wantK, gotK)
			require.Equal(t, wantV, gotV)
			// Staging is gone.
			it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagSync}, UpperBound: []byte{tagSync + 1}})
			require.NoError(t, err)
			require.False(t, it.First())
			require.NoError(t, it.Close())
			// The synced version executes blocks, and prunes and discards
			// consistently.
			acc, _, err := dst.Account(root, testAddr(3))
			require.NoError(t, err)
			next, err := dst.Execute(root, testEnv(9), encodeAll(signed(3, testAddr(4), 1, 1, acc.Nonce)), nil)
			require.NoError(t, err)
			commitResult(t, db, next, blockHash("after sync"))
			apply(t, db, func(w pebble.Writer) error { return dst.Prune(w, blockHash("synced")) })
			requireExactly(t, db, dst, root, next.Root)
			apply(t, db, func(w pebble.Writer) error { return dst.Prune(w, blockHash("after sync")) })
			requireExactly(t, db, dst, next.Root)
		})
	}
}

func TestChunkForged(t *testing.T) {
	_, src, root := syncSource(t, 300)
	start := [32]byte{0x40}
	c, err := src.ExportChunk(root, start, 20, 0)
	require.NoError(t, err)
	require.True(t, c.More)
	require.NoError(t, VerifyChunk(root, start, c))
	other, err := src.ExportChunk(root, [32]byte{0x80}, 20, 0)
	require.NoError(t, err)
	whole, err := src.ExportChunk(root, [32]byte{}, 0, 0)
	require.NoError(t, err)

	cp := func(c Chunk) Chunk {
		return Chunk{Keys: clone2(c.Keys), Values: clone2(c.Values), Proof: clone2(c.Proof), More: c.More}
	}
	for _, tc := range []struct {
		name  string
		root  checkpoint.Hash
		start [32]byte
		edit  func(c *Chunk)
	}{
		{name: "changed value", edit: func(c *Chunk) { c.Values[5][3] ^= 1 }},
		{name: "changed last value", edit: func(c *Chunk) { c.Values[19][15] ^= 1 }},
		{name: "changed key", edit: func(c *Chunk) { c.Keys[7][31] ^= 1 }},
		{name: "dropped key", edit: func(c *Chunk) {
			c.Keys = append(c.Keys[:4:4], c.Keys[5:]...)
			c.Values = append(c.Values[:4:4], c.Values[5:]...)
		}},
		{name: "dropped first key", edit: func(c *Chunk) { c.Keys, c.Values = c.Keys[1:], c.Values[1:] }},
		{name: "dropped last key", edit: func(c *Chunk) { c.Keys, c.Values = c.Keys[:19], c.Values[:19] }},
		{name: "wrong proof", edit: func(c *Chunk) { c.Proof = other.Proof }},
		{name: "no proof", edit: func(c *Chunk) { c.Proof = nil }},
		{name: "truncated proof", edit: func(c *Chunk) { c.Proof = c.Proof[:len(c.Proof)-1] }},
		{name: "more flipped", edit: func(c *Chunk) { c.More = false }},
		{name: "no leaves", edit: func(c *Chunk) { c.Keys, c.Values, c.More = nil, nil, false }},
		{name: "inserted leaf", edit: func(c *Chunk) {
			k := append([]byte(nil), c.Keys[2]...)
			k[31]++
			c.Keys = append(c.Keys[:3:3], append([][]byte{k}, c.Keys[3:]...)...)
			c.Values = append(c.Values[:3:3], append([][]byte{c.Values[2]}, c.Values[3:]...)...)
		}},
		{name: "wrong root", root: checkpoint.HashOf([]byte("r")), edit: func(*Chunk) {}},
		{name: "other start", start: [32]byte{0x30}, edit: func(*Chunk) {}},
		{name: "short value", edit: func(c *Chunk) { c.Values[0] = c.Values[0][:15] }},
		{name: "extra value", edit: func(c *Chunk) { c.Values = append(c.Values, c.Values[0]) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := cp(c)
			tc.edit(&f)
			r, s := root, start
			if tc.root != (checkpoint.Hash{}) {
				r = tc.root
			}
			if tc.start != ([32]byte{}) {
				s = tc.start
			}
			require.ErrorIs(t, VerifyChunk(r, s, f), ErrBadChunk)
		})
	}
	// The whole state without proof: a changed value or a dropped leaf is
	// refused too.
	require.NoError(t, VerifyChunk(root, [32]byte{}, whole))
	f := cp(whole)
	f.Values[100][0] ^= 1
	require.ErrorIs(t, VerifyChunk(root, [32]byte{}, f), ErrBadChunk)
	f = cp(whole)
	f.Keys, f.Values = f.Keys[1:], f.Values[1:]
	require.ErrorIs(t, VerifyChunk(root, [32]byte{}, f), ErrBadChunk)

	// A Syncer refuses a forged chunk and keeps its progress.
	_, dst, _ := newTestDB(t)
	sy, err := dst.NewSyncer(root)
	require.NoError(t, err)
	bad := cp(whole)
	bad.Values[0][0] ^= 1
	require.ErrorIs(t, sy.Add(bad), ErrBadChunk)
	n, done := sy.Next()
	require.Equal(t, [32]byte{}, n)
	require.False(t, done)
	require.Zero(t, sy.Accounts())
}

func TestSyncResumeAfterReopen(t *testing.T) {
	_, src, root := syncSource(t, 500)
	dir := t.TempDir()
	db := openPebble(t, dir)
	dst := Open(db, zap.NewNop())
	sy, err := dst.NewSyncer(root)
	require.NoError(t, err)
	for range 3 {
		start, _ := sy.Next()
		c, err := src.ExportChunk(root, start, 64, 0)
		require.NoError(t, err)
		require.NoError(t, sy.Add(c))
	}
	at, _ := sy.Next()
	staged := sy.Accounts()
	require.EqualValues(t, 192, staged)
	// A chunk fetched but not added when the process dies.
	_, err = src.ExportChunk(root, at, 64, 0)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	db = openPebble(t, dir)
	defer db.Close()
	dst = Open(db, zap.NewNop())
	sy, err = dst.NewSyncer(root)
	require.NoError(t, err)
	resumed, done := sy.Next()
	require.False(t, done)
	require.Equal(t, at, resumed)
	require.Equal(t, staged, sy.Accounts())
	for {
		start, done := sy.Next()
		if done {
			break
		}
		c, err := src.ExportChunk(root, start, 64, 0)
		require.NoError(t, err)
		require.NoError(t, sy.Add(c))
	}
	b := db.NewBatch()
	require.NoError(t, sy.Finish(b, blockHash("synced")))
	require.NoError(t, b.Commit(pebble.Sync))
	complete(t, db, root)
	wk, wv := leaves(t, src, root)
	gk, gv := leaves(t, dst, root)
	require.Equal(t, wk, gk)
	require.Equal(t, wv, gv)
	// Discarding the synced version removes every node.
	apply(t, db, func(w pebble.Writer) error { return dst.Discard(w, blockHash("synced")) })
	require.Zero(t, countNodes(t, db))
	_ = bytes.Compare
}
