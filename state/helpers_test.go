package state

import (
	"crypto/ed25519"
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

var testGenesis = checkpoint.HashOf([]byte("test genesis block"))

func openPebble(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	require.NoError(t, err)
	return db
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(format)
}

// newTestDB opens a fresh on-disk Pebble DB closed at the end of the test.
func newTestDB(t testing.TB) (*pebble.DB, *DB, string) {
	t.Helper()
	dir := t.TempDir()
	db := openPebble(t, dir)
	t.Cleanup(func() { _ = db.Close() })
	return db, Open(db, zap.NewNop()), dir
}

func testKey(i int) ed25519.PrivateKey {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i)+1)
	seed[31] = 0x5a
	return ed25519.NewKeyFromSeed(seed[:])
}

func testAddr(i int) tx.Address { return tx.AddressOf(testKey(i).Public().(ed25519.PublicKey)) }

func testSpec(balances ...uint64) *chainspec.Spec {
	s := &chainspec.Spec{MinFee: 1}
	for i, b := range balances {
		s.Balances = append(s.Balances, chainspec.Balance{Address: testAddr(i).String(), Balance: b})
	}
	return s
}

// commitGenesis writes the genesis state of spec and returns its root.
func commitGenesis(t testing.TB, db *pebble.DB, s *DB, spec *chainspec.Spec) checkpoint.Hash {
	t.Helper()
	b := db.NewBatch()
	root, err := s.WriteGenesis(spec, b, testGenesis)
	require.NoError(t, err)
	require.NoError(t, b.Commit(pebble.Sync))
	return root
}

func signed(from int, to tx.Address, amount, fee, nonce uint64) *tx.Tx {
	t := &tx.Tx{Genesis: testGenesis, To: to, Amount: amount, Fee: fee, Nonce: nonce}
	t.Sign(testKey(from))
	return t
}

func commitResult(t testing.TB, db *pebble.DB, r *Result, block checkpoint.Hash) {
	t.Helper()
	b := db.NewBatch()
	require.NoError(t, r.Write(b, block))
	require.NoError(t, b.Commit(pebble.Sync))
}

func blockHash(parts ...any) checkpoint.Hash {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		case string:
			b = append(b, v...)
		}
	}
	return checkpoint.HashOf(b)
}

// countNodes returns the number of trie node records on disk.
func countNodes(t testing.TB, db *pebble.DB) int {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagNode}, UpperBound: []byte{tagNode + 1}})
	require.NoError(t, err)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	return n
}

func encodeAll(txs ...*tx.Tx) [][]byte {
	out := make([][]byte, len(txs))
	for i, t := range txs {
		out[i] = t.Encode()
	}
	return out
}
