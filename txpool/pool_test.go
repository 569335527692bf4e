package txpool_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

func TestVocabulary(t *testing.T) {
	want := []string{"too large", "malformed", "wrong chain", "fee too low", "nonce too low", "nonce too high",
		"already known", "bad signature", "insufficient balance", "replacement underpriced", "pool full"}
	var got []string
	for _, r := range txpool.Reasons() {
		got = append(got, string(r))
	}
	require.Equal(t, want, got)
	require.Equal(t, "expired", string(txpool.ReasonExpired))

	err := error(&txpool.RefusedError{Reason: txpool.ReasonNonceTooLow, ExpectedNonce: 7, Detail: "nonce 3"})
	require.Equal(t, "transaction refused: nonce too low (expected nonce 7): nonce 3", err.Error())
	require.NotContains(t, err.Error(), "\n")
	require.ErrorIs(t, err, txpool.ErrRefused)
	require.ErrorIs(t, err, &txpool.RefusedError{Reason: txpool.ReasonNonceTooLow})
	require.NotErrorIs(t, err, &txpool.RefusedError{Reason: txpool.ReasonPoolFull})
	r, ok := txpool.ReasonOf(err)
	require.True(t, ok)
	require.Equal(t, txpool.ReasonNonceTooLow, r)
	_, ok = txpool.ReasonOf(errors.New("x"))
	require.False(t, ok)
}

func TestDefaultConfig(t *testing.T) {
	c := txpool.DefaultConfig()
	require.NoError(t, c.Validate())
	require.Equal(t, txpool.Config{MinFee: 1, MaxTxs: 8192, MaxBytes: 8192 * tx.MaxEncodedSize, MaxPerAccount: 16,
		MaxFuturePerAccount: 64, MaxFuture: 1024, Lifetime: 3 * time.Hour, PriceBumpPercent: 10}, c)
	bad := c
	bad.MaxPerAccount = 0
	require.Error(t, bad.Validate())
	require.Panics(t, func() { txpool.New(bad, nil, nil, newState()) })
}

