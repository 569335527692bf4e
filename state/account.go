package state

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/trie"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

// Key returns the trie key of an address: keccak256(address).
func Key(a tx.Address) [32]byte { return crypto.Keccak256Hash(a[:]) }

// genesisTrie returns the trie of the genesis balances on db.
func genesisTrie(spec *chainspec.Spec) (*trie.Trie, error) {
	accs, err := spec.GenesisAccounts()
	if err != nil {
		return nil, err
	}
	if _, err := spec.TotalIssuance(); err != nil {
		return nil, err
	}
	tr := trie.NewEmpty(memNodes{})
	for _, a := range accs {
		var v [AccountSize]byte
		Account{Balance: a.Balance}.encode(&v)
		k := Key(tx.AddressOf(a.PublicKey))
		if err := tr.Update(k[:], v[:]); err != nil {
			return nil, err
		}
	}
	return tr, nil
}

// GenesisRoot returns the state root of the genesis balances of spec
// (computed in memory).
func GenesisRoot(spec *chainspec.Spec) (checkpoint.Hash, error) {
	tr, err := genesisTrie(spec)
	if err != nil {
		return checkpoint.Hash{}, err
	}
	return checkpoint.Hash(tr.Hash()), nil
}

// WriteGenesis adds to w the genesis state of spec as the version of the
// genesis block genesisBlockHash, and returns its root.
func (d *DB) WriteGenesis(spec *chainspec.Spec, w pebble.Writer, genesisBlockHash checkpoint.Hash) (checkpoint.Hash, error) {
	tr, err := genesisTrie(spec)
	if err != nil {
		return checkpoint.Hash{}, err
	}
	root, set := tr.Commit(false)
	r := &Result{Root: checkpoint.Hash(root), db: d, nodes: set}
	if err := r.Write(w, genesisBlockHash); err != nil {
		return checkpoint.Hash{}, err
	}
	return r.Root, nil
}

// Account returns the account a in the state root; ok is false when the
// address has no account (then the account is zero).
func (d *DB) Account(root checkpoint.Hash, a tx.Address) (Account, bool, error) {
	tr, err := d.openTrie(root)
	if err != nil {
		return Account{}, false, err
	}
	k := Key(a)
	v, err := tr.Get(k[:])
	if err != nil {
		return Account{}, false, missing(err)
	}
	if v == nil {
		return Account{}, false, nil
	}
	acc, err := decodeAccount(v)
	return acc, err == nil, err
}

// proofList collects the nodes of trie.Prove in order.
type proofList [][]byte

func (p *proofList) Put(_, v []byte) error {
	*p = append(*p, append([]byte(nil), v...))
	return nil
}

func (p *proofList) Delete([]byte) error { return errors.New("not supported") }

// proofSet is a proof keyed by node hash, for trie.VerifyProof.
type proofSet map[common.Hash][]byte

func newProofSet(proof [][]byte) proofSet {
	s := make(proofSet, len(proof))
	for _, n := range proof {
		s[crypto.Keccak256Hash(n)] = n
	}
	return s
}

func (s proofSet) Has(k []byte) (bool, error) {
	_, ok := s[common.BytesToHash(k)]
	return ok, nil
}

func (s proofSet) Get(k []byte) ([]byte, error) {
	if len(k) != 32 {
		return nil, errors.New("not a node hash")
	}
	v, ok := s[common.Hash(k)]
	if !ok {
		return nil, errors.New("not found")
	}
	return v, nil
}

// Prove returns the Merkle proof of the account a (present or absent) in
// the state root: the RLP-encoded trie nodes on the path to keccak256(a),
// root first (nodes shorter than 32 bytes are embedded in their parent and
// not listed, except the root). The proof of any address in the empty state
// is empty.
func (d *DB) Prove(root checkpoint.Hash, a tx.Address) ([][]byte, error) {
	tr, err := d.openTrie(root)
	if err != nil {
		return nil, err
	}
	var p proofList
	k := Key(a)
	if err := tr.Prove(k[:], &p); err != nil {
		return nil, missing(err)
	}
	return p, nil
}

// VerifyProof checks a proof of Prove and returns the account it proves;
// ok is false (with a nil error) when the proof proves a has no account.
// Any other proof is an error wrapping ErrBadProof.
func VerifyProof(root checkpoint.Hash, a tx.Address, proof [][]byte) (Account, bool, error) {
	if root == EmptyRoot && len(proof) == 0 {
		return Account{}, false, nil
	}
	k := Key(a)
	v, err := trie.VerifyProof(common.Hash(root), k[:], newProofSet(proof))
	if err != nil {
		return Account{}, false, fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	if v == nil {
		return Account{}, false, nil
	}
	acc, err := decodeAccount(v)
	if err != nil {
		return Account{}, false, fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	return acc, true, nil
}
