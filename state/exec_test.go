package state

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

func testEnv(n uint64) Env {
	return Env{Genesis: testGenesis, MinFee: 1, Number: n, Proposer: testAddr(9)}
}

func TestGenesisRoot(t *testing.T) {
	db, s, _ := newTestDB(t)
	spec := testSpec(1000, 500, 7)
	want, err := GenesisRoot(spec)
	require.NoError(t, err)
	got := commitGenesis(t, db, s, spec)
	require.Equal(t, want, got)
	for i, b := range []uint64{1000, 500, 7} {
		acc, ok, err := s.Account(got, testAddr(i))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, Account{Balance: b}, acc)
	}
	_, ok, err := s.Account(got, testAddr(5))
	require.NoError(t, err)
	require.False(t, ok)

	empty, err := GenesisRoot(testSpec())
	require.NoError(t, err)
	require.Equal(t, EmptyRoot, empty)
	has, err := s.HasState(EmptyRoot)
	require.NoError(t, err)
	require.True(t, has)

	dup := testSpec(1, 2)
	dup.Balances[1].Address = dup.Balances[0].Address
	_, err = GenesisRoot(dup)
	require.Error(t, err)
	over := testSpec(math.MaxUint64, 1)
	_, err = GenesisRoot(over)
	require.Error(t, err)
}

func TestExecuteRules(t *testing.T) {
	db, s, _ := newTestDB(t)
	root := commitGenesis(t, db, s, testSpec(1000, 500, 0))
	a0, a1, a2 := testAddr(0), testAddr(1), testAddr(2)
	badSig := signed(0, a1, 10, 1, 0)
	badSig.Amount = 11
	wrong := &tx.Tx{Genesis: checkpoint.HashOf([]byte("other")), To: a1, Amount: 1, Fee: 1}
	wrong.Sign(testKey(0))
	big := make([]byte, 300)

	for _, tc := range []struct {
		name string
		body [][]byte
		rule error
		at   int
		want map[tx.Address]Account // after, when valid
	}{
		{name: "empty", body: nil, want: map[tx.Address]Account{a0: {1000, 0}}},
		{name: "transfer", body: encodeAll(signed(0, a1, 100, 2, 0)),
			want: map[tx.Address]Account{a0: {898, 1}, a1: {600, 0}, testAddr(9): {2, 0}}},
		{name: "to new account", body: encodeAll(signed(1, a2, 0, 1, 0)),
			want: map[tx.Address]Account{a1: {499, 1}, a2: {0, 0}, testAddr(9): {1, 0}}},
		{name: "self transfer", body: encodeAll(signed(0, a0, 999, 1, 0)),
			want: map[tx.Address]Account{a0: {999, 1}}},
		{name: "two in a row", body: encodeAll(signed(0, a1, 1, 1, 0), signed(0, a1, 1, 1, 1)),
			want: map[tx.Address]Account{a0: {996, 2}, a1: {502, 0}}},
		{name: "whole balance", body: encodeAll(signed(1, a0, 499, 1, 0)),
			want: map[tx.Address]Account{a1: {0, 1}, a0: {1499, 0}}},
		{name: "bad signature", body: encodeAll(badSig), rule: ErrBadSignature},
		{name: "wrong chain", body: encodeAll(wrong), rule: ErrWrongChain},
		{name: "nonce too low", body: encodeAll(signed(0, a1, 1, 1, 0), signed(0, a1, 1, 1, 0)), rule: ErrNonceTooLow, at: 1},
		{name: "nonce too high", body: encodeAll(signed(0, a1, 1, 1, 1)), rule: ErrNonceTooHigh},
		{name: "fee too low", body: encodeAll(signed(0, a1, 1, 0, 0)), rule: ErrFeeTooLow},
		{name: "insufficient", body: encodeAll(signed(1, a0, 500, 1, 0)), rule: ErrInsufficientBalance},
		{name: "empty sender", body: encodeAll(signed(2, a0, 0, 1, 0)), rule: ErrInsufficientBalance},
		{name: "amount+fee overflow", body: encodeAll(signed(0, a1, math.MaxUint64, 1, 0)), rule: ErrOverflow},
		{name: "malformed", body: [][]byte{{0x0a, 0x01, 0x02}}, rule: ErrMalformed},
		{name: "too large", body: [][]byte{big}, rule: ErrMalformed},
		{name: "late failure", body: append(encodeAll(signed(0, a1, 1, 1, 0)), []byte{1}), rule: ErrMalformed, at: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := s.Execute(root, testEnv(1), tc.body, nil)
			if tc.rule != nil {
				require.ErrorIs(t, err, ErrInvalidTx)
				require.ErrorIs(t, err, tc.rule)
				require.Contains(t, err.Error(), fmt.Sprintf("tx %d", tc.at))
				require.Contains(t, err.Error(), tc.rule.Error())
				return
			}
			require.NoError(t, err)
			require.Len(t, r.Receipts, len(tc.body))
			if len(tc.body) == 0 {
				require.Equal(t, root, r.Root)
			}
			commitResult(t, db, r, blockHash(tc.name))
			for a, want := range tc.want {
				got, ok, err := s.Account(r.Root, a)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, want, got, a.Short())
			}
			require.Equal(t, uint64(1500), issuance(t, s, r.Root, 10))
		})
	}
}

