package state

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/trie"
	"github.com/ethereum/go-ethereum/trie/trienode"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

// Env is what execution needs to know about the block.
type Env struct {
	Genesis  checkpoint.Hash // genesis block hash; a tx with another Genesis is invalid
	MinFee   uint64
	Number   uint64
	Proposer tx.Address // receives every fee
	// Mutations break rules on purpose (simulator only; zero in production).
	Mutations Mutations
}

// Receipt is the outcome of one included transaction.
type Receipt struct {
	Hash   tx.Hash
	Index  uint32
	From   tx.Address
	To     tx.Address
	Amount uint64
	Fee    uint64
	Nonce  uint64
}

// Result is an executed block body: the new root, the receipts, and the
// writes to persist (Write).
type Result struct {
	Root     checkpoint.Hash
	Receipts []Receipt

	db     *DB
	parent checkpoint.Hash
	nodes  *trienode.NodeSet // nil when the root did not change
}

var (
	// ErrInvalidTx is wrapped by every error that makes a block body
	// invalid. The error text names the transaction index and one of the
	// rule errors below, which are wrapped too.
	ErrInvalidTx = errors.New("invalid transaction")

	ErrBadSignature        = tx.ErrBadSignature
	ErrMalformed           = tx.ErrMalformed
	ErrWrongChain          = errors.New("wrong chain")
	ErrNonceTooLow         = errors.New("nonce too low")
	ErrNonceTooHigh        = errors.New("nonce too high")
	ErrInsufficientBalance = errors.New("insufficient balance")
	ErrFeeTooLow           = errors.New("fee too low")
	ErrOverflow            = errors.New("overflow")
)

func invalid(i int, rule error, format string, args ...any) error {
	return fmt.Errorf("%w: tx %d: %w: %s", ErrInvalidTx, i, rule, fmt.Sprintf(format, args...))
}

// entry is one account touched by the block.
type entry struct {
	addr  tx.Address
	key   common.Hash // keccak256(addr)
	acc   Account
	dirty bool
}

// executor applies transactions to an overlay of the accounts they touch
// and writes the overlay into the trie once, at the end.
type executor struct {
	db       *DB
	parent   checkpoint.Hash
	tr       *trie.Trie
	env      Env
	sigs     *tx.SigCache
	idx      map[tx.Address]int32
	ents     []entry
	receipts []Receipt
	kh       crypto.KeccakState
}

func (d *DB) openTrie(root checkpoint.Hash) (*trie.Trie, error) {
	ok, err := d.HasState(root)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: root %x", ErrMissingState, root[:])
	}
	tr, err := trie.New(trie.StateTrieID(common.Hash(root)), nodeDB{d})
	if err != nil {
		return nil, missing(err)
	}
	return tr, nil
}

// missing wraps trie errors for absent nodes as ErrMissingState.
func missing(err error) error {
	var m *trie.MissingNodeError
	if errors.As(err, &m) {
		return fmt.Errorf("%w: %v", ErrMissingState, err)
	}
	return err
}

func (d *DB) newExecutor(parent checkpoint.Hash, env Env, sigs *tx.SigCache, n int) (*executor, error) {
	tr, err := d.openTrie(parent)
	if err != nil {
		return nil, err
	}
	return &executor{
		db:       d,
		parent:   parent,
		tr:       tr,
		env:      env,
		sigs:     sigs,
		idx:      make(map[tx.Address]int32, 2*n+1),
		ents:     make([]entry, 0, 2*n+1),
		receipts: make([]Receipt, 0, n),
		kh:       crypto.NewKeccakState(),
	}, nil
}

func (e *executor) hashKey(a *tx.Address) (h common.Hash) {
	e.kh.Reset()
	e.kh.Write(a[:])
	e.kh.Read(h[:])
	return h
}

