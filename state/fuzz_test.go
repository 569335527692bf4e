package state

import (
	"errors"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/trie"
	"github.com/ethereum/go-ethereum/triedb/database"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

// FuzzExecute executes a body derived from the input: each 6 bytes are a
// transfer (sender, recipient, amount, fee, nonce offset, corruption), the
// rest raw bytes taken as an encoded transaction. Execute must not panic and
// must agree with the reference model: the same first failing index and
// rule, or the same accounts.
func FuzzExecute(f *testing.F) {
	db, s, _ := newTestDB(f)
	balances := []uint64{1000, 200, 5, 0}
	root := commitGenesis(f, db, s, testSpec(balances...))
	f.Add([]byte{0, 1, 10, 1, 0, 0})
	f.Add([]byte{0, 1, 10, 1, 0, 0, 0, 1, 10, 1, 0, 0})
	f.Add([]byte{1, 1, 255, 0, 0, 0, 3, 2, 1, 1, 1, 1})
	f.Add([]byte{2, 0, 4, 1, 0, 2, 0x0a, 0x20})
	f.Add([]byte{0, 0, 0, 1, 0, 3})
	sigs := tx.NewSigCache(4096)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := model{}
		for i, b := range balances {
			m[testAddr(i)] = Account{Balance: b}
		}
		env := testEnv(1)
		var body [][]byte
		wantAt, wantRule := -1, error(nil)
		for len(data) > 0 && len(body) < 16 {
			var enc []byte
			var tr *tx.Tx
			sigOK := true
			if len(data) < 6 {
				enc, data = data, nil
			} else {
				op := data[:6]
				data = data[6:]
				from := int(op[0] % 4)
				nonce := m[testAddr(from)].Nonce + uint64(op[4]%3) - 1
				if op[4]%3 == 0 && m[testAddr(from)].Nonce == 0 {
					nonce = 1 << 40
				}
				tr = &tx.Tx{Genesis: testGenesis, To: testAddr(int(op[1] % 5)), Amount: uint64(op[2]) * uint64(op[2]), Fee: uint64(op[3] % 4), Nonce: nonce}
				if op[5]%8 == 3 {
					tr.Genesis = checkpoint.HashOf(op)
				}
				if op[2] == 255 {
					tr.Amount = ^uint64(0) - uint64(op[3]%2)
				}
				tr.Sign(testKey(from))
				if op[5]%8 == 1 {
					tr.Signature[op[5]%64] ^= 0x80
					sigOK = false
				}
				enc = tr.Encode()
				if op[5]%8 == 2 {
					enc = enc[:len(enc)-int(op[2]%8)-1]
					tr = nil
				}
			}
			body = append(body, enc)
			if wantAt >= 0 {
				continue
			}
			if tr == nil {
				if d, err := tx.Decode(enc); err == nil {
					tr = d // raw bytes that happen to decode
					sigOK = d.Verify() == nil
				} else {
					wantAt, wantRule = len(body)-1, ErrMalformed
					continue
				}
			}
			if err := m.apply(env, tr, sigOK); err != nil {
				wantAt, wantRule = len(body)-1, err
			}
		}
		r, err := s.Execute(root, env, body, sigs)
		if wantAt >= 0 {
			require.ErrorIs(t, err, ErrInvalidTx)
			require.True(t, errors.Is(err, wantRule), "want %v, got %v", wantRule, err)
			return
		}
		require.NoError(t, err)
		require.Len(t, r.Receipts, len(body))
		// The result's accounts, from its node set, match the model.
		for a, want := range m {
			got, ok := resultAccount(t, s, r, a)
			require.True(t, ok)
			require.Equal(t, want, got)
		}
	})
}

// resultAccount reads a from an unwritten result: its node set overlaid on
// the committed nodes.
func resultAccount(t testing.TB, s *DB, r *Result, a tx.Address) (Account, bool) {
	t.Helper()
	if r.nodes == nil {
		acc, ok, err := s.Account(r.Root, a)
		require.NoError(t, err)
		return acc, ok
	}
	over := overlay{s: s, nodes: map[common.Hash][]byte{}}
	for _, n := range r.nodes.Nodes {
		if !n.IsDeleted() {
			over.nodes[n.Hash] = n.Blob
		}
	}
	tr, err := trie.New(trie.StateTrieID(common.Hash(r.Root)), over)
	require.NoError(t, err)
	k := Key(a)
	v, err := tr.Get(k[:])
	require.NoError(t, err)
	if v == nil {
		return Account{}, false
	}
	acc, err := decodeAccount(v)
	require.NoError(t, err)
	return acc, true
}

// overlay reads nodes from a map, then from the committed store.
type overlay struct {
	s     *DB
	nodes map[common.Hash][]byte
}

func (o overlay) NodeReader(common.Hash) (database.NodeReader, error) { return o, nil }

func (o overlay) Node(_ common.Hash, _ []byte, h common.Hash) ([]byte, error) {
	if b, ok := o.nodes[h]; ok {
		return b, nil
	}
	return o.s.node(h)
}
