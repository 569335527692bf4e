package state

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/trie"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

// reachable returns the stored (hashed) nodes of the states roots, with the
// number of trie paths of each, failing the test when a state is incomplete.
func reachable(t testing.TB, s *DB, roots ...checkpoint.Hash) map[common.Hash]bool {
	t.Helper()
	out := map[common.Hash]bool{}
	for _, root := range roots {
		if root == EmptyRoot {
			continue
		}
		tr, err := s.openTrie(root)
		require.NoError(t, err)
		it, err := tr.NodeIterator(nil)
		require.NoError(t, err)
		for it.Next(true) {
			if h := it.Hash(); h != (common.Hash{}) {
				out[h] = true
			}
		}
		require.NoError(t, it.Error(), "state %x incomplete", root[:4])
	}
	return out
}

// complete fails unless every node of root is readable from disk (the
// cache bypassed).
func complete(t testing.TB, db *pebble.DB, root checkpoint.Hash) {
	t.Helper()
	s := Open(db, nil) // a fresh cache
	reachable(t, s, root)
}

// diskNodes returns the hashes of the stored nodes.
func diskNodes(t testing.TB, db *pebble.DB) map[common.Hash]uint32 {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagNode}, UpperBound: []byte{tagNode + 1}})
	require.NoError(t, err)
	out := map[common.Hash]uint32{}
	for ok := it.First(); ok; ok = it.Next() {
		out[common.BytesToHash(it.Key()[1:])] = binary.BigEndian.Uint32(it.Value())
	}
	require.NoError(t, it.Close())
	return out
}

// requireExactly checks that the disk holds exactly the nodes of roots.
func requireExactly(t testing.TB, db *pebble.DB, s *DB, roots ...checkpoint.Hash) {
	t.Helper()
	want := reachable(t, Open(db, nil), roots...)
	got := diskNodes(t, db)
	require.Equal(t, len(want), len(got), "stored nodes")
	for h := range want {
		require.Contains(t, got, h)
	}
}

func manySpec(n int) *chainspec.Spec {
	s := &chainspec.Spec{MinFee: 1}
	for i := range n {
		s.Balances = append(s.Balances, chainspec.Balance{Address: testAddr(i).String(), Balance: 1_000_000})
	}
	return s
}

// chainState tracks nonces to make valid random blocks.
type chainState struct {
	n      int
	nonces map[int]uint64
}

func (c *chainState) clone() *chainState {
	m := make(map[int]uint64, len(c.nonces))
	for k, v := range c.nonces {
		m[k] = v
	}
	return &chainState{n: c.n, nonces: m}
}

func (c *chainState) block(rng *rand.Rand, k int) [][]byte {
	var body [][]byte
	for range k {
		from := rng.IntN(c.n)
		body = append(body, signed(from, testAddr(rng.IntN(c.n+3)), uint64(rng.IntN(100)), 1, c.nonces[from]).Encode())
		c.nonces[from]++
	}
	return body
}

func write(t testing.TB, db *pebble.DB, s *DB, parent checkpoint.Hash, env Env, body [][]byte, block checkpoint.Hash) checkpoint.Hash {
	t.Helper()
	r, err := s.Execute(parent, env, body, nil)
	require.NoError(t, err)
	commitResult(t, db, r, block)
	return r.Root
}

func apply(t testing.TB, db *pebble.DB, f func(w pebble.Writer) error) {
	t.Helper()
	b := db.NewBatch()
	require.NoError(t, f(b))
	require.NoError(t, b.Commit(pebble.Sync))
}

func TestForksDiscard(t *testing.T) {
	db, s, _ := newTestDB(t)
	g := commitGenesis(t, db, s, manySpec(60))
	requireExactly(t, db, s, g)
	rng := rand.New(rand.NewPCG(3, 4))
	base := &chainState{n: 60, nonces: map[int]uint64{}}

	for _, tc := range []struct {
		name      string
		identical bool
		sameProp  bool
	}{
		{"different bodies", false, false},
		{"same body, other proposer", true, false},
		{"identical content", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, cb := base.clone(), base.clone()
			bodyA := ca.block(rng, 20)
			bodyB := cb.block(rng, 15)
			envB := testEnv(1)
			if tc.identical {
				bodyB, cb = bodyA, ca.clone()
			}
			if !tc.sameProp {
				envB.Proposer = testAddr(58)
			}
			a := write(t, db, s, g, testEnv(1), bodyA, blockHash(tc.name, "a"))
			b := write(t, db, s, g, envB, bodyB, blockHash(tc.name, "b"))
			if tc.identical && tc.sameProp {
				require.Equal(t, a, b)
			}
			requireExactly(t, db, s, g, a, b)
			// A child on each, then discard fork b and its child.
			a2 := write(t, db, s, a, testEnv(2), ca.block(rng, 5), blockHash(tc.name, "a2"))
			b2 := write(t, db, s, b, envB, cb.clone().block(rng, 5), blockHash(tc.name, "b2"))
			requireExactly(t, db, s, g, a, b, a2, b2)
			apply(t, db, func(w pebble.Writer) error { return s.Discard(w, blockHash(tc.name, "b2")) })
			apply(t, db, func(w pebble.Writer) error { return s.Discard(w, blockHash(tc.name, "b")) })
			complete(t, db, a)
			complete(t, db, a2)
			requireExactly(t, db, s, g, a, a2)
			// Discarding again is a no-op.
			apply(t, db, func(w pebble.Writer) error { return s.Discard(w, blockHash(tc.name, "b")) })
			requireExactly(t, db, s, g, a, a2)
			// Back to the genesis only.
			apply(t, db, func(w pebble.Writer) error { return s.Discard(w, blockHash(tc.name, "a2")) })
			apply(t, db, func(w pebble.Writer) error { return s.Discard(w, blockHash(tc.name, "a")) })
			requireExactly(t, db, s, g)
			has, err := s.HasState(a)
			require.NoError(t, err)
			require.Equal(t, a == g, has)
		})
	}
}