// load returns the index of a's entry, reading it from the trie once.
func (e *executor) load(a tx.Address) (int, error) {
	if i, ok := e.idx[a]; ok {
		return int(i), nil
	}
	k := e.hashKey(&a)
	v, err := e.tr.Get(k[:])
	if err != nil {
		return 0, missing(err)
	}
	var acc Account
	if v != nil {
		if acc, err = decodeAccount(v); err != nil {
			return 0, err
		}
	}
	e.ents = append(e.ents, entry{addr: a, key: k, acc: acc})
	i := len(e.ents) - 1
	e.idx[a] = int32(i)
	return i, nil
}

// apply checks t (hash h) as transaction i of the block and applies it. A
// failing transaction changes nothing; its error wraps ErrInvalidTx unless
// it is a storage error.
func (e *executor) apply(i int, t *tx.Tx, h tx.Hash) error {
	if t.Genesis != e.env.Genesis {
		return invalid(i, ErrWrongChain, "genesis %s, want %s", t.Genesis.Short(), e.env.Genesis.Short())
	}
	if t.Fee < e.env.MinFee {
		return invalid(i, ErrFeeTooLow, "fee %d, minimum %d", t.Fee, e.env.MinFee)
	}
	total := t.Amount + t.Fee
	if total < t.Amount {
		return invalid(i, ErrOverflow, "amount %d + fee %d", t.Amount, t.Fee)
	}
	if err := e.sigs.Verify(t, h); err != nil {
		return fmt.Errorf("%w: tx %d: %w", ErrInvalidTx, i, err)
	}
	fi, err := e.load(t.From)
	if err != nil {
		return err
	}
	ti, err := e.load(t.To)
	if err != nil {
		return err
	}
	pi := -1
	if t.Fee > 0 {
		if pi, err = e.load(e.env.Proposer); err != nil {
			return err
		}
	}
	from := &e.ents[fi].acc
	switch {
	case t.Nonce < from.Nonce && !e.env.Mutations.SkipNonceCheck:
		return invalid(i, ErrNonceTooLow, "nonce %d, account nonce %d", t.Nonce, from.Nonce)
	case t.Nonce > from.Nonce && !e.env.Mutations.SkipNonceCheck:
		return invalid(i, ErrNonceTooHigh, "nonce %d, account nonce %d", t.Nonce, from.Nonce)
	case from.Nonce == math.MaxUint64:
		return invalid(i, ErrOverflow, "nonce %d is the last", from.Nonce)
	case from.Balance < total && !e.env.Mutations.SkipBalanceCheck:
		return invalid(i, ErrInsufficientBalance, "balance %d, amount+fee %d", from.Balance, total)
	}
	to := &e.ents[ti].acc
	var prop *Account
	if pi >= 0 {
		prop = &e.ents[pi].acc
	}
	// The three may alias; save them all before the first change.
	sf, st := *from, *to
	var sp Account
	if prop != nil {
		sp = *prop
	}
	restore := func() {
		if prop != nil {
			*prop = sp
		}
		*to = st
		*from = sf
	}
	from.Balance -= total
	from.Nonce++
	if to.Balance+t.Amount < to.Balance {
		restore()
		return invalid(i, ErrOverflow, "recipient balance %d + amount %d", st.Balance, t.Amount)
	}
	to.Balance += t.Amount
	if prop != nil {
		if prop.Balance+t.Fee < prop.Balance {
			restore()
			return invalid(i, ErrOverflow, "proposer balance + fee %d", t.Fee)
		}
		prop.Balance += t.Fee
		e.ents[pi].dirty = true
	}
	e.ents[fi].dirty = true
	e.ents[ti].dirty = true
	e.receipts = append(e.receipts, Receipt{
		Hash: h, Index: uint32(i), From: t.From, To: t.To,
		Amount: t.Amount, Fee: t.Fee, Nonce: t.Nonce,
	})
	return nil
}