// TestRefusals reaches every refusal reason, in the admission order.
func TestRefusals(t *testing.T) {
	alice, bob := devKey(t, "alice"), devKey(t, "bob")
	cases := []struct {
		name     string
		cfg      func(*txpool.Config)
		setup    func(t *testing.T, e *env)
		raw      func(t *testing.T) []byte
		reason   txpool.Reason
		expected uint64
	}{
		{name: "too large", reason: txpool.ReasonTooLarge,
			raw: func(*testing.T) []byte { return make([]byte, tx.MaxEncodedSize+1) }},
		{name: "malformed", reason: txpool.ReasonMalformed,
			raw: func(*testing.T) []byte { return []byte{0xff, 0x01} }},
		{name: "malformed non-canonical", reason: txpool.ReasonMalformed,
			raw: func(*testing.T) []byte { return append(mk(alice, 0, 1, 1).Encode(), 0x30, 0x00) }},
		{name: "wrong chain", reason: txpool.ReasonWrongChain, raw: func(*testing.T) []byte {
			x := &tx.Tx{Genesis: checkpoint.HashOf([]byte("other")), To: sink, Amount: 1, Fee: 1}
			x.Sign(alice)
			return x.Encode()
		}},
		{name: "fee too low", reason: txpool.ReasonFeeTooLow,
			cfg: func(c *txpool.Config) { c.MinFee = 5 },
			raw: func(*testing.T) []byte { return mk(alice, 0, 4, 1).Encode() }},
		{name: "nonce too low", reason: txpool.ReasonNonceTooLow, expected: 5,
			setup: func(_ *testing.T, e *env) { e.state.set(addr(alice), 1000, 5) },
			raw:   func(*testing.T) []byte { return mk(alice, 4, 1, 1).Encode() }},
		{name: "nonce too high", reason: txpool.ReasonNonceTooHigh, expected: 6,
			setup: func(t *testing.T, e *env) {
				e.state.set(addr(alice), 1000, 5)
				e.mustAdd(t, mk(alice, 5, 1, 1), txpool.Ready)
			},
			raw: func(*testing.T) []byte { return mk(alice, 5+16+64, 1, 1).Encode() }},
		{name: "already known", reason: txpool.ReasonAlreadyKnown,
			setup: func(t *testing.T, e *env) { e.mustAdd(t, mk(alice, 0, 1, 1), txpool.Ready) },
			raw:   func(*testing.T) []byte { return mk(alice, 0, 1, 1).Encode() }},
		{name: "bad signature", reason: txpool.ReasonBadSignature, raw: func(*testing.T) []byte {
			x := mk(alice, 0, 1, 1)
			x.Signature[3] ^= 0x40
			return x.Encode()
		}},
		{name: "signed by another key", reason: txpool.ReasonBadSignature, raw: func(*testing.T) []byte {
			x := mk(bob, 0, 1, 1)
			x.From = addr(alice)
			return x.Encode()
		}},
		{name: "insufficient balance", reason: txpool.ReasonInsufficientBalance,
			raw: func(*testing.T) []byte { return mk(alice, 0, 1, 1_000_000).Encode() }},
		{name: "insufficient balance with earlier pooled", reason: txpool.ReasonInsufficientBalance,
			setup: func(t *testing.T, e *env) { e.mustAdd(t, mk(alice, 0, 1, 600_000), txpool.Ready) },
			raw:   func(*testing.T) []byte { return mk(alice, 1, 1, 400_000).Encode() }},
		{name: "insufficient balance overflow", reason: txpool.ReasonInsufficientBalance,
			raw: func(*testing.T) []byte { return mk(alice, 0, 2, ^uint64(0)).Encode() }},
		{name: "insufficient balance future", reason: txpool.ReasonInsufficientBalance,
			setup: func(t *testing.T, e *env) { e.mustAdd(t, mk(alice, 3, 1, 600_000), txpool.Future) },
			raw:   func(*testing.T) []byte { return mk(alice, 5, 1, 400_000).Encode() }},
		{name: "replacement underpriced", reason: txpool.ReasonReplacementUnderpriced,
			setup: func(t *testing.T, e *env) { e.mustAdd(t, mk(alice, 0, 10, 1), txpool.Ready) },
			raw:   func(*testing.T) []byte { return mk(alice, 0, 10, 2).Encode() }},
		{name: "pool full", reason: txpool.ReasonPoolFull,
			cfg:   func(c *txpool.Config) { c.MaxTxs = 1 },
			setup: func(t *testing.T, e *env) { e.mustAdd(t, mk(bob, 0, 5, 1), txpool.Ready) },
			raw:   func(*testing.T) []byte { return mk(alice, 0, 5, 1).Encode() }},
		{name: "pool full account future cap", reason: txpool.ReasonPoolFull,
			cfg: func(c *txpool.Config) { c.MaxPerAccount, c.MaxFuturePerAccount = 2, 2 },
			setup: func(t *testing.T, e *env) {
				e.mustAdd(t, mk(alice, 1, 1, 1), txpool.Future)
				e.mustAdd(t, mk(alice, 2, 1, 1), txpool.Future)
			},
			raw: func(*testing.T) []byte { return mk(alice, 3, 1, 1).Encode() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			e := newEnv(t, cfg, alice, bob)
			if c.setup != nil {
				c.setup(t, e)
			}
			before := e.pool.Stats()
			_, _, err := e.addRaw(t, c.raw(t))
			re := requireReason(t, err, c.reason)
			require.Equal(t, c.expected, re.ExpectedNonce)
			require.NotEmpty(t, re.Detail)
			after := e.pool.Stats()
			require.Equal(t, before.Refused[c.reason]+1, after.Refused[c.reason])
			require.Equal(t, before.Admitted, after.Admitted)
			require.Equal(t, before.Ready+before.Future, after.Ready+after.Future)
		})
	}
}

