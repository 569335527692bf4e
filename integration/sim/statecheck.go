package sim

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
)

// stateModel is invariant 11's reference model: the balances and nonces of
// every known account after the honest finalized chain, applied by the
// documented rules (state/exec.go, docs/state.md) independently of package
// state. Fees go to the block's proposer, so the total issuance (the sum of
// the genesis balances) never changes.
type stateModel struct {
	enabled  bool
	issuance uint64
	// known: the accounts compared, in a fixed order (genesis accounts,
	// sinks, then recipients as they appear).
	known   []tx.Address
	isKnown map[tx.Address]bool
	cur     map[tx.Address]state.Account
	at      checkpoint.Checkpoint // the modeled finalized checkpoint
	// snaps: the model at recent finalized checkpoints (by block hash), for
	// nodes that finalize them later or restart at them.
	snaps     map[checkpoint.Hash]map[tx.Address]state.Account
	snapOrder []checkpoint.Hash
	// applied: the transfers of the finalized chain (the wallet replays
	// them).
	applied []*tx.Tx
	// compared counts full node comparisons (for the trace's end line);
	// verified: the finalized checkpoints whose state one node's full
	// comparison matched.
	compared int
	verified map[checkpoint.Hash]bool
}

const maxSnaps = 256

func newStateModel(w *world) *stateModel {
	st := &stateModel{
		enabled:  !w.sc.conflicting,
		isKnown:  make(map[tx.Address]bool),
		cur:      make(map[tx.Address]state.Account),
		snaps:    make(map[checkpoint.Hash]map[tx.Address]state.Account),
		verified: make(map[checkpoint.Hash]bool),
		at:       checkpoint.Checkpoint{Number: 0, Hash: w.genesis},
	}
	for _, b := range w.spec.Balances {
		a, err := tx.ParseAddress(b.Address)
		if err != nil {
			panic(err)
		}
		st.know(a)
		acc := st.cur[a]
		acc.Balance += b.Balance
		st.cur[a] = acc
		st.issuance += b.Balance
	}
	for i := range sinkAddresses {
		st.know(sinkAddress(i))
	}
	st.snap(w.genesis)
	return st
}

func (st *stateModel) know(a tx.Address) {
	if !st.isKnown[a] {
		st.isKnown[a] = true
		st.known = append(st.known, a)
	}
}

func (st *stateModel) snap(h checkpoint.Hash) {
	m := make(map[tx.Address]state.Account, len(st.cur))
	for k, v := range st.cur {
		m[k] = v
	}
	st.snaps[h] = m
	st.snapOrder = append(st.snapOrder, h)
	if len(st.snapOrder) > maxSnaps {
		delete(st.snaps, st.snapOrder[0])
		st.snapOrder = st.snapOrder[1:]
	}
}

// applyTx applies one encoded transfer of a block by proposer, or says
// which rule it breaks.
func (st *stateModel) applyTx(w *world, proposer tx.Address, raw []byte) (*tx.Tx, error) {
	t, err := tx.Decode(raw)
	if err != nil {
		return nil, err
	}
	if t.Genesis != w.genesis {
		return t, errors.New("another chain's genesis")
	}
	if t.Fee < w.spec.MinFee {
		return t, fmt.Errorf("fee %d below the minimum %d", t.Fee, w.spec.MinFee)
	}
	total := t.Amount + t.Fee
	if total < t.Amount {
		return t, errors.New("amount + fee overflows")
	}
	if err := t.Verify(); err != nil {
		return t, err
	}
	from := st.cur[t.From]
	if t.Nonce != from.Nonce {
		return t, fmt.Errorf("nonce %d from %s, account nonce %d (a nonce applied twice, or skipped)", t.Nonce, t.From.Short(), from.Nonce)
	}
	if from.Balance < total {
		return t, fmt.Errorf("%s spends %d, balance %d", t.From.Short(), total, from.Balance)
	}
	from.Balance -= total
	from.Nonce++
	st.cur[t.From] = from
	to := st.cur[t.To]
	if to.Balance+t.Amount < to.Balance {
		return t, errors.New("recipient balance overflows")
	}
	to.Balance += t.Amount
	st.cur[t.To] = to
	p := st.cur[proposer]
	p.Balance += t.Fee // cannot overflow: the sum of all balances is the issuance
	st.cur[proposer] = p
	st.know(t.From)
	st.know(t.To)
	return t, nil
}

