package node

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethdb/memorydb"
	"github.com/ethereum/go-ethereum/trie"
	"golang.org/x/crypto/blake2b"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/node/api"
)

// lightClient checks GET /accounts/{address}?proof=1 answers the way an
// independent client would, trusting only the chain spec and following
// docs/wire.md and docs/state.md: it computes the genesis hash from the
// spec (canonical JSON, genesis state root of the balances, the v2 header
// layout), checks the certificate's signatures by the spec's authorities
// over the documented vote signing bytes, checks that the header hashes to
// the finalized checkpoint, and checks the Merkle proof of the account
// against the header's state root with a standard Ethereum trie verifier.
// It uses no code of this repository but the spec decoder and the API's
// JSON types.
type lightClient struct {
	spec    *chainspec.Spec
	genesis [32]byte
	keys    [][]byte
}

func newLightClient(spec *chainspec.Spec) (*lightClient, error) {
	lc := &lightClient{spec: spec}
	for _, a := range spec.Authorities {
		k, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(a.PublicKey), "0x"))
		if err != nil {
			return nil, err
		}
		lc.keys = append(lc.keys, k)
	}
	// Genesis state root: the balances in an Ethereum secure trie.
	type kv struct{ k, v []byte }
	var kvs []kv
	for _, b := range spec.Balances {
		raw, err := hex.DecodeString(b.Address[2:])
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, kv{crypto.Keccak256(raw), binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, b.Balance), 0)})
	}
	sort.Slice(kvs, func(i, j int) bool { return bytes.Compare(kvs[i].k, kvs[j].k) < 0 })
	st := trie.NewStackTrie(nil)
	for _, e := range kvs {
		if err := st.Update(e.k, e.v); err != nil {
			return nil, err
		}
	}
	stateRoot := st.Hash()
	specHash := blake2b.Sum256(spec.CanonicalJSON())
	var h bytes.Buffer
	h.WriteString("flare/block/v2")
	h.Write(make([]byte, 32+8+8+4))
	h.Write(binary.BigEndian.AppendUint64(nil, spec.GenesisTimestampMs))
	h.Write(specHash[:])
	h.Write(stateRoot[:])
	lc.genesis = blake2b.Sum256(h.Bytes())
	return lc, nil
}

func unhex(s string) ([]byte, error) {
	if !strings.HasPrefix(s, "0x") {
		return nil, fmt.Errorf("%q lacks 0x", s)
	}
	return hex.DecodeString(s[2:])
}

// verify returns the balance and nonce the proof proves for address.
func (lc *lightClient) verify(address string, a api.Account) (balance, nonce uint64, err error) {
	p := a.Proof
	if p == nil || p.Certificate == nil {
		return 0, 0, errors.New("no proof")
	}
	hd := p.Header
	// 1. The header hash (docs/wire.md, header signing bytes).
	var hb bytes.Buffer
	hb.WriteString("flare/block/v2")
	for _, f := range []string{hd.ParentHash} {
		b, err := unhex(f)
		if err != nil {
			return 0, 0, err
		}
		hb.Write(b)
	}
	hb.Write(binary.BigEndian.AppendUint64(nil, hd.Number))
	hb.Write(binary.BigEndian.AppendUint64(nil, hd.Slot))
	hb.Write(binary.BigEndian.AppendUint32(nil, hd.Proposer))
	hb.Write(binary.BigEndian.AppendUint64(nil, hd.TimestampMs))
	for _, f := range []string{hd.BodyRoot, hd.StateRoot} {
		b, err := unhex(f)
		if err != nil {
			return 0, 0, err
		}
		hb.Write(b)
	}
	headerHash := blake2b.Sum256(hb.Bytes())
	// 2. The certificate finalizes that block's checkpoint.
	c := p.Certificate
	if c.Target.Number != c.Source.Number+1 {
		return 0, 0, errors.New("the certificate does not finalize its source")
	}
	if c.Source.Hash != "0x"+hex.EncodeToString(headerHash[:]) || c.Source.Number*lc.spec.CheckpointInterval != hd.Number {
		return 0, 0, errors.New("the certificate's source is not the header")
	}
	var vote bytes.Buffer
	vote.WriteString("flare/asf/vote/v1")
	vote.Write(lc.genesis[:])
	vote.Write(binary.BigEndian.AppendUint64(nil, c.SetID))
	for _, cp := range []api.Point{c.Source, c.Target} {
		vote.Write(binary.BigEndian.AppendUint64(nil, cp.Number))
		b, err := unhex(cp.Hash)
		if err != nil {
			return 0, 0, err
		}
		vote.Write(b)
	}
	if c.SetID != lc.spec.SetID {
		return 0, 0, errors.New("another authority set")
	}
	seen := map[uint32]bool{}
	for _, s := range c.Signatures {
		sig, err := unhex(s.Signature)
		if err != nil {
			return 0, 0, err
		}
		if int(s.Validator) >= len(lc.keys) || seen[s.Validator] || !ed25519.Verify(lc.keys[s.Validator], vote.Bytes(), sig) {
			return 0, 0, fmt.Errorf("signature of validator %d does not verify", s.Validator)
		}
		seen[s.Validator] = true
	}
	if len(seen) < 2*len(lc.keys)/3+1 {
		return 0, 0, fmt.Errorf("%d signatures, below the quorum", len(seen))
	}
	// 3. The account against the state root (docs/state.md): key
	// keccak256(address), value balance u64 BE | nonce u64 BE.
	db := memorydb.New()
	for _, n := range p.Nodes {
		b, err := unhex(n)
		if err != nil {
			return 0, 0, err
		}
		if err := db.Put(crypto.Keccak256(b), b); err != nil {
			return 0, 0, err
		}
	}
	root, err := unhex(hd.StateRoot)
	if err != nil {
		return 0, 0, err
	}
	addr, err := unhex(address)
	if err != nil {
		return 0, 0, err
	}
	val, err := trie.VerifyProof(common.BytesToHash(root), crypto.Keccak256(addr), db)
	if err != nil {
		return 0, 0, fmt.Errorf("merkle proof: %w", err)
	}
	if val == nil {
		return 0, 0, nil // absent: balance 0, nonce 0
	}
	if len(val) != 16 {
		return 0, 0, fmt.Errorf("account value of %d bytes", len(val))
	}
	balance, nonce = binary.BigEndian.Uint64(val[:8]), binary.BigEndian.Uint64(val[8:])
	if strconv.FormatUint(balance, 10) != a.Balance || nonce != a.Nonce {
		return 0, 0, errors.New("the proof proves other numbers than the answer")
	}
	return balance, nonce, nil
}