func TestAlreadyKnownIsIdempotent(t *testing.T) {
	alice := devKey(t, "alice")
	e := newEnv(t, testConfig(), alice)
	x := mk(alice, 1, 1, 1)
	h := e.mustAdd(t, x, txpool.Future)
	h2, st, err := e.pool.AddTx(x)
	requireReason(t, err, txpool.ReasonAlreadyKnown)
	require.Equal(t, h, h2)
	require.Equal(t, txpool.Future, st)
}

func TestNonceGapPromotion(t *testing.T) {
	alice := devKey(t, "alice")
	e := newEnv(t, testConfig(), alice)
	x0, x1, x2 := mk(alice, 0, 1, 1), mk(alice, 1, 9, 1), mk(alice, 2, 1, 1)
	h2 := e.mustAdd(t, x2, txpool.Future)
	h1 := e.mustAdd(t, x1, txpool.Future)
	require.Empty(t, e.pool.Pending(0, 0))
	e.mustAdd(t, x0, txpool.Ready)
	require.Equal(t, []tx.Hash{x0.Hash(), h1, h2}, hashes(e.pool.Pending(0, 0)))
	ev := e.pool.TakeEvents()
	require.Equal(t, []txpool.Event{{Hash: h1, Kind: txpool.Promoted}, {Hash: h2, Kind: txpool.Promoted}}, ev)
	_, st, ok := e.pool.Get(h2)
	require.True(t, ok)
	require.Equal(t, txpool.Ready, st)
	s := e.pool.Stats()
	require.Equal(t, 3, s.Ready)
	require.Equal(t, 0, s.Future)
}

func TestReplacement(t *testing.T) {
	alice := devKey(t, "alice")
	cases := []struct {
		name        string
		oldFee, fee uint64
		bump        int
		ok          bool
		future      bool
	}{
		{name: "same fee", oldFee: 10, fee: 10, bump: 10},
		{name: "below bump", oldFee: 100, fee: 109, bump: 10},
		{name: "exact bump", oldFee: 100, fee: 110, bump: 10, ok: true},
		{name: "bump rounds down but must exceed", oldFee: 1, fee: 1, bump: 10},
		{name: "fee 1 bumped to 2", oldFee: 1, fee: 2, bump: 10, ok: true},
		{name: "zero bump still needs more", oldFee: 5, fee: 5, bump: 0},
		{name: "zero bump plus one", oldFee: 5, fee: 6, bump: 0, ok: true},
		{name: "future replaced", oldFee: 10, fee: 11, bump: 10, ok: true, future: true},
		{name: "lower fee", oldFee: 10, fee: 3, bump: 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.PriceBumpPercent = c.bump
			e := newEnv(t, cfg, alice)
			nonce, want := uint64(0), txpool.Ready
			if c.future {
				nonce, want = 3, txpool.Future
			}
			old := e.mustAdd(t, mk(alice, nonce, c.oldFee, 1), want)
			e.pool.TakeEvents()
			nw := mk(alice, nonce, c.fee, 2)
			h, st, err := e.add(t, nw)
			if !c.ok {
				requireReason(t, err, txpool.ReasonReplacementUnderpriced)
				_, _, ok := e.pool.Get(old)
				require.True(t, ok)
				return
			}
			require.NoError(t, err)
			require.Equal(t, want, st)
			_, _, ok := e.pool.Get(old)
			require.False(t, ok, "the replaced transaction is gone")
			got, _, ok := e.pool.Get(h)
			require.True(t, ok)
			require.Equal(t, c.fee, got.Fee)
			ev := e.pool.TakeEvents()
			require.Len(t, ev, 1)
			require.Equal(t, old, ev[0].Hash)
			require.Equal(t, txpool.Replaced, ev[0].Kind)
			require.Equal(t, h, ev[0].By)
			require.Equal(t, uint64(1), e.pool.Stats().Replaced)
			require.Equal(t, 1, e.pool.Len())
		})
	}
}