// advance applies the blocks from the modeled checkpoint up to the honest
// finality c.final (taken from any up honest node's chain, src first).
func (c *checker) advanceModel(w *world, src *simNode) {
	st := c.st
	if !st.enabled || c.final.Number <= st.at.Number {
		return
	}
	get := func(h checkpoint.Hash) (asf.Block, bool) {
		for _, nd := range append([]*simNode{src}, w.nodes...) {
			if !nd.up || !nd.honest || nd.chain == nil {
				continue
			}
			if b, ok, err := nd.chain.BlockByHash(h); err == nil && ok {
				return b, true
			}
		}
		return asf.Block{}, false
	}
	var path []asf.Block
	for cur := c.final.Hash; cur != st.at.Hash; {
		b, ok := get(cur)
		if !ok || b.Header.Number <= st.at.Number*w.spec.CheckpointInterval {
			w.record("invariant 11: block %s of the finalized chain is on no up honest node; the state model stops at %s", shortHash(cur), st.at)
			st.enabled = false
			return
		}
		path = append(path, b)
		cur = b.Header.ParentHash
	}
	for i := len(path) - 1; i >= 0; i-- {
		b := path[i]
		proposer := tx.AddressOf(w.keys[b.Header.Proposer].Public().(ed25519.PublicKey))
		for j, raw := range b.Extrinsics {
			t, err := st.applyTx(w, proposer, raw)
			if err != nil {
				w.violation("invariant 11: a finalized block applied a transfer that breaks a rule: block #%d %s tx %d: %v",
					b.Header.Number, shortHash(b.Hash()), j, err)
				return
			}
			st.applied = append(st.applied, t)
		}
		if b.Header.Number%w.spec.CheckpointInterval == 0 {
			st.snap(b.Hash())
		}
	}
	st.at = c.final
}

// compareState checks nd's state at its finalized checkpoint f against the
// model, when the model holds f: every known account, and their sum (the
// total issuance). A missing state at a finalized root is a violation. The
// state is content-addressed (a trie node is stored under its hash), so
// once one node's full comparison at f matched, another node (full=false)
// must only hold the root; a restarted node (full) is compared in full.
func (c *checker) compareState(w *world, nd *simNode, f checkpoint.Checkpoint, full bool) {
	st := c.st
	if !st.enabled || nd.chain == nil || nd.exec == nil {
		return
	}
	m, ok := st.snaps[f.Hash]
	if !ok {
		return
	}
	h, ok, err := nd.chain.HeaderByHash(f.Hash)
	if err != nil || !ok {
		return
	}
	if !full && st.verified[f.Hash] {
		if ok, err := nd.exec.State().HasState(h.StateRoot); err != nil || !ok {
			w.violation("invariant 11: %s has no state at its finalized checkpoint %s (root %s): %v", nd.name, f, h.StateRoot.Short(), err)
		}
		return
	}
	st.compared++
	var sum uint64
	for _, a := range st.known {
		acc, _, err := nd.exec.State().Account(h.StateRoot, a)
		if err != nil {
			w.violation("invariant 11: %s has no state at its finalized checkpoint %s (root %s): %v", nd.name, f, h.StateRoot.Short(), err)
			return
		}
		if want := m[a]; acc != want {
			w.violation("invariant 11: %s's state at finalized checkpoint %s differs from the reference replay: account %s has balance %d nonce %d, the model %d nonce %d",
				nd.name, f, a.Short(), acc.Balance, acc.Nonce, want.Balance, want.Nonce)
			return
		}
		sum += acc.Balance
	}
	if sum != st.issuance {
		w.violation("invariant 11: %s's balances at finalized checkpoint %s sum to %d, the total issuance is %d", nd.name, f, sum, st.issuance)
		return
	}
	st.verified[f.Hash] = true
}
