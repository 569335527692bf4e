package state

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/stretchr/testify/require"
)

// independentVerify checks an account proof the way docs/state.md tells an
// independent client to, with only keccak256 and an RLP decoder (no trie
// code): it returns the 16-byte leaf value, or nil for absence.
func independentVerify(root [32]byte, address []byte, proof [][]byte) ([]byte, error) {
	byHash := map[[32]byte][]byte{}
	for _, n := range proof {
		byHash[[32]byte(crypto.Keccak256(n))] = n
	}
	key := crypto.Keccak256(address)
	nib := make([]byte, 0, 64)
	for _, b := range key {
		nib = append(nib, b>>4, b&0x0f)
	}
	cur, ok := byHash[root]
	if !ok {
		return nil, errors.New("root node missing")
	}
	for {
		var items [][]byte // raw RLP of each item
		content, _, err := rlp.SplitList(cur)
		if err != nil {
			return nil, err
		}
		for len(content) > 0 {
			_, _, rest, err := rlp.Split(content)
			if err != nil {
				return nil, err
			}
			items = append(items, content[:len(content)-len(rest)])
			content = rest
		}
		var next []byte // raw RLP of the child reference
		switch len(items) {
		case 17:
			if len(nib) == 0 {
				return nil, errors.New("value in a branch")
			}
			next, nib = items[nib[0]], nib[1:]
		case 2:
			hp, _, err := rlp.SplitString(items[0])
			if err != nil || len(hp) == 0 {
				return nil, errors.New("bad path")
			}
			flag := hp[0] >> 4
			var path []byte
			if flag&1 == 1 {
				path = append(path, hp[0]&0x0f)
			}
			for _, b := range hp[1:] {
				path = append(path, b>>4, b&0x0f)
			}
			if !bytes.HasPrefix(nib, path) {
				return nil, nil // diverging path: absent
			}
			nib = nib[len(path):]
			if flag&2 != 0 { // leaf
				if len(nib) != 0 {
					return nil, errors.New("short leaf")
				}
				v, _, err := rlp.SplitString(items[1])
				return v, err
			}
			next = items[1]
		default:
			return nil, errors.New("bad node")
		}
		kind, val, _, err := rlp.Split(next)
		if err != nil {
			return nil, err
		}
		switch {
		case kind == rlp.List:
			cur = next // embedded node
		case len(val) == 0:
			return nil, nil // empty slot: absent
		case len(val) == 32:
			if cur, ok = byHash[[32]byte(val)]; !ok {
				return nil, errors.New("node missing")
			}
		default:
			return nil, errors.New("bad reference")
		}
	}
}

func TestProofFormatIndependentVerifier(t *testing.T) {
	db, s, _ := newTestDB(t)
	root := commitGenesis(t, db, s, manySpec(2000))
	for i := range 2100 {
		a := testAddr(i)
		p, err := s.Prove(root, a)
		require.NoError(t, err)
		v, err := independentVerify(root, a[:], p)
		require.NoError(t, err)
		want, ok, err := s.Account(root, a)
		require.NoError(t, err)
		if !ok {
			require.Nil(t, v, "account %d", i)
			continue
		}
		got, err := decodeAccount(v)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}