// A replacement may not make the sender's later pooled transactions
// unaffordable (geth#21460 "hammer": replace the first nonce with one that
// drains the account).
func TestReplacementCannotOverdraw(t *testing.T) {
	alice := devKey(t, "alice")
	e := newEnv(t, testConfig(), alice)
	e.mustAdd(t, mk(alice, 0, 10, 1), txpool.Ready)
	e.mustAdd(t, mk(alice, 1, 10, 500_000), txpool.Ready)
	_, _, err := e.add(t, mk(alice, 0, 20, 499_990))
	requireReason(t, err, txpool.ReasonInsufficientBalance)
	e.mustAdd(t, mk(alice, 0, 20, 499_970), txpool.Ready)
}

func TestAccountCaps(t *testing.T) {
	alice := devKey(t, "alice")
	cfg := testConfig()
	cfg.MaxPerAccount, cfg.MaxFuturePerAccount = 2, 2
	e := newEnv(t, cfg, alice)
	e.mustAdd(t, mk(alice, 0, 1, 1), txpool.Ready)
	e.mustAdd(t, mk(alice, 1, 1, 1), txpool.Ready)
	// Executable but over the ready cap: waits in future.
	h2 := e.mustAdd(t, mk(alice, 2, 1, 1), txpool.Future)
	e.mustAdd(t, mk(alice, 3, 1, 1), txpool.Future)
	_, _, err := e.add(t, mk(alice, 4, 1, 1))
	re := requireReason(t, err, txpool.ReasonNonceTooHigh)
	require.Equal(t, uint64(2), re.ExpectedNonce)
	require.Len(t, e.pool.Pending(0, 0), 2)

	// Nonces 0 and 1 are included: 2 and 3 become ready.
	e.state.set(addr(alice), 1_000_000-4, 2)
	ev := e.pool.Update(e.state, e.pool.Pending(0, 0), nil)
	require.NoError(t, e.pool.CheckInvariants())
	require.Equal(t, txpool.Promoted, kinds(ev)[h2].Kind)
	require.Len(t, e.pool.Pending(0, 0), 2)
}

func TestGlobalCapsAndEviction(t *testing.T) {
	a, b, c, d := keyN(1), keyN(2), keyN(3), keyN(4)
	cfg := testConfig()
	cfg.MaxTxs = 4
	e := newEnv(t, cfg, a, b, c, d)
	a0 := e.mustAdd(t, mk(a, 0, 2, 1), txpool.Ready)
	a1 := e.mustAdd(t, mk(a, 1, 9, 1), txpool.Ready)
	bf := e.mustAdd(t, mk(b, 5, 8, 1), txpool.Future)
	c0 := e.mustAdd(t, mk(c, 0, 4, 1), txpool.Ready)

	// Not higher than anything evictable: pool full.
	_, _, err := e.add(t, mk(d, 0, 2, 1))
	requireReason(t, err, txpool.ReasonPoolFull)
	// A future tx never evicts a ready one (DETER), and an equal fee does not
	// evict b's future tx.
	_, _, err = e.add(t, mk(d, 7, 8, 1))
	requireReason(t, err, txpool.ReasonPoolFull)

	// First eviction: the lowest-fee future tx, even though a ready one is cheaper.
	d0 := e.mustAdd(t, mk(d, 0, 10, 1), txpool.Ready)
	ev := e.pool.TakeEvents()
	require.Len(t, ev, 1)
	require.Equal(t, bf, ev[0].Hash)
	require.Equal(t, txpool.Dropped, ev[0].Kind)
	require.Equal(t, txpool.ReasonPoolFull, ev[0].Reason)

	// Second: the lowest-fee last-nonce ready tx of another sender — c0 (4),
	// not a0 (2), which would cut a's queue in the middle.
	d1 := e.mustAdd(t, mk(d, 1, 10, 1), txpool.Ready)
	ev = e.pool.TakeEvents()
	require.Len(t, ev, 1)
	require.Equal(t, c0, ev[0].Hash)
	// Third: a1 is now a's last; a sender never evicts itself.
	e.mustAdd(t, mk(d, 2, 10, 1), txpool.Ready)
	ev = e.pool.TakeEvents()
	require.Equal(t, a1, ev[0].Hash)
	// Fourth: a0 is now a's last ready tx.
	e.mustAdd(t, mk(d, 3, 10, 1), txpool.Ready)
	require.Equal(t, a0, e.pool.TakeEvents()[0].Hash)
	// Only d's own transactions are left: full.
	_, _, err = e.add(t, mk(d, 4, 100, 1))
	requireReason(t, err, txpool.ReasonPoolFull)
	require.Equal(t, []tx.Hash{d0, d1}, hashes(e.pool.Pending(2, 0)))
	require.Equal(t, uint64(4), e.pool.Stats().Evicted)
}

