package sim

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// The wallet: a few funded accounts of the world (not of any node) that
// submit random transfers to the pools of random up nodes, in every
// scenario. Transaction gossip is not simulated (it is being built
// elsewhere): each submission goes directly into the pools of 1–2 random
// up nodes, and reaches a block only through the normal path — pool,
// builder of the node's next own block, import by the others. What the
// wallet submits:
//
//   - valid transfers, the nonce taken from the highest honest best state
//     plus the wallet's own pending ones; now and then two at once, the
//     second submitted first (a nonce gap, filled a few slots later);
//   - resubmissions of its oldest pending transfer when the best state
//     did not move past it for a while (the pools that held it crashed, or
//     it was sent only to a full node);
//   - replays of transfers already in the finalized chain (a pool that is
//     behind may admit one; no block may apply it twice);
//   - invalid transfers — a bad signature, another chain's genesis, a spend
//     above the balance, a fee below the minimum — which every pool must
//     refuse (a pool admitting one is a violation).
type wallet struct {
	rng   *rand.Rand
	keys  []ed25519.PrivateKey
	addrs []tx.Address
	// next is the next nonce the wallet uses per account; pending holds
	// what it created from the best state's nonce up (by nonce).
	next    map[tx.Address]uint64
	base    map[tx.Address]uint64 // the best state's nonce at the last tick
	pending map[tx.Address]map[uint64]*walletTx
	stats   walletStats
}

type walletTx struct {
	t      *tx.Tx
	sentAt time.Time
	held   bool // a gap filler not submitted yet
}

type walletStats struct {
	valid, invalid, replays, resent, admitted, refused int
}

const (
	walletAccounts = 4
	walletBalance  = 1_000_000_000
)

func newWallet(seed uint64) *wallet {
	wl := &wallet{
		rng:     rand.New(rand.NewPCG(seed^0x77616c6c6574, seed+1)),
		next:    make(map[tx.Address]uint64),
		base:    make(map[tx.Address]uint64),
		pending: make(map[tx.Address]map[uint64]*walletTx),
	}
	for i := range walletAccounts {
		var s [ed25519.SeedSize]byte
		copy(s[:], "flare-sim-wallet")
		binary.BigEndian.PutUint64(s[16:], seed)
		binary.BigEndian.PutUint32(s[28:], uint32(i))
		k := ed25519.NewKeyFromSeed(s[:])
		wl.keys = append(wl.keys, k)
		a := tx.AddressOf(k.Public().(ed25519.PublicKey))
		wl.addrs = append(wl.addrs, a)
		wl.pending[a] = make(map[uint64]*walletTx)
	}
	return wl
}

// sinkAddress is a recipient without genesis balance and without key.
func sinkAddress(i int) tx.Address {
	var a tx.Address
	copy(a[:], "flare-sim-sink")
	a[31] = byte(i + 1)
	return a
}

const sinkAddresses = 2

// maxWalletPending bounds an account's transfers ahead of the best state
// (the pool keeps 16 ready and 64 future per sender).
const maxWalletPending = 24

// startWallet schedules the wallet's submissions (about one batch a slot).
func (w *world) startWallet() {
	var tick func()
	tick = func() {
		w.walletTick()
		w.after(w.walletInterval(), -1, "wallet", tick)
	}
	w.after(w.walletInterval(), -1, "wallet", tick)
}

func (w *world) walletInterval() time.Duration {
	slot := time.Duration(w.spec.SlotDurationMs) * time.Millisecond
	return slot/2 + time.Duration(w.wallet.rng.Int64N(int64(slot)))
}

// baseNonce is a's nonce at the highest honest best state (of the up
// honest node with the highest best block).
func (w *world) baseNonce(a tx.Address) uint64 {
	var top *simNode
	for _, nd := range w.nodes {
		if nd.up && nd.honest && nd.chain != nil && nd.exec != nil &&
			(top == nil || nd.chain.Best().Number > top.chain.Best().Number) {
			top = nd
		}
	}
	if top == nil {
		return 0
	}
	acc, _, err := top.exec.State().Account(top.chain.Best().StateRoot, a)
	if err != nil {
		return 0
	}
	return acc.Nonce
}

// poolTargets are 1–2 random up nodes with a pool.
func (w *world) poolTargets() []*simNode {
	var up []*simNode
	for _, nd := range w.nodes {
		if nd.up && nd.pool != nil {
			up = append(up, nd)
		}
	}
	if len(up) == 0 {
		return nil
	}
	rng := w.wallet.rng
	i := rng.IntN(len(up))
	out := []*simNode{up[i]}
	if len(up) > 1 && rng.IntN(2) == 0 {
		j := rng.IntN(len(up) - 1)
		if j >= i {
			j++
		}
		out = append(out, up[j])
	}
	return out
}