// issuance sums the balances of test accounts 0..n-1.
func issuance(t testing.TB, s *DB, root checkpoint.Hash, n int) uint64 {
	var sum uint64
	for i := range n {
		acc, _, err := s.Account(root, testAddr(i))
		require.NoError(t, err)
		sum += acc.Balance
	}
	return sum
}

// model is the reference: plain maps of balances and nonces.
type model map[tx.Address]Account

func (m model) clone() model {
	c := make(model, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// apply checks and applies t in the documented rule order; it returns the
// rule error, or nil.
func (m model) apply(env Env, t *tx.Tx, sigOK bool) error {
	switch {
	case t.Genesis != env.Genesis:
		return ErrWrongChain
	case t.Fee < env.MinFee:
		return ErrFeeTooLow
	case t.Amount > math.MaxUint64-t.Fee:
		return ErrOverflow
	case !sigOK:
		return ErrBadSignature
	}
	from := m[t.From]
	switch {
	case t.Nonce < from.Nonce:
		return ErrNonceTooLow
	case t.Nonce > from.Nonce:
		return ErrNonceTooHigh
	case from.Balance < t.Amount+t.Fee:
		return ErrInsufficientBalance
	}
	from.Balance -= t.Amount + t.Fee
	from.Nonce++
	m[t.From] = from
	to := m[t.To]
	to.Balance += t.Amount
	m[t.To] = to
	if t.Fee > 0 {
		p := m[env.Proposer]
		p.Balance += t.Fee
		m[env.Proposer] = p
	}
	return nil
}

// randomTx returns a transaction among accounts 0..n-1 that breaks a rule
// with some probability, and whether its signature is valid.
func randomTx(rng *rand.Rand, m model, n int) (*tx.Tx, bool, []byte) {
	from := rng.IntN(n)
	to := testAddr(rng.IntN(n))
	acc := m[testAddr(from)]
	amount := uint64(0)
	if acc.Balance > 2 {
		amount = rng.Uint64N(acc.Balance/2 + 1)
	}
	fee := uint64(1 + rng.IntN(3))
	nonce := acc.Nonce
	sigOK := true
	genesis := testGenesis
	switch rng.IntN(30) {
	case 0:
		nonce += 1 + rng.Uint64N(3)
	case 1:
		if nonce > 0 {
			nonce -= 1
		}
	case 2:
		fee = 0
	case 3:
		amount = acc.Balance + rng.Uint64N(10)
	case 4:
		amount = math.MaxUint64 - rng.Uint64N(2)
	case 5:
		genesis = checkpoint.HashOf([]byte("fork"))
	case 6:
		sigOK = false
	case 7:
		return nil, false, []byte{byte(rng.IntN(256)), 0x20}
	}
	t := &tx.Tx{Genesis: genesis, To: to, Amount: amount, Fee: fee, Nonce: nonce}
	t.Sign(testKey(from))
	if !sigOK {
		t.Signature[rng.IntN(64)] ^= 1 << rng.IntN(8)
	}
	return t, sigOK, t.Encode()
}

func TestExecuteRandomAgainstModel(t *testing.T) {
	const n = 6
	db, s, _ := newTestDB(t)
	balances := []uint64{1_000_000, 50_000, 3, 0, 777, math.MaxUint64 / 4}
	spec := testSpec(balances...)
	total, err := spec.TotalIssuance()
	require.NoError(t, err)
	root := commitGenesis(t, db, s, spec)
	m := model{}
	for i, b := range balances {
		m[testAddr(i)] = Account{Balance: b}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sigs := tx.NewSigCache(1024)
	valid, invalid := 0, 0
	defer func() {
		t.Logf("%d valid blocks, %d invalid", valid, invalid)
		require.Greater(t, valid, 40)
		require.Greater(t, invalid, 40)
	}()
	for blk := range 150 {
		env := testEnv(uint64(blk + 1))
		env.Proposer = testAddr(rng.IntN(n + 1)) // sometimes a sender, sometimes not
		next := m.clone()
		var body [][]byte
		wantAt, wantRule := -1, error(nil)
		for i := range rng.IntN(8) {
			t, sigOK, enc := randomTx(rng, next, n)
			body = append(body, enc)
			if wantAt >= 0 {
				continue
			}
			if t == nil {
				wantAt, wantRule = i, ErrMalformed
			} else if err := next.apply(env, t, sigOK); err != nil {
				wantAt, wantRule = i, err
			}
		}
		r, err := s.Execute(root, env, body, sigs)
		if wantAt >= 0 {
			require.ErrorIs(t, err, ErrInvalidTx, "block %d", blk)
			require.ErrorIs(t, err, wantRule, "block %d: %v", blk, err)
			require.Contains(t, err.Error(), fmt.Sprintf("tx %d:", wantAt))
			invalid++
			continue
		}
		require.NoError(t, err, "block %d", blk)
		valid++
		require.Len(t, r.Receipts, len(body))
		for i, rc := range r.Receipts {
			require.Equal(t, uint32(i), rc.Index)
		}
		commitResult(t, db, r, blockHash(blk))
		root = r.Root
		m = next
		var sum uint64
		for a, want := range m {
			got, ok, err := s.Account(root, a)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, want, got)
			sum += got.Balance
		}
		require.Equal(t, total, sum, "issuance")
		// Every touched account is in the model and nothing else exists.
		_, ok, err := s.Account(root, testAddr(n+5))
		require.NoError(t, err)
		require.False(t, ok)
	}
}

func TestExecuteMissingState(t *testing.T) {
	db, s, _ := newTestDB(t)
	commitGenesis(t, db, s, testSpec(10))
	_, err := s.Execute(checkpoint.HashOf([]byte("nope")), testEnv(1), nil, nil)
	require.ErrorIs(t, err, ErrMissingState)
	_, _, err = s.Account(checkpoint.HashOf([]byte("nope")), testAddr(0))
	require.ErrorIs(t, err, ErrMissingState)
	_, _, _, err = s.Build(checkpoint.HashOf([]byte("nope")), testEnv(1), nil, BuildLimits{}, nil)
	require.ErrorIs(t, err, ErrMissingState)
}

func TestBuild(t *testing.T) {
	db, s, _ := newTestDB(t)
	root := commitGenesis(t, db, s, testSpec(1000, 1000, 1000))
	a1 := testAddr(1)
	cands := []*tx.Tx{
		signed(0, a1, 10, 1, 0),
		signed(0, a1, 10, 1, 0), // nonce too low now
		signed(0, a1, 10, 1, 1),
		signed(1, a1, 5000, 1, 0), // insufficient
		signed(2, a1, 1, 0, 0),    // fee too low
		{Genesis: testGenesis, From: testAddr(2)},
		signed(2, a1, 1, 1, 0),
		signed(2, a1, 1, 1, 1),
	}
	for _, tc := range []struct {
		name     string
		lim      BuildLimits
		included int
		rejected []error
	}{
		{"all", BuildLimits{}, 4, []error{ErrNonceTooLow, ErrInsufficientBalance, ErrFeeTooLow, ErrMalformed}},
		{"max txs", BuildLimits{MaxTxs: 2}, 2, []error{ErrNonceTooLow}},
		{"max bytes", BuildLimits{MaxBytes: len(cands[0].Encode()) + 10}, 1, nil},
		{"deadline", BuildLimits{Deadline: time.Unix(100, 0), Now: func() time.Time { return time.Unix(100, 0) }}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, body, rej, err := s.Build(root, testEnv(1), cands, tc.lim, nil)
			require.NoError(t, err)
			require.Len(t, body, tc.included)
			require.Len(t, r.Receipts, tc.included)
			require.Len(t, rej, len(tc.rejected))
			for i, want := range tc.rejected {
				require.ErrorIs(t, rej[i].Err, ErrInvalidTx)
				require.ErrorIs(t, rej[i].Err, want)
			}
			// The body executes to the same result.
			r2, err := s.Execute(root, testEnv(1), body, nil)
			require.NoError(t, err)
			require.Equal(t, r.Root, r2.Root)
			require.Equal(t, r.Receipts, r2.Receipts)
		})
	}
}

func TestCrashLeavesPreviousState(t *testing.T) {
	dir := t.TempDir()
	db := openPebble(t, dir)
	s := Open(db, zap.NewNop())
	root := commitGenesis(t, db, s, testSpec(1000, 1000))
	r, err := s.Execute(root, testEnv(1), encodeAll(signed(0, testAddr(1), 5, 1, 0)), nil)
	require.NoError(t, err)
	b := db.NewBatch()
	require.NoError(t, r.Write(b, blockHash(1)))
	// The batch is never committed: the process dies here.
	require.NoError(t, db.Close())

	db = openPebble(t, dir)
	defer db.Close()
	s = Open(db, zap.NewNop())
	has, err := s.HasState(r.Root)
	require.NoError(t, err)
	require.False(t, has)
	acc, ok, err := s.Account(root, testAddr(0))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, Account{Balance: 1000}, acc)
	// The same block executes and commits after the restart.
	r2, err := s.Execute(root, testEnv(1), encodeAll(signed(0, testAddr(1), 5, 1, 0)), nil)
	require.NoError(t, err)
	require.Equal(t, r.Root, r2.Root)
	commitResult(t, db, r2, blockHash(1))
	acc, _, err = s.Account(r2.Root, testAddr(0))
	require.NoError(t, err)
	require.Equal(t, Account{Balance: 994, Nonce: 1}, acc)
}