func TestGlobalFutureCap(t *testing.T) {
	a, b := keyN(1), keyN(2)
	cfg := testConfig()
	cfg.MaxFuture = 1
	e := newEnv(t, cfg, a, b)
	af := e.mustAdd(t, mk(a, 3, 5, 1), txpool.Future)
	_, _, err := e.add(t, mk(b, 3, 5, 1))
	requireReason(t, err, txpool.ReasonPoolFull)
	e.mustAdd(t, mk(b, 3, 6, 1), txpool.Future)
	ev := e.pool.TakeEvents()
	require.Equal(t, af, ev[0].Hash)
	// A ready tx does not count against MaxFuture.
	e.mustAdd(t, mk(a, 0, 1, 1), txpool.Ready)
}

func TestGlobalBytesCap(t *testing.T) {
	a, b, c := keyN(1), keyN(2), keyN(3)
	x, y := mk(a, 0, 5, 1), mk(b, 0, 5, 1)
	cfg := testConfig()
	cfg.MaxBytes = len(x.Encode()) + len(y.Encode()) + 10
	e := newEnv(t, cfg, a, b, c)
	e.mustAdd(t, x, txpool.Ready)
	e.mustAdd(t, y, txpool.Ready)
	_, _, err := e.add(t, mk(c, 0, 5, 1))
	requireReason(t, err, txpool.ReasonPoolFull)
	e.mustAdd(t, mk(c, 0, 6, 1), txpool.Ready)
	require.LessOrEqual(t, e.pool.Stats().Bytes, cfg.MaxBytes)
	require.Equal(t, 2, e.pool.Len())
}

func TestExpire(t *testing.T) {
	alice, bob := devKey(t, "alice"), devKey(t, "bob")
	cfg := testConfig()
	cfg.Lifetime = time.Hour
	e := newEnv(t, cfg, alice, bob)
	a0 := e.mustAdd(t, mk(alice, 0, 1, 1), txpool.Ready)
	e.clock.advance(30 * time.Minute)
	a1 := e.mustAdd(t, mk(alice, 1, 1, 1), txpool.Ready)
	b0 := e.mustAdd(t, mk(bob, 0, 1, 1), txpool.Ready)
	require.Empty(t, e.pool.Expire())
	e.clock.advance(30 * time.Minute)
	ev := e.pool.Expire()
	require.NoError(t, e.pool.CheckInvariants())
	require.Equal(t, []txpool.EventKind{txpool.Dropped, txpool.Demoted}, []txpool.EventKind{ev[0].Kind, ev[1].Kind})
	require.Equal(t, a0, ev[0].Hash)
	require.Equal(t, txpool.ReasonExpired, ev[0].Reason)
	require.Equal(t, a1, ev[1].Hash)
	require.Equal(t, []tx.Hash{b0}, hashes(e.pool.Pending(0, 0)))
	e.clock.advance(30 * time.Minute)
	require.Len(t, e.pool.Expire(), 2)
	require.Equal(t, 0, e.pool.Len())
	require.Equal(t, uint64(3), e.pool.Stats().Expired)
}

