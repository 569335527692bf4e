package engine_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
)

type clockAt struct{ t time.Time }

func (c *clockAt) Now() time.Time { return c.t }

// model is the reference state: a map of balances and nonces.
type model map[tx.Address]state.Account

func (m model) clone() model {
	out := make(model, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// apply applies a block's transfers by the documented rules; false when a
// transfer breaks one (the block must then be invalid).
func (m model) apply(genesis checkpoint.Hash, minFee uint64, proposer tx.Address, body [][]byte) bool {
	for _, raw := range body {
		x, err := tx.Decode(raw)
		if err != nil || x.Verify() != nil || x.Genesis != genesis || x.Fee < minFee {
			return false
		}
		from := m[x.From]
		cost := x.Amount + x.Fee
		if cost < x.Amount || from.Nonce != x.Nonce || from.Balance < cost {
			return false
		}
		from.Balance -= cost
		from.Nonce++
		m[x.From] = from
		to := m[x.To]
		to.Balance += x.Amount
		m[x.To] = to
		p := m[proposer]
		p.Balance += x.Fee
		m[proposer] = p
	}
	return true
}

// TestStateSurvivesCrashesAndForks imports blocks of random transfers (and
// fork blocks, and invalid blocks) into a chain on Pebble's crashable
// in-memory file system. After every import a crash clone (with no and with
// half of the unsynced writes surviving) reopens to a best block whose
// state equals the reference model's replay of the best chain, for every
// account; blocks whose header state root is wrong, or that contain a
// transfer breaking a rule, are refused and change nothing.
func TestStateSurvivesCrashesAndForks(t *testing.T) {
	spec, err := chainspec.Builtin("local")
	require.NoError(t, err)
	var keys []ed25519.PrivateKey
	var addrs []tx.Address
	for _, n := range chainspec.DevKeyNames() {
		k, err := chainspec.DevKey(n)
		require.NoError(t, err)
		keys = append(keys, k)
		addrs = append(addrs, tx.AddressOf(k.Public().(ed25519.PublicKey)))
	}
	genesis, err := engine.GenesisHash(spec)
	require.NoError(t, err)
	fs := vfs.NewCrashableMem()
	clock := &clockAt{t: asf.SlotStart(spec, 1_000_000)}
	const dir = "/data/chain"
	open := func(fs vfs.FS) (*asf.Chain, *engine.StateExecutor) {
		var exec *engine.StateExecutor
		c, err := asf.OpenChain(dir, spec, asf.ChainOptions{FS: fs, Clock: clock, Logger: zap.NewNop(),
			Executor: engine.NewStateExecutorFactory(spec, nil, zap.NewNop(), &exec), StateRetention: 8})
		require.NoError(t, err)
		return c, exec
	}
	chain, exec := open(fs)
	defer chain.Close()
	require.Equal(t, genesis, chain.Genesis().Hash())

	genesisModel := model{}
	for _, a := range addrs {
		genesisModel[a] = state.Account{Balance: chainspec.DevBalance}
	}
	models := map[checkpoint.Hash]model{genesis: genesisModel}

	rng := rand.New(rand.NewPCG(7, 11))
	ctx := context.Background()
	// randomBody: valid transfers from the model's nonces (sometimes a
	// rule-breaking one appended).
	randomBody := func(m model, bad bool) [][]byte {
		var body [][]byte
		nonces := map[tx.Address]uint64{}
		for i := range rng.IntN(6) {
			_ = i
			s := rng.IntN(len(keys))
			from := addrs[s]
			n, ok := nonces[from]
			if !ok {
				n = m[from].Nonce
			}
			x := &tx.Tx{Genesis: genesis, To: addrs[rng.IntN(len(addrs))], Amount: uint64(rng.IntN(1000)), Fee: 1 + uint64(rng.IntN(3)), Nonce: n}
			x.Sign(keys[s])
			nonces[from] = n + 1
			body = append(body, x.Encode())
		}
		if bad {
			x := &tx.Tx{Genesis: genesis, To: addrs[1], Amount: chainspec.DevBalance * 2, Fee: 1, Nonce: m[addrs[0]].Nonce}
			if rng.IntN(2) == 0 { // a replay instead of an overspend
				x.Amount, x.Nonce = 1, 0
				if m[addrs[0]].Nonce == 0 {
					x.Nonce = 5
				}
			}
			x.Sign(keys[0])
			body = append(body, x.Encode())
		}
		return body
	}
	// makeBlock builds a block on parent with body; the state root comes
	// from the model (the independent replay), not from package state.
	makeBlock := func(parent asf.Header, slot uint64, body [][]byte) (asf.Block, model, bool) {
		p := asf.ProposerOf(spec, slot)
		pub, _ := spec.PublicKeys()
		m := models[parent.Hash()].clone()
		ok := m.apply(genesis, spec.MinFee, tx.AddressOf(pub[p]), body)
		b := asf.Block{Header: asf.Header{ParentHash: parent.Hash(), Number: parent.Number + 1, Slot: slot, Proposer: p,
			TimestampMs: uint64(asf.SlotStart(spec, slot).UnixMilli()), BodyRoot: asf.BodyRoot(body)}, Extrinsics: body}
		if ok {
			res, err := exec.State().Execute(parent.StateRoot, state.Env{Genesis: genesis, MinFee: spec.MinFee, Number: b.Header.Number, Proposer: tx.AddressOf(pub[p])}, body, nil)
			require.NoError(t, err)
			b.Header.StateRoot = res.Root
		} else {
			b.Header.StateRoot = parent.StateRoot
		}
		var kp ed25519.PrivateKey
		for i, a := range spec.Authorities {
			if uint32(i) == uint32(p) {
				kp, _ = chainspec.DevKey(a.Name)
			}
		}
		b.Header.Sign(kp)
		return b, m, ok
	}
	check := func(c *asf.Chain, e *engine.StateExecutor, what string) {
		t.Helper()
		best := c.Best()
		m, ok := models[best.Hash()]
		require.True(t, ok, "%s: best block %s has no model", what, best.Hash().Short())
		var total uint64
		for _, a := range addrs {
			acc, _, err := e.State().Account(best.StateRoot, a)
			require.NoError(t, err, what)
			require.Equal(t, m[a], acc, "%s: account %s at #%d", what, a.Short(), best.Number)
			total += acc.Balance
		}
		require.Equal(t, uint64(len(addrs))*chainspec.DevBalance, total, "%s: issuance conserved", what)
	}
	crashCheck := func(what string) {
		t.Helper()
		for _, pct := range []int{0, 50} {
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(uint64(pct), 3))})
			c, e := open(clone)
			require.Equal(t, chain.BestHash(), c.BestHash(), "%s: the best block survives", what)
			check(c, e, what+" after a crash")
			require.NoError(t, c.Close())
		}
	}

	parent := chain.Genesis().Header
	slot := uint64(1)
	var forkBase asf.Header
	refusedRoot, refusedRule := 0, 0
	for i := range 40 {
		slot++
		switch {
		case i%7 == 3: // a block whose header lies about the state root
			b, _, _ := makeBlock(parent, slot, randomBody(models[parent.Hash()], false))
			b.Header.StateRoot[0] ^= 1
			b.Header.Sign(mustDevKey(t, spec, b.Header.Proposer))
			_, err := chain.Import(ctx, b)
			require.ErrorIs(t, err, asf.ErrBadStateRoot)
			refusedRoot++
			continue
		case i%7 == 5: // a block with a rule-breaking transfer
			b, _, ok := makeBlock(parent, slot, randomBody(models[parent.Hash()], true))
			require.False(t, ok)
			_, err := chain.Import(ctx, b)
			require.ErrorIs(t, err, asf.ErrInvalidBlock)
			require.True(t, errors.Is(err, state.ErrInvalidTx), "%v", err)
			refusedRule++
			continue
		}
		b, m, ok := makeBlock(parent, slot, randomBody(models[parent.Hash()], false))
		require.True(t, ok)
		_, err := chain.Import(ctx, b)
		require.NoError(t, err)
		models[b.Hash()] = m
		if i == 11 {
			forkBase = parent
		}
		parent = b.Header
		check(chain, exec, "import")
		crashCheck("import")
	}
	// A fork from block forkBase that overtakes the best chain (more
	// blocks), then the old branch wins again: no block applied twice, none
	// lost.
	fp := forkBase
	fslot := slot
	for range int(parent.Number-forkBase.Number) + 2 {
		fslot++
		b, m, ok := makeBlock(fp, fslot, randomBody(models[fp.Hash()], false))
		require.True(t, ok)
		_, err := chain.Import(ctx, b)
		require.NoError(t, err)
		models[b.Hash()] = m
		fp = b.Header
	}
	require.Equal(t, fp.Hash(), chain.BestHash(), "the longer fork is the best chain")
	check(chain, exec, "fork switch")
	crashCheck("fork switch")
	require.Positive(t, refusedRoot)
	require.Positive(t, refusedRule)
}

func mustDevKey(t *testing.T, spec *chainspec.Spec, p checkpoint.ValidatorIndex) ed25519.PrivateKey {
	k, err := chainspec.DevKey(spec.Authorities[p].Name)
	require.NoError(t, err)
	return k
}