// submit delivers t to 1–2 random pools; invalid: every pool must refuse it.
func (w *world) submit(t *tx.Tx, what string, invalid bool) {
	wl := w.wallet
	for _, nd := range w.poolTargets() {
		_, st, err := nd.pool.AddTx(t)
		if err != nil {
			wl.stats.refused++
			if !errors.Is(err, txpool.ErrRefused) {
				w.violation("%s pool: %s: unexpected error %v", nd.name, what, err)
				return
			}
			r, _ := txpool.ReasonOf(err)
			w.record("wallet %s %s nonce %d -> %s: refused (%s)", what, t.From.Short(), t.Nonce, nd.name, r)
			continue
		}
		wl.stats.admitted++
		w.record("wallet %s %s nonce %d -> %s: %s", what, t.From.Short(), t.Nonce, nd.name, st)
		if invalid {
			w.violation("%s pool admitted an invalid transfer (%s) from %s nonce %d", nd.name, what, t.From.Short(), t.Nonce)
			return
		}
	}
}

func (w *world) walletTick() {
	wl := w.wallet
	slot := time.Duration(w.spec.SlotDurationMs) * time.Millisecond
	// Forget what the best state moved past; resend what it did not for a
	// while; submit held gap fillers whose time came.
	for _, a := range wl.addrs {
		base := w.baseNonce(a)
		wl.base[a] = base
		for n := range wl.pending[a] {
			if n < base {
				delete(wl.pending[a], n)
			}
		}
		if wl.next[a] < base {
			wl.next[a] = base
		}
		for n := base; n < wl.next[a]; n++ {
			p := wl.pending[a][n]
			if p == nil {
				continue
			}
			due := p.held && !w.now.Before(p.sentAt) || !p.held && w.now.Sub(p.sentAt) >= 8*slot
			if !due {
				continue
			}
			what := "resend"
			if p.held {
				what, p.held = "gap-fill", false
			} else {
				wl.stats.resent++
			}
			p.sentAt = w.now
			w.submit(p.t, what, false)
			if w.stopped {
				return
			}
		}
	}
	for range 1 + wl.rng.IntN(3) {
		w.walletSubmit()
		if w.stopped {
			return
		}
	}
}

// walletSubmit submits one random transfer.
func (w *world) walletSubmit() {
	wl := w.wallet
	rng := wl.rng
	s := rng.IntN(len(wl.keys))
	from, key := wl.addrs[s], wl.keys[s]
	t := &tx.Tx{Genesis: w.genesis, To: w.randomRecipient(), Amount: uint64(1 + rng.IntN(1000)), Fee: w.spec.MinFee + uint64(rng.IntN(3)), Nonce: wl.next[from]}
	k := rng.IntN(20)
	if k < 13 && wl.next[from] >= wl.base[from]+maxWalletPending {
		k = 13 // enough pending for this account: a replay instead
	}
	switch {
	case k < 11: // valid
		t.Sign(key)
		wl.stats.valid++
		wl.next[from]++
		wl.pending[from][t.Nonce] = &walletTx{t: t, sentAt: w.now}
		w.submit(t, "transfer", false)
	case k < 13: // a nonce gap, filled a few slots later
		t.Sign(key)
		t2 := *t
		t2.Nonce++
		t2.Sign(key)
		wl.stats.valid += 2
		wl.next[from] += 2
		slot := time.Duration(w.spec.SlotDurationMs) * time.Millisecond
		wl.pending[from][t.Nonce] = &walletTx{t: t, held: true, sentAt: w.now.Add(time.Duration(2+rng.IntN(5)) * slot)}
		wl.pending[from][t2.Nonce] = &walletTx{t: &t2, sentAt: w.now}
		w.submit(&t2, "gap", false)
	case k < 15: // a replay of a finalized transfer
		if len(w.check.st.applied) == 0 {
			return
		}
		wl.stats.replays++
		w.submit(w.check.st.applied[rng.IntN(len(w.check.st.applied))], "replay", false)
	default: // invalid
		wl.stats.invalid++
		switch rng.IntN(4) {
		case 0:
			t.Sign(key)
			t.Signature[rng.IntN(len(t.Signature))] ^= 1 << rng.IntN(8)
			w.submit(t, "bad-signature", true)
		case 1:
			t.Genesis[0] ^= 0xff
			t.Sign(key)
			w.submit(t, "wrong-genesis", true)
		case 2:
			t.Amount = 10 * w.check.st.issuance
			t.Sign(key)
			w.submit(t, "overspend", true)
		default:
			t.Fee = w.spec.MinFee - 1
			t.Sign(key)
			w.submit(t, "fee-below-min", true)
		}
	}
}

// randomRecipient: a wallet account, a validator or a sink.
func (w *world) randomRecipient() tx.Address {
	rng := w.wallet.rng
	switch rng.IntN(3) {
	case 0:
		return w.wallet.addrs[rng.IntN(len(w.wallet.addrs))]
	case 1:
		return tx.AddressOf(w.keys[rng.IntN(len(w.keys))].Public().(ed25519.PublicKey))
	}
	return sinkAddress(rng.IntN(sinkAddresses))
}