func TestRemove(t *testing.T) {
	alice := devKey(t, "alice")
	e := newEnv(t, testConfig(), alice)
	a0 := e.mustAdd(t, mk(alice, 0, 1, 1), txpool.Ready)
	a1 := e.mustAdd(t, mk(alice, 1, 1, 1), txpool.Ready)
	e.pool.Remove(a0, txpool.ReasonBadSignature)
	e.pool.Remove(a0, txpool.ReasonBadSignature) // unknown: no-op
	require.NoError(t, e.pool.CheckInvariants())
	ev := e.pool.TakeEvents()
	require.Len(t, ev, 2)
	require.Equal(t, txpool.Event{Hash: a0, Kind: txpool.Invalid, Reason: txpool.ReasonBadSignature, Detail: "removed"}, ev[0])
	require.Equal(t, txpool.Demoted, ev[1].Kind)
	_, st, _ := e.pool.Get(a1)
	require.Equal(t, txpool.Future, st)
	e.pool.Remove(a1, txpool.ReasonPoolFull)
	require.Equal(t, txpool.Dropped, e.pool.TakeEvents()[0].Kind)
}

func TestUpdate(t *testing.T) {
	alice, bob := devKey(t, "alice"), devKey(t, "bob")
	proposer := addr(devKey(t, "charlie"))
	cfg := testConfig()

	t.Run("included leave, rest stays", func(t *testing.T) {
		e := newEnv(t, cfg, alice, bob)
		txs := []*tx.Tx{mk(alice, 0, 1, 1), mk(alice, 1, 1, 1), mk(alice, 2, 1, 1), mk(bob, 0, 3, 1)}
		for _, x := range txs {
			e.add(t, x)
		}
		block := []*tx.Tx{txs[3], txs[0], txs[1]}
		for _, x := range block {
			require.True(t, e.state.apply(x, cfg.MinFee, proposer))
		}
		ev := e.pool.Update(e.state, block, nil)
		require.NoError(t, e.pool.CheckInvariants())
		require.Empty(t, ev)
		require.Equal(t, []tx.Hash{txs[2].Hash()}, hashes(e.pool.Pending(0, 0)))
	})

	t.Run("included elsewhere is nonce too low", func(t *testing.T) {
		e := newEnv(t, cfg, alice)
		mine := e.mustAdd(t, mk(alice, 0, 1, 1), txpool.Ready)
		future := e.mustAdd(t, mk(alice, 2, 1, 1), txpool.Future)
		other := mk(alice, 0, 1, 2) // same nonce, another hash, from another node
		next := mk(alice, 1, 1, 2)
		require.True(t, e.state.apply(other, cfg.MinFee, proposer))
		require.True(t, e.state.apply(next, cfg.MinFee, proposer))
		ev := kinds(e.pool.Update(e.state, []*tx.Tx{other, next}, nil))
		require.Equal(t, txpool.Invalid, ev[mine].Kind)
		require.Equal(t, txpool.ReasonNonceTooLow, ev[mine].Reason)
		require.Equal(t, txpool.Promoted, ev[future].Kind, "the gap was filled by the block")
		require.Equal(t, []tx.Hash{future}, hashes(e.pool.Pending(0, 0)))
	})

	t.Run("balance drop invalidates and demotes", func(t *testing.T) {
		e := newEnv(t, cfg, alice)
		a0 := e.mustAdd(t, mk(alice, 0, 1, 100), txpool.Ready)
		a1 := e.mustAdd(t, mk(alice, 1, 1, 500_000), txpool.Ready)
		a2 := e.mustAdd(t, mk(alice, 2, 1, 100), txpool.Ready)
		e.state.set(addr(alice), 1000, 0) // spent elsewhere (e.g. received less)
		ev := kinds(e.pool.Update(e.state, nil, nil))
		require.NoError(t, e.pool.CheckInvariants())
		require.NotContains(t, ev, a0)
		require.Equal(t, txpool.Invalid, ev[a1].Kind)
		require.Equal(t, txpool.ReasonInsufficientBalance, ev[a1].Reason)
		require.Equal(t, txpool.Demoted, ev[a2].Kind)
		require.Equal(t, []tx.Hash{a0}, hashes(e.pool.Pending(0, 0)))
	})

	t.Run("fork switch restores retracted", func(t *testing.T) {
		e := newEnv(t, cfg, alice, bob)
		base := e.state.clone()
		a0, a1, b0 := mk(alice, 0, 1, 1), mk(alice, 1, 1, 1), mk(bob, 0, 1, 1)
		a2 := mk(alice, 2, 1, 1)
		for _, x := range []*tx.Tx{a0, a1, b0, a2} {
			e.add(t, x)
		}
		// Block X on fork 1 includes a0, a1, b0.
		forkX := []*tx.Tx{a0, a1, b0}
		for _, x := range forkX {
			require.True(t, e.state.apply(x, cfg.MinFee, proposer))
		}
		require.Empty(t, e.pool.Update(e.state, forkX, nil))
		require.Equal(t, 1, e.pool.Len())
		// Fork 2 wins: block Y includes only b0 (and an unknown tx of bob).
		st2 := base.clone()
		b1 := mk(bob, 1, 1, 1)
		forkY := []*tx.Tx{b0, b1}
		for _, x := range forkY {
			require.True(t, st2.apply(x, cfg.MinFee, proposer))
		}
		ev := e.pool.Update(st2, forkY, forkX)
		require.NoError(t, e.pool.CheckInvariants())
		m := kinds(ev)
		require.Equal(t, txpool.Event{Hash: a0.Hash(), Kind: txpool.Restored, Status: txpool.Ready}, m[a0.Hash()])
		require.Equal(t, txpool.Restored, m[a1.Hash()].Kind)
		require.NotContains(t, m, b0.Hash(), "included again on the new fork")
		var a2kinds []txpool.EventKind
		for _, x := range ev {
			if x.Hash == a2.Hash() {
				a2kinds = append(a2kinds, x.Kind)
			}
		}
		require.Equal(t, []txpool.EventKind{txpool.Demoted, txpool.Promoted}, a2kinds,
			"a2 waits for a0 and a1 until they are restored")
		require.Equal(t, []tx.Hash{a0.Hash(), a1.Hash(), a2.Hash()}, hashes(e.pool.Pending(0, 0)))
		require.Equal(t, uint64(2), e.pool.Stats().Restored)
	})

	t.Run("retracted but now invalid", func(t *testing.T) {
		e := newEnv(t, cfg, alice)
		a0 := mk(alice, 0, 1, 1)
		// The new fork includes another nonce-0 tx of alice.
		other := mk(alice, 0, 2, 1)
		require.True(t, e.state.apply(other, cfg.MinFee, proposer))
		ev := e.pool.Update(e.state, []*tx.Tx{other}, []*tx.Tx{a0})
		require.Equal(t, []txpool.Event{{Hash: a0.Hash(), Kind: txpool.Invalid, Reason: txpool.ReasonNonceTooLow, Detail: ev[0].Detail}}, ev)
		require.True(t, strings.Contains(ev[0].Detail, "nonce too low"))
	})
}

