package txpool_test

import (
	"crypto/ed25519"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

var genesis = checkpoint.HashOf([]byte("txpool test genesis"))

// memState is a real account state kept in a map, with the execution rules
// of package state (nonce, min fee, balance >= amount+fee, fee to the
// proposer) so tests can execute blocks.
type memState struct {
	mu   sync.Mutex
	accs map[tx.Address]acct
}

type acct struct{ balance, nonce uint64 }

func newState() *memState { return &memState{accs: map[tx.Address]acct{}} }

func (s *memState) Account(a tx.Address) (uint64, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.accs[a]
	return x.balance, x.nonce, nil
}

func (s *memState) set(a tx.Address, balance, nonce uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accs[a] = acct{balance, nonce}
}

func (s *memState) clone() *memState {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := newState()
	for k, v := range s.accs {
		c.accs[k] = v
	}
	return c
}

// apply executes t; it returns false (and changes nothing) for an invalid tx.
func (s *memState) apply(t *tx.Tx, minFee uint64, proposer tx.Address) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	from := s.accs[t.From]
	cost := t.Amount + t.Fee
	if cost < t.Amount || t.Nonce != from.nonce || t.Fee < minFee || from.balance < cost {
		return false
	}
	from.balance -= cost
	from.nonce++
	s.accs[t.From] = from
	to := s.accs[t.To]
	to.balance += t.Amount
	s.accs[t.To] = to
	p := s.accs[proposer]
	p.balance += t.Fee
	s.accs[proposer] = p
	return true
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func devKey(t testing.TB, name string) ed25519.PrivateKey {
	t.Helper()
	k, err := chainspec.DevKey(name)
	require.NoError(t, err)
	return k
}

// keyN returns a deterministic ed25519 key for sender number i.
func keyN(i int) ed25519.PrivateKey {
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i))
	h := checkpoint.HashOf([]byte("txpool test key"), seed[:])
	return ed25519.NewKeyFromSeed(h[:])
}

func addr(k ed25519.PrivateKey) tx.Address { return tx.AddressOf(k.Public().(ed25519.PublicKey)) }

// sink is the recipient of most test transfers.
var sink = addr(keyN(-1))

func mk(k ed25519.PrivateKey, nonce, fee, amount uint64) *tx.Tx {
	t := &tx.Tx{Genesis: genesis, To: sink, Amount: amount, Fee: fee, Nonce: nonce}
	t.Sign(k)
	return t
}

func testConfig() txpool.Config {
	c := txpool.DefaultConfig()
	c.Genesis = genesis
	c.MinFee = 1
	return c
}

type env struct {
	pool  *txpool.Pool
	state *memState
	clock *fakeClock
	cfg   txpool.Config
}

func newEnv(t testing.TB, cfg txpool.Config, funded ...ed25519.PrivateKey) *env {
	t.Helper()
	st := newState()
	for _, k := range funded {
		st.set(addr(k), 1_000_000, 0)
	}
	clk := newClock()
	return &env{pool: txpool.New(cfg, clk, tx.NewSigCache(10_000), st), state: st, clock: clk, cfg: cfg}
}

func (e *env) add(t testing.TB, x *tx.Tx) (tx.Hash, txpool.Status, error) {
	t.Helper()
	h, st, err := e.pool.Add(x.Encode())
	require.NoError(t, e.pool.CheckInvariants())
	return h, st, err
}

func (e *env) addRaw(t testing.TB, raw []byte) (tx.Hash, txpool.Status, error) {
	t.Helper()
	h, st, err := e.pool.Add(raw)
	require.NoError(t, e.pool.CheckInvariants())
	return h, st, err
}

func (e *env) mustAdd(t testing.TB, x *tx.Tx, want txpool.Status) tx.Hash {
	t.Helper()
	h, st, err := e.add(t, x)
	require.NoError(t, err)
	require.Equal(t, want, st)
	require.Equal(t, x.Hash(), h)
	return h
}

func requireReason(t testing.TB, err error, r txpool.Reason) *txpool.RefusedError {
	t.Helper()
	require.ErrorIs(t, err, txpool.ErrRefused)
	var re *txpool.RefusedError
	require.ErrorAs(t, err, &re)
	require.Equal(t, r, re.Reason, err.Error())
	return re
}

func hashes(txs []*tx.Tx) []tx.Hash {
	out := make([]tx.Hash, len(txs))
	for i, t := range txs {
		out[i] = t.Hash()
	}
	return out
}

func kinds(evs []txpool.Event) map[tx.Hash]txpool.Event {
	m := map[tx.Hash]txpool.Event{}
	for _, e := range evs {
		m[e.Hash] = e
	}
	return m
}