func TestProof(t *testing.T) {
	db, s, _ := newTestDB(t)
	spec := testSpec()
	for i := range 300 {
		spec.Balances = append(spec.Balances, testSpec(uint64(i+1) * 3).Balances[0])
		spec.Balances[i].Address = testAddr(i).String()
	}
	root := commitGenesis(t, db, s, spec)
	for _, tc := range []struct {
		name    string
		addr    tx.Address
		present bool
	}{
		{"present first", testAddr(0), true},
		{"present", testAddr(123), true},
		{"absent", testAddr(100000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Prove(root, tc.addr)
			require.NoError(t, err)
			require.NotEmpty(t, p)
			acc, ok, err := VerifyProof(root, tc.addr, p)
			require.NoError(t, err)
			require.Equal(t, tc.present, ok)
			want, _, err := s.Account(root, tc.addr)
			require.NoError(t, err)
			require.Equal(t, want, acc)

			// Tampering: every flipped byte of every node, a dropped node,
			// a wrong root.
			for i := range p {
				for j := 0; j < len(p[i]); j += 7 {
					q := clone2(p)
					q[i][j] ^= 0x01
					acc2, ok2, err := VerifyProof(root, tc.addr, q)
					if err == nil {
						// A flip may leave the verified path untouched only
						// if it hits a node that is not on it; never a
						// different answer.
						require.Equal(t, acc, acc2)
						require.Equal(t, ok, ok2)
					}
				}
				q := append(clone2(p[:i]), clone2(p[i+1:])...)
				_, _, err := VerifyProof(root, tc.addr, q)
				require.ErrorIs(t, err, ErrBadProof)
			}
			_, _, err = VerifyProof(checkpoint.HashOf([]byte("x")), tc.addr, p)
			require.ErrorIs(t, err, ErrBadProof)
		})
	}
	// A proof of one account does not prove another.
	p, err := s.Prove(root, testAddr(5))
	require.NoError(t, err)
	acc, ok, err := VerifyProof(root, testAddr(6), p)
	if err == nil {
		require.Equal(t, Account{Balance: 21}, acc) // only if on the same path
		require.True(t, ok)
	}
	// The empty state.
	p, err = s.Prove(EmptyRoot, testAddr(1))
	require.NoError(t, err)
	require.Empty(t, p)
	_, ok, err = VerifyProof(EmptyRoot, testAddr(1), p)
	require.NoError(t, err)
	require.False(t, ok)
}

func clone2(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = append([]byte(nil), p[i]...)
	}
	return out
}

func TestTxLocations(t *testing.T) {
	db, s, _ := newTestDB(t)
	root := commitGenesis(t, db, s, testSpec(100, 100))
	t1 := signed(0, testAddr(1), 1, 1, 0)
	r, err := s.Execute(root, testEnv(1), encodeAll(signed(1, testAddr(0), 1, 1, 0), t1), nil)
	require.NoError(t, err)
	commitResult(t, db, r, blockHash("a"))
	locs, err := s.TxLocations(t1.Hash())
	require.NoError(t, err)
	require.Equal(t, []TxLocation{{Block: blockHash("a"), Index: 1}}, locs)
	locs, err = s.TxLocations(checkpoint.HashOf([]byte("none")))
	require.NoError(t, err)
	require.Empty(t, locs)
	// Writing the same block twice changes nothing.
	b := db.NewBatch()
	require.NoError(t, r.Write(b, blockHash("a")))
	require.True(t, b.Empty())
	require.NoError(t, b.Close())
	_ = errors.New
	_ = pebble.Sync
}