func TestPendingOrder(t *testing.T) {
	a, b, c := keyN(1), keyN(2), keyN(3)
	e := newEnv(t, testConfig(), a, b, c)
	a0, a1 := mk(a, 0, 5, 1), mk(a, 1, 50, 1)
	b0, b1 := mk(b, 0, 7, 1), mk(b, 1, 1, 1)
	c0 := mk(c, 0, 5, 1)
	for _, x := range []*tx.Tx{a0, a1, b0, c0, b1, mk(c, 5, 100, 1)} {
		e.add(t, x)
	}
	// b0 (7) first; then a0 and c0 tie at 5 (a0 arrived first); a1 (50) is
	// behind a0; b1 (1) last; c's future tx is not pending.
	require.Equal(t, hashes([]*tx.Tx{b0, a0, a1, c0, b1}), hashes(e.pool.Pending(0, 0)))
	require.Equal(t, hashes([]*tx.Tx{b0, a0}), hashes(e.pool.Pending(2, 0)))
	size := len(b0.Encode())
	got := e.pool.Pending(0, size+len(a0.Encode()))
	require.Equal(t, hashes([]*tx.Tx{b0, a0}), hashes(got)[:2])
	total := 0
	for _, x := range got {
		total += len(x.Encode())
	}
	require.LessOrEqual(t, total, size+len(a0.Encode()))

	// Everything Pending returns executes in order on the head state.
	st := e.state.clone()
	for _, x := range e.pool.Pending(0, 0) {
		require.True(t, st.apply(x, 1, sink))
	}
}