// finish writes the touched accounts into the trie and commits it.
func (e *executor) finish() (*Result, error) {
	n := 0
	for i := range e.ents {
		if e.ents[i].dirty {
			n++
		}
	}
	buf := make([]byte, n*AccountSize)
	for i := range e.ents {
		en := &e.ents[i]
		if !en.dirty {
			continue
		}
		v := (*[AccountSize]byte)(buf[:AccountSize])
		buf = buf[AccountSize:]
		en.acc.encode(v)
		if err := e.tr.Update(en.key[:], v[:]); err != nil {
			return nil, missing(err)
		}
	}
	root, set := e.tr.Commit(false)
	return &Result{Root: checkpoint.Hash(root), Receipts: e.receipts, db: e.db, parent: e.parent, nodes: set}, nil
}

// Execute executes the encoded transactions body on the state parentRoot.
// The first failing transaction makes the body invalid: the error wraps
// ErrInvalidTx and a rule error. An unknown or pruned parentRoot is
// ErrMissingState. Nothing is written; see Result.Write.
func (d *DB) Execute(parentRoot checkpoint.Hash, env Env, body [][]byte, sigs *tx.SigCache) (*Result, error) {
	e, err := d.newExecutor(parentRoot, env, sigs, len(body))
	if err != nil {
		return nil, err
	}
	for i, b := range body {
		t, err := tx.Decode(b)
		if err != nil {
			if errors.Is(err, tx.ErrMalformed) {
				return nil, fmt.Errorf("%w: tx %d: %w", ErrInvalidTx, i, err)
			}
			return nil, fmt.Errorf("%w: tx %d: %w: %w", ErrInvalidTx, i, ErrMalformed, err)
		}
		if err := e.apply(i, t, t.Hash()); err != nil {
			return nil, err
		}
	}
	return e.finish()
}

// BuildLimits bounds the body Build assembles. Zero MaxTxs or MaxBytes means
// no bound; a zero Deadline means none; Now defaults to time.Now.
type BuildLimits struct {
	MaxTxs, MaxBytes int
	Deadline         time.Time
	Now              func() time.Time
}

// Rejection is a candidate Build skipped and why (an error wrapping
// ErrInvalidTx and a rule error).
type Rejection struct {
	Tx  *tx.Tx
	Err error
}

// Build executes candidates in order on parentRoot, keeping each that
// succeeds and skipping (with its reason) each that fails, until MaxTxs
// transactions are included, the next one would exceed MaxBytes, or the
// deadline passes. It returns the result and the included encoded body,
// which Execute on parentRoot turns into the same result.
func (d *DB) Build(parentRoot checkpoint.Hash, env Env, candidates []*tx.Tx, lim BuildLimits, sigs *tx.SigCache) (*Result, [][]byte, []Rejection, error) {
	n := len(candidates)
	if lim.MaxTxs > 0 && lim.MaxTxs < n {
		n = lim.MaxTxs
	}
	e, err := d.newExecutor(parentRoot, env, sigs, n)
	if err != nil {
		return nil, nil, nil, err
	}
	now := lim.Now
	if now == nil {
		now = time.Now
	}
	var (
		body  = make([][]byte, 0, n)
		rej   []Rejection
		bytes int
	)
	for _, t := range candidates {
		if lim.MaxTxs > 0 && len(body) >= lim.MaxTxs {
			break
		}
		if !lim.Deadline.IsZero() && !now().Before(lim.Deadline) {
			break
		}
		if t == nil {
			continue
		}
		if t.From.IsZero() || t.To.IsZero() {
			// Decode refuses these, so the body would not execute.
			rej = append(rej, Rejection{Tx: t, Err: fmt.Errorf("%w: tx %d: %w: the all-zero key is not an account", ErrInvalidTx, len(body), ErrMalformed)})
			continue
		}
		enc := t.Encode()
		if lim.MaxBytes > 0 && bytes+len(enc) > lim.MaxBytes {
			break
		}
		if err := e.apply(len(body), t, t.Hash()); err != nil {
			if !errors.Is(err, ErrInvalidTx) {
				return nil, nil, nil, err
			}
			rej = append(rej, Rejection{Tx: t, Err: err})
			continue
		}
		body = append(body, enc)
		bytes += len(enc)
	}
	r, err := e.finish()
	if err != nil {
		return nil, nil, nil, err
	}
	return r, body, rej, nil
}
