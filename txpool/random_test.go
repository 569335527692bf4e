package txpool_test

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// TestRandomized drives the pool with random adds, blocks, fork switches,
// removals, expiry and state changes, and checks after every step that the
// invariants hold (no two txs with one sender+nonce, ready queues contiguous
// from the account nonce, counters and bytes exact, caps respected, every tx
// decodable) and that everything Pending returns executes in order on the
// head state.
func TestRandomized(t *testing.T) {
	seeds := uint64(6)
	if n, err := strconv.ParseUint(os.Getenv("TXPOOL_RANDOM_SEEDS"), 10, 64); err == nil {
		seeds = n // e.g. TXPOOL_RANDOM_SEEDS=500 for a longer soak
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomRun(t, seed, 400) })
	}
}

func randomRun(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	keys := make([]ed25519.PrivateKey, 8)
	for i := range keys {
		keys[i] = keyN(100 + i)
	}
	proposer := addr(keyN(99))
	cfg := testConfig()
	cfg.MaxTxs, cfg.MaxFuture = 20, 6
	cfg.MaxBytes = 16 * 180
	cfg.MaxPerAccount, cfg.MaxFuturePerAccount = 3, 3
	cfg.Lifetime = 10 * time.Minute

	genesisState := newState()
	for _, k := range keys {
		genesisState.set(addr(k), uint64(rng.IntN(20_000)), 0)
	}
	type block struct {
		parent *memState
		txs    []*tx.Tx
	}
	head := genesisState.clone()
	var chain []block
	clk := newClock()
	p := txpool.New(cfg, clk, tx.NewSigCache(1000), head)
	live := map[tx.Hash]bool{}      // what the events say is in the pool
	retracted := map[tx.Hash]bool{} // of the last fork switch

	apply := func(events []txpool.Event) {
		for _, e := range events {
			switch e.Kind {
			case txpool.Dropped, txpool.Invalid, txpool.Replaced:
				// A retracted tx that could not come back is reported too.
				require.True(t, live[e.Hash] || retracted[e.Hash], "event %v for a tx not in the pool", e)
				delete(live, e.Hash)
			case txpool.Restored:
				live[e.Hash] = true
			}
		}
	}
	// buildBlock takes up to n pending txs (plus, sometimes, an outside tx)
	// and executes them on a copy of parent.
	buildBlock := func(parent *memState, n int) (*memState, []*tx.Tx) {
		st := parent.clone()
		var txs []*tx.Tx
		if rng.IntN(4) == 0 {
			k := keys[rng.IntN(len(keys))]
			_, nonce, _ := st.Account(addr(k))
			x := mk(k, nonce, 1+uint64(rng.IntN(5)), uint64(rng.IntN(100)))
			if st.apply(x, cfg.MinFee, proposer) {
				txs = append(txs, x)
			}
		}
		for _, x := range p.Pending(n, 0) {
			if st.apply(x, cfg.MinFee, proposer) {
				txs = append(txs, x)
			}
		}
		return st, txs
	}

	for step := 0; step < steps; step++ {
		switch op := rng.IntN(100); {
		case op < 60: // add
			k := keys[rng.IntN(len(keys))]
			_, nonce, _ := head.Account(addr(k))
			n := nonce + uint64(rng.IntN(8))
			if rng.IntN(20) == 0 && nonce > 0 {
				n = nonce - 1
			}
			x := mk(k, n, 1+uint64(rng.IntN(20)), uint64(rng.IntN(3000)))
			if rng.IntN(30) == 0 {
				x.Signature[0] ^= 1
			}
			var h tx.Hash
			var err error
			if rng.IntN(2) == 0 {
				h, _, err = p.Add(x.Encode())
			} else {
				h, _, err = p.AddTx(x)
			}
			apply(p.TakeEvents())
			if err == nil {
				live[h] = true
			} else {
				_, ok := txpool.ReasonOf(err)
				require.True(t, ok, err)
			}
		case op < 78: // new block on the head
			st, txs := buildBlock(head, 1+rng.IntN(8))
			chain = append(chain, block{parent: head, txs: txs})
			head = st
			for _, x := range txs {
				delete(live, x.Hash())
			}
			apply(p.Update(head, txs, nil))
		case op < 84: // fork switch: drop 1-2 blocks, build one new block on their parent
			if len(chain) == 0 {
				continue
			}
			k := min(len(chain), 1+rng.IntN(2))
			var back []*tx.Tx
			clear(retracted)
			for _, b := range chain[len(chain)-k:] {
				back = append(back, b.txs...)
				for _, x := range b.txs {
					retracted[x.Hash()] = true
				}
			}
			parent := chain[len(chain)-k].parent
			chain = chain[:len(chain)-k]
			st, txs := buildBlock(parent, rng.IntN(4))
			chain = append(chain, block{parent: parent, txs: txs})
			head = st
			for _, x := range txs {
				delete(live, x.Hash())
			}
			apply(p.Update(head, txs, back))
		case op < 89: // the proposer refuses one
			if pend := p.Pending(0, 0); len(pend) > 0 {
				h := pend[rng.IntN(len(pend))].Hash()
				p.Remove(h, txpool.ReasonInsufficientBalance)
				apply(p.TakeEvents())
			}
		case op < 94:
			clk.advance(time.Duration(rng.IntN(6)) * time.Minute)
			apply(p.Expire())
		default: // balance changed outside the pool's view (e.g. a received transfer)
			k := keys[rng.IntN(len(keys))]
			bal, nonce, _ := head.Account(addr(k))
			head = head.clone()
			head.set(addr(k), bal/uint64(1+rng.IntN(3))+uint64(rng.IntN(2000)), nonce)
			apply(p.Update(head, nil, nil))
		}
		require.NoError(t, p.CheckInvariants(), "step %d", step)
		require.Equal(t, len(live), p.Len(), "step %d: events and pool disagree", step)
		for h := range live {
			_, _, ok := p.Get(h)
			require.True(t, ok, "step %d", step)
		}
		exec := head.clone()
		for _, x := range p.Pending(0, 0) {
			require.True(t, exec.apply(x, cfg.MinFee, proposer), "step %d: pending tx does not execute", step)
		}
	}
	s := p.Stats()
	t.Logf("seed stats: ready %d future %d admitted %d replaced %d evicted %d expired %d restored %d refused %v",
		s.Ready, s.Future, s.Admitted, s.Replaced, s.Evicted, s.Expired, s.Restored, s.Refused)
}