func TestStateError(t *testing.T) {
	alice := devKey(t, "alice")
	p := txpool.New(testConfig(), newClock(), nil, failing{})
	_, _, err := p.AddTx(mk(alice, 0, 1, 1))
	require.Error(t, err)
	require.NotErrorIs(t, err, txpool.ErrRefused)
	require.Equal(t, uint64(1), p.Stats().StateErrors)
}

type failing struct{}

func (failing) Account(tx.Address) (uint64, uint64, error) { return 0, 0, errors.New("disk on fire") }

// Concurrent submissions of the same transactions: each is admitted once,
// every other submission is "already known".
func TestConcurrentAdd(t *testing.T) {
	keys := []ed25519.PrivateKey{keyN(1), keyN(2), keyN(3)}
	e := newEnv(t, testConfig(), keys...)
	var raws [][]byte
	for _, k := range keys {
		for n := uint64(0); n < 10; n++ {
			raws = append(raws, mk(k, n, 1, 1).Encode())
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range raws {
				_, _, err := e.pool.Add(r)
				if err == nil {
					mu.Lock()
					admitted++
					mu.Unlock()
				} else if re, ok := txpool.ReasonOf(err); !ok || re != txpool.ReasonAlreadyKnown {
					t.Errorf("unexpected %v", err)
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, len(raws), admitted)
	require.NoError(t, e.pool.CheckInvariants())
	require.Len(t, e.pool.Pending(0, 0), len(raws))
	require.Equal(t, uint64(3*len(raws)), e.pool.Stats().Refused[txpool.ReasonAlreadyKnown])
}

// movingState is a state that moves under the pool like the chain's live
// best state: every read of the account advances its nonce by one (a block
// including its transactions imported meanwhile).
type movingState struct {
	mu    sync.Mutex
	nonce uint64
}

func (s *movingState) Account(tx.Address) (uint64, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nonce
	s.nonce++
	return 1_000_000, n, nil
}

// TestStateMovesDuringAdmission: an account without pooled transactions is
// read from the state during admission; when the state advances between
// two reads (a block imported by another goroutine), the admission decides
// against one consistent reading. It used to read twice and panic ("did not
// survive normalization"), which a gossiped transaction could trigger on a
// loaded node (found by scripts/tx-load.sh).
func TestStateMovesDuringAdmission(t *testing.T) {
	k := keyN(1)
	for nonce := range uint64(4) {
		// The first read (before the signature check) sees nonce-1, the
		// next nonce: the transaction passes it and the checks after it.
		p := txpool.New(testConfig(), newClock(), tx.NewSigCache(16), &movingState{nonce: nonce - min(nonce, 1)})
		require.NotPanics(t, func() {
			_, st, err := p.AddTx(mk(k, nonce, 1, 1))
			if err != nil {
				requireReason(t, err, txpool.ReasonNonceTooLow)
				return
			}
			require.NotEqual(t, txpool.Unknown, st)
			got, _, ok := p.Get(mk(k, nonce, 1, 1).Hash())
			require.True(t, ok)
			require.Equal(t, nonce, got.Nonce)
		})
	}
}

func TestNextNonce(t *testing.T) {
	k := keyN(2)
	e := newEnv(t, testConfig(), k)
	_, ok := e.pool.NextNonce(addr(k))
	require.False(t, ok, "nothing pooled")
	e.mustAdd(t, mk(k, 0, 1, 1), txpool.Ready)
	e.mustAdd(t, mk(k, 1, 1, 1), txpool.Ready)
	e.mustAdd(t, mk(k, 3, 1, 1), txpool.Future)
	n, ok := e.pool.NextNonce(addr(k))
	require.True(t, ok)
	require.Equal(t, uint64(2), n, "after the ready run, not the future one")
}