func TestPruneCanonicalChain(t *testing.T) {
	db, s, _ := newTestDB(t)
	g := commitGenesis(t, db, s, manySpec(80))
	rng := rand.New(rand.NewPCG(5, 6))
	cs := &chainState{n: 80, nonces: map[int]uint64{}}

	const length, retention = 14, 3
	hashes := []checkpoint.Hash{testGenesis}
	roots := []checkpoint.Hash{g}
	type fork struct {
		parent int
		blocks []checkpoint.Hash
		roots  []checkpoint.Hash
	}
	var forks []*fork
	for i := 1; i <= length; i++ {
		// A fork of two blocks off every third block; one of them repeats
		// the canonical body (identical content, same root).
		if i%3 == 0 {
			fc := cs.clone()
			f := &fork{parent: i - 1}
			p := roots[i-1]
			for k := range 2 {
				h := blockHash("fork", i, k)
				p = write(t, db, s, p, testEnv(uint64(i+k)), fc.block(rng, 6), h)
				f.blocks, f.roots = append(f.blocks, h), append(f.roots, p)
			}
			forks = append(forks, f)
		}
		body := cs.block(rng, 1+rng.IntN(20))
		h := blockHash("canon", i)
		root := write(t, db, s, roots[i-1], testEnv(uint64(i)), body, h)
		if i%4 == 0 {
			// Identical content under another block hash.
			twin := write(t, db, s, roots[i-1], testEnv(uint64(i)), body, blockHash("twin", i))
			require.Equal(t, root, twin)
			forks = append(forks, &fork{parent: i - 1, blocks: []checkpoint.Hash{blockHash("twin", i)}, roots: []checkpoint.Hash{twin}})
		}
		hashes, roots = append(hashes, h), append(roots, root)
	}
	before := countNodes(t, db)

	// Finality advances one block at a time; the canonical block at
	// finalized-retention is pruned after the forks that are no longer
	// descendants of the finalized block are discarded.
	for fin := 1; fin <= length; fin++ {
		var kept []*fork
		for _, f := range forks {
			if f.parent < fin { // forks off below the finalized block are abandoned
				for k := len(f.blocks) - 1; k >= 0; k-- {
					apply(t, db, func(w pebble.Writer) error { return s.Discard(w, f.blocks[k]) })
				}
				continue
			}
			kept = append(kept, f)
		}
		forks = kept
		low := fin - retention
		if low >= 0 {
			apply(t, db, func(w pebble.Writer) error { return s.Prune(w, hashes[low]) })
		}
		retained := append([]checkpoint.Hash(nil), roots[max(low, 0):]...)
		for _, f := range forks {
			retained = append(retained, f.roots...)
		}
		for _, r := range retained {
			complete(t, db, r)
		}
		requireExactly(t, db, s, retained...)
	}
	after := countNodes(t, db)
	t.Logf("nodes on disk: %d before pruning, %d after", before, after)
	require.Less(t, after, before)
	// A pruned ancestor's state is gone (its root was replaced).
	has, err := s.HasState(roots[0])
	require.NoError(t, err)
	require.False(t, has)
	_, err = s.Execute(roots[0], testEnv(1), nil, nil)
	require.ErrorIs(t, err, ErrMissingState)
	// Journals and the tx index of pruned blocks are gone.
	j, err := s.loadJournal(db, hashes[1])
	require.NoError(t, err)
	require.Nil(t, j)
	_ = tx.Hash{}
	_ = trie.ErrCommitted
}

func TestPruneAndDiscardInOneIndexedBatch(t *testing.T) {
	db, s, _ := newTestDB(t)
	g := commitGenesis(t, db, s, manySpec(30))
	rng := rand.New(rand.NewPCG(7, 8))
	cs := &chainState{n: 30, nonces: map[int]uint64{}}
	r1, err := s.Execute(g, testEnv(1), cs.block(rng, 10), nil)
	require.NoError(t, err)
	commitResult(t, db, r1, blockHash(1)) // Execute reads committed nodes
	fc := cs.clone()
	r2, err := s.Execute(r1.Root, testEnv(2), cs.block(rng, 10), nil)
	require.NoError(t, err)
	f2, err := s.Execute(r1.Root, testEnv(2), fc.block(rng, 10), nil)
	require.NoError(t, err)
	// Everything in one indexed batch: each operation sees the previous.
	b := db.NewIndexedBatch()
	require.NoError(t, r2.Write(b, blockHash(2)))
	require.NoError(t, f2.Write(b, blockHash("f", 2)))
	require.NoError(t, s.Discard(b, blockHash("f", 2)))
	require.NoError(t, s.Prune(b, testGenesis))
	require.NoError(t, s.Prune(b, blockHash(1)))
	require.NoError(t, b.Commit(pebble.Sync))
	complete(t, db, r2.Root)
	requireExactly(t, db, s, r1.Root, r2.Root)
}
