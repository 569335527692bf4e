package txpool

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/flarechain/flare-node/tx"
)

// entry is one pooled transaction.
type entry struct {
	tx     *tx.Tx
	hash   tx.Hash
	size   int       // canonical encoded bytes
	cost   uint64    // amount + fee (checked at admission, never overflows)
	seq    uint64    // arrival order (admission or replacement)
	added  time.Time // admission time, for Lifetime
	status Status    // Unknown until the first normalize
}

// account is one sender's pooled transactions and its state at the head.
type account struct {
	addr    tx.Address
	balance uint64
	nonce   uint64
	nonces  []uint64 // pooled nonces, ascending
	txs     map[uint64]*entry
	ready   int // nonces[:ready] are ready: contiguous from nonce
}

func (a *account) entryAt(i int) *entry { return a.txs[a.nonces[i]] }

func (a *account) futures() int { return len(a.nonces) - a.ready }

// totalCost is the sum of the costs of all pooled transactions of a; the
// pool keeps it <= balance, so it does not overflow.
func (a *account) totalCost() uint64 {
	var s uint64
	for _, e := range a.txs {
		s += e.cost
	}
	return s
}

// Pool is the transaction pool. It is safe for concurrent use; every method
// takes one mutex (Add releases it while it verifies a signature).
type Pool struct {
	mu    sync.Mutex
	cfg   Config
	clock Clock
	sigs  *tx.SigCache
	state StateReader

	byHash   map[tx.Hash]*entry
	accounts map[tx.Address]*account
	ready    int
	future   int
	bytes    int
	seq      uint64

	events    []Event
	maxEvents int
	// restoring is set while Update re-admits retracted transactions: the
	// global future cap is then enforced once at the end (trimFutureLocked),
	// so a restored transaction is not refused for room that the
	// transactions it will promote hold.
	restoring bool
	stats     Stats
}

// New returns an empty pool. It panics if cfg is invalid (Config.Validate)
// or state is nil; a nil clock is the system clock; a nil sigs verifies every
// signature.
func New(cfg Config, clock Clock, sigs *tx.SigCache, state StateReader) *Pool {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if state == nil {
		panic("txpool: nil StateReader")
	}
	if clock == nil {
		clock = SystemClock{}
	}
	return &Pool{
		cfg:       cfg,
		clock:     clock,
		sigs:      sigs,
		state:     state,
		byHash:    make(map[tx.Hash]*entry),
		accounts:  make(map[tx.Address]*account),
		maxEvents: max(4096, 4*cfg.MaxTxs),
		stats:     Stats{Refused: make(map[Reason]uint64)},
	}
}

func refused(r Reason, detail string) *RefusedError {
	return &RefusedError{Reason: r, Detail: detail}
}

// Add admits the canonical encoding raw of a transaction (from the API or
// gossip). It returns the transaction hash (zero if raw does not decode) and
// its status. A refusal is a *RefusedError; an "already known" refusal also
// returns the pooled transaction's current status, so a resubmission can be
// answered idempotently. Any other error comes from the StateReader.
func (p *Pool) Add(raw []byte) (tx.Hash, Status, error) {
	if len(raw) > tx.MaxEncodedSize {
		return tx.Hash{}, Unknown, p.countRefusal(refused(ReasonTooLarge,
			fmt.Sprintf("%d bytes, at most %d", len(raw), tx.MaxEncodedSize)))
	}
	t, err := tx.Decode(raw)
	if err != nil {
		r := ReasonMalformed
		if errors.Is(err, tx.ErrTooLarge) {
			r = ReasonTooLarge
		}
		return tx.Hash{}, Unknown, p.countRefusal(refused(r, err.Error()))
	}
	return p.add(t, len(raw))
}

// AddTx admits a decoded transaction; the pool keeps its own copy.
func (p *Pool) AddTx(t *tx.Tx) (tx.Hash, Status, error) {
	if t == nil || t.From.IsZero() || t.To.IsZero() {
		return tx.Hash{}, Unknown, p.countRefusal(refused(ReasonMalformed, "missing transaction or all-zero address"))
	}
	c := *t
	size := len(c.Encode())
	if size > tx.MaxEncodedSize {
		return c.Hash(), Unknown, p.countRefusal(refused(ReasonTooLarge,
			fmt.Sprintf("%d bytes, at most %d", size, tx.MaxEncodedSize)))
	}
	return p.add(&c, size)
}

func (p *Pool) countRefusal(err *RefusedError) error {
	p.mu.Lock()
	p.stats.Refused[err.Reason]++
	p.mu.Unlock()
	return err
}

// add runs the checks in order, cheapest first; the signature is verified
// without the lock, then the state-dependent checks run again under it.
func (p *Pool) add(t *tx.Tx, size int) (tx.Hash, Status, error) {
	h := t.Hash()
	if t.Genesis != p.cfg.Genesis {
		return h, Unknown, p.countRefusal(refused(ReasonWrongChain,
			fmt.Sprintf("genesis %s, this chain is %s", t.Genesis.Short(), p.cfg.Genesis.Short())))
	}
	if t.Fee < p.cfg.MinFee {
		return h, Unknown, p.countRefusal(refused(ReasonFeeTooLow,
			fmt.Sprintf("fee %d, minimum %d", t.Fee, p.cfg.MinFee)))
	}

	p.mu.Lock()
	st, err := p.precheckLocked(t, h)
	if err != nil {
		p.noteErrLocked(err)
		p.mu.Unlock()
		return h, st, err
	}
	p.mu.Unlock()

	if err := p.sigs.Verify(t, h); err != nil {
		return h, Unknown, p.countRefusal(refused(ReasonBadSignature, err.Error()))
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	st, err = p.admitLocked(t, h, size)
	p.noteErrLocked(err)
	if err == nil {
		p.stats.Admitted++
	}
	p.boundEventsLocked()
	return h, st, err
}

func (p *Pool) noteErrLocked(err error) {
	if r, ok := ReasonOf(err); ok {
		p.stats.Refused[r]++
	} else if err != nil {
		p.stats.StateErrors++
	}
}

// accountLocked returns the pooled account of a, or a fresh one (not yet in
// p.accounts) read from the state.
func (p *Pool) accountLocked(a tx.Address) (*account, error) {
	if acc, ok := p.accounts[a]; ok {
		return acc, nil
	}
	bal, nonce, err := p.state.Account(a)
	if err != nil {
		return nil, fmt.Errorf("txpool: state of account %s: %w", a.Short(), err)
	}
	return &account{addr: a, balance: bal, nonce: nonce, txs: make(map[uint64]*entry)}, nil
}

// window is how far above the account nonce the pool holds transactions.
func (p *Pool) window() uint64 {
	return uint64(p.cfg.MaxPerAccount) + uint64(p.cfg.MaxFuturePerAccount)
}

// precheckLocked runs the state checks that come before the signature:
// nonce too low / too high, already known.
func (p *Pool) precheckLocked(t *tx.Tx, h tx.Hash) (Status, error) {
	_, st, err := p.precheckAccountLocked(t, h)
	return st, err
}

// precheckAccountLocked is precheckLocked returning the account it checked
// against. An account without pooled transactions is read from the state
// each time, and the state moves under the pool (blocks import while the
// pool's lock is free): the caller must go on with this very account, not
// read it again.
func (p *Pool) precheckAccountLocked(t *tx.Tx, h tx.Hash) (*account, Status, error) {
	a, err := p.accountLocked(t.From)
	if err != nil {
		return nil, Unknown, err
	}
	st, err := p.checkNonceLocked(a, t, h)
	return a, st, err
}

func (p *Pool) checkNonceLocked(a *account, t *tx.Tx, h tx.Hash) (Status, error) {
	if t.Nonce < a.nonce {
		return Unknown, &RefusedError{Reason: ReasonNonceTooLow, ExpectedNonce: a.nonce,
			Detail: fmt.Sprintf("nonce %d, account %s is at %d", t.Nonce, a.addr.Short(), a.nonce)}
	}
	if t.Nonce-a.nonce >= p.window() {
		return Unknown, &RefusedError{Reason: ReasonNonceTooHigh, ExpectedNonce: a.nonce + uint64(a.ready),
			Detail: fmt.Sprintf("nonce %d, the pool holds nonces %d..%d of account %s",
				t.Nonce, a.nonce, a.nonce+p.window()-1, a.addr.Short())}
	}
	if e, ok := p.byHash[h]; ok {
		return e.status, refused(ReasonAlreadyKnown, "transaction "+h.Short()+" is "+e.status.String())
	}
	return Unknown, nil
}

// requiredFee is the lowest fee that may replace old: old*(100+bump)/100,
// and at least old+1. ok is false when it does not fit in a uint64.
func requiredFee(old uint64, bump int) (uint64, bool) {
	hi, lo := bits.Mul64(old, 100+uint64(bump))
	if hi >= 100 {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, 100)
	if q <= old {
		if old == ^uint64(0) {
			return 0, false
		}
		q = old + 1
	}
	return q, true
}

// admitLocked runs every state-dependent check (the signature is already
// verified) and inserts t, evicting if needed.
func (p *Pool) admitLocked(t *tx.Tx, h tx.Hash, size int) (Status, error) {
	a, st, err := p.precheckAccountLocked(t, h)
	if err != nil {
		return st, err
	}
	cost, carry := bits.Add64(t.Amount, t.Fee, 0)
	if carry != 0 {
		return Unknown, refused(ReasonInsufficientBalance, "amount + fee overflows")
	}
	old := a.txs[t.Nonce]
	pooled := a.totalCost()
	if old != nil {
		pooled -= old.cost
	}
	total, carry := bits.Add64(pooled, cost, 0)
	if carry != 0 || total > a.balance {
		return Unknown, refused(ReasonInsufficientBalance, fmt.Sprintf(
			"balance %d, pooled transactions of %s cost %d, this one %d", a.balance, a.addr.Short(), pooled, cost))
	}
	if old != nil {
		need, ok := requiredFee(old.tx.Fee, p.cfg.PriceBumpPercent)
		if !ok || t.Fee < need {
			d := fmt.Sprintf("fee %d replaces fee %d of nonce %d only with at least %d (+%d%%)",
				t.Fee, old.tx.Fee, t.Nonce, need, p.cfg.PriceBumpPercent)
			if !ok {
				d = fmt.Sprintf("fee %d of nonce %d cannot be bumped", old.tx.Fee, t.Nonce)
			}
			return Unknown, refused(ReasonReplacementUnderpriced, d)
		}
	}

	// Where it will sit: a replacement takes the old one's place.
	want := Future
	switch {
	case old != nil:
		want = old.status
	case t.Nonce == a.nonce+uint64(a.ready) && a.ready < p.cfg.MaxPerAccount:
		want = Ready
	}
	if old == nil && want == Future && a.futures() >= p.cfg.MaxFuturePerAccount {
		return Unknown, refused(ReasonPoolFull, fmt.Sprintf("account %s has %d future transactions (max %d)",
			a.addr.Short(), a.futures(), p.cfg.MaxFuturePerAccount))
	}
	dCount, dFuture, dBytes := 1, 0, size
	if want == Future {
		dFuture = 1
	}
	if old != nil {
		dCount, dFuture, dBytes = 0, 0, size-old.size
	}
	victims, err := p.planEvictionLocked(t, want, dCount, dFuture, dBytes)
	if err != nil {
		return Unknown, err
	}

	// Every check passed: apply.
	touched := map[*account]bool{}
	for _, v := range victims {
		va := p.accounts[v.tx.From]
		p.removeLocked(va, v, Event{Kind: Dropped, Reason: ReasonPoolFull,
			Detail: fmt.Sprintf("evicted by %s (fee %d > %d)", h.Short(), t.Fee, v.tx.Fee)})
		p.stats.Evicted++
		touched[va] = true
	}
	for va := range touched {
		p.normalizeLocked(va)
	}
	p.seq++
	e := &entry{tx: t, hash: h, size: size, cost: cost, seq: p.seq, added: p.clock.Now()}
	if old != nil {
		p.removeLocked(a, old, Event{Kind: Replaced, By: h,
			Detail: fmt.Sprintf("fee %d replaced by %d", old.tx.Fee, t.Fee)})
		p.stats.Replaced++
	}
	p.insertLocked(a, e)
	p.normalizeLocked(a)
	if e.status == Unknown {
		// normalize dropped it: the checks above rule it out; never crash
		// the node on a network input if they were ever wrong.
		p.stats.StateErrors++
		return Unknown, fmt.Errorf("txpool: transaction %s did not survive normalization (account %s at nonce %d)", h.Short(), a.addr.Short(), a.nonce)
	}
	return e.status, nil
}

func (p *Pool) insertLocked(a *account, e *entry) {
	if len(a.txs) == 0 {
		p.accounts[a.addr] = a
	}
	a.txs[e.tx.Nonce] = e
	i, _ := slices.BinarySearch(a.nonces, e.tx.Nonce)
	a.nonces = slices.Insert(a.nonces, i, e.tx.Nonce)
	p.byHash[e.hash] = e
	p.bytes += e.size
}

// removeLocked takes e out of the pool and emits ev (if it has a Kind). The
// caller normalizes a afterwards.
func (p *Pool) removeLocked(a *account, e *entry, ev Event) {
	delete(a.txs, e.tx.Nonce)
	i, found := slices.BinarySearch(a.nonces, e.tx.Nonce)
	if found {
		a.nonces = slices.Delete(a.nonces, i, i+1)
		if i < a.ready {
			a.ready = i // the rest of the ready prefix is re-judged by normalize
		}
	}
	delete(p.byHash, e.hash)
	p.bytes -= e.size
	switch e.status {
	case Ready:
		p.ready--
	case Future:
		p.future--
	}
	e.status = Unknown
	if len(a.txs) == 0 {
		delete(p.accounts, a.addr)
	}
	if ev.Kind != "" {
		ev.Hash = e.hash
		p.emitLocked(ev)
	}
}

func (p *Pool) emitLocked(ev Event) { p.events = append(p.events, ev) }

// boundEventsLocked keeps the buffer of undrained events bounded (Add and
// Remove fill it; Update, Expire and TakeEvents drain it).
func (p *Pool) boundEventsLocked() {
	if n := len(p.events); n > p.maxEvents {
		lost := n - p.maxEvents/2
		p.stats.EventsLost += uint64(lost)
		p.events = append([]Event(nil), p.events[lost:]...)
	}
}

// normalizeLocked restores an account's invariants after its state or its
// transactions changed, in this order: drop nonces below the account nonce
// (Invalid, "nonce too low"); walk the rest in nonce order and drop each one
// the balance cannot cover after the earlier ones (Invalid, "insufficient
// balance"); the ready queue is the longest run of consecutive nonces from
// the account nonce, at most MaxPerAccount; future txs beyond
// MaxFuturePerAccount are dropped from the highest nonce (Dropped, "pool
// full"); status changes emit Promoted and Demoted.
func (p *Pool) normalizeLocked(a *account) {
	for len(a.nonces) > 0 && a.nonces[0] < a.nonce {
		p.removeLocked(a, a.entryAt(0), Event{Kind: Invalid, Reason: ReasonNonceTooLow,
			Detail: fmt.Sprintf("account %s is at nonce %d (included elsewhere or usurped)", a.addr.Short(), a.nonce)})
	}
	var cum uint64
	for i := 0; i < len(a.nonces); {
		e := a.entryAt(i)
		if s, carry := bits.Add64(cum, e.cost, 0); carry == 0 && s <= a.balance {
			cum = s
			i++
			continue
		}
		p.removeLocked(a, e, Event{Kind: Invalid, Reason: ReasonInsufficientBalance,
			Detail: fmt.Sprintf("balance %d, earlier transactions cost %d, this one %d", a.balance, cum, e.cost)})
	}
	r := 0
	for r < len(a.nonces) && r < p.cfg.MaxPerAccount && a.nonces[r] == a.nonce+uint64(r) {
		r++
	}
	a.ready = r
	for a.futures() > p.cfg.MaxFuturePerAccount {
		p.removeLocked(a, a.entryAt(len(a.nonces)-1), Event{Kind: Dropped, Reason: ReasonPoolFull,
			Detail: fmt.Sprintf("account %s has more than %d future transactions", a.addr.Short(), p.cfg.MaxFuturePerAccount)})
	}
	a.ready = min(r, len(a.nonces))
	for i, n := range a.nonces {
		e := a.txs[n]
		want := Future
		if i < a.ready {
			want = Ready
		}
		if e.status == want {
			continue
		}
		switch e.status {
		case Ready:
			p.ready--
			p.emitLocked(Event{Hash: e.hash, Kind: Demoted, Detail: fmt.Sprintf("nonce %d waits for nonce %d", n, a.nonce+uint64(a.ready))})
		case Future:
			p.future--
			p.emitLocked(Event{Hash: e.hash, Kind: Promoted})
		}
		if want == Ready {
			p.ready++
		} else {
			p.future++
		}
		e.status = want
	}
}

// planEvictionLocked chooses the transactions to evict so that t fits
// (dCount more transactions, dFuture more future ones, dBytes more bytes).
// Victims belong to other senders and pay a strictly lower fee than t:
// first the lowest-fee future transaction, then — only when t itself will
// be ready — the lowest-fee last-nonce ready transaction of a sender (so no
// sender's queue is cut in the middle). Ties evict the latest arrival. No
// victim is removed unless all the room is found.
func (p *Pool) planEvictionLocked(t *tx.Tx, want Status, dCount, dFuture, dBytes int) ([]*entry, error) {
	needCount := p.ready + p.future + dCount - p.cfg.MaxTxs
	needFuture := p.future + dFuture - p.cfg.MaxFuture
	if p.restoring {
		needFuture = 0
	}
	needBytes := p.bytes + dBytes - p.cfg.MaxBytes
	if needCount <= 0 && needFuture <= 0 && needBytes <= 0 {
		return nil, nil
	}
	var victims []*entry
	chosen := map[*entry]bool{}
	tail := map[*account]int{} // ready txs already chosen from the tail
	worse := func(e, best *entry) bool {
		return best == nil || e.tx.Fee < best.tx.Fee || (e.tx.Fee == best.tx.Fee && e.seq > best.seq)
	}
	for needCount > 0 || needFuture > 0 || needBytes > 0 {
		var v *entry
		for _, a := range p.accounts {
			if a.addr == t.From {
				continue
			}
			for i := a.ready; i < len(a.nonces); i++ {
				e := a.entryAt(i)
				if e.tx.Fee < t.Fee && !chosen[e] && worse(e, v) {
					v = e
				}
			}
		}
		var va *account
		if v == nil && needFuture <= 0 && want == Ready {
			for _, a := range p.accounts {
				k := a.ready - 1 - tail[a]
				if a.addr == t.From || k < 0 {
					continue
				}
				if e := a.entryAt(k); e.tx.Fee < t.Fee && worse(e, v) {
					v, va = e, a
				}
			}
		}
		if v == nil {
			return nil, refused(ReasonPoolFull, fmt.Sprintf(
				"%d/%d transactions, %d/%d future, %d/%d bytes, and nothing cheaper than fee %d to evict",
				p.ready+p.future, p.cfg.MaxTxs, p.future, p.cfg.MaxFuture, p.bytes, p.cfg.MaxBytes, t.Fee))
		}
		if va != nil {
			tail[va]++
		} else {
			needFuture--
		}
		chosen[v] = true
		victims = append(victims, v)
		needCount--
		needBytes -= v.size
	}
	return victims, nil
}

// Get returns a pooled transaction (read-only: do not modify it) and its
// status.
func (p *Pool) Get(h tx.Hash) (*tx.Tx, Status, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.byHash[h]
	if !ok {
		return nil, Unknown, false
	}
	return e.tx, e.status, true
}

// Remove takes h out of the pool (e.g. the proposer found it invalid) and
// emits Invalid or Dropped with reason; the sender's later ready
// transactions are demoted. The events are returned by the next Update,
// Expire or TakeEvents.
func (p *Pool) Remove(h tx.Hash, reason Reason) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.byHash[h]
	if !ok {
		return
	}
	kind := Dropped
	if reason.invalid() {
		kind = Invalid
	}
	a := p.accounts[e.tx.From]
	p.removeLocked(a, e, Event{Kind: kind, Reason: reason, Detail: "removed"})
	p.normalizeLocked(a)
	p.trimFutureLocked() // the demoted may exceed MaxFuture
	p.boundEventsLocked()
}

// TakeEvents returns and clears the events Add, AddTx and Remove produced
// since the last Update, Expire or TakeEvents.
func (p *Pool) TakeEvents() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.takeEventsLocked()
}

func (p *Pool) takeEventsLocked() []Event {
	ev := p.events
	p.events = nil
	return ev
}

// sortedAccountsLocked returns the pooled accounts by address, so that event
// order does not depend on map order.
func (p *Pool) sortedAccountsLocked() []*account {
	out := make([]*account, 0, len(p.accounts))
	for _, a := range p.accounts {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].addr[:], out[j].addr[:]) < 0 })
	return out
}

// Update moves the pool to a new best head whose state is state. included
// are the transactions of the blocks that became canonical, retracted those
// of the blocks that left it (a fork switch). In order: included
// transactions leave the pool silently; every pooled account is re-read from
// state and normalized (nonce too low → Invalid, balance short → Invalid,
// gaps filled → Promoted, gaps opened → Demoted); retracted transactions not
// included again are re-admitted in (sender, nonce) order with the Add rules
// (Restored, or Invalid/Dropped with the refusal reason); future
// transactions beyond MaxFuture are dropped, lowest fee first. It returns
// the events buffered since the last drain followed by its own.
func (p *Pool) Update(state StateReader, included, retracted []*tx.Tx) []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	if state != nil {
		p.state = state
	}
	inBlock := make(map[tx.Hash]bool, len(included))
	for _, t := range included {
		h := t.Hash()
		inBlock[h] = true
		if e, ok := p.byHash[h]; ok {
			p.removeLocked(p.accounts[e.tx.From], e, Event{})
		}
	}
	for _, a := range p.sortedAccountsLocked() {
		if bal, nonce, err := p.state.Account(a.addr); err != nil {
			p.stats.StateErrors++ // keep the last known state
		} else {
			a.balance, a.nonce = bal, nonce
		}
		p.normalizeLocked(a)
	}
	back := make([]*tx.Tx, 0, len(retracted))
	for _, t := range retracted {
		if t != nil {
			back = append(back, t)
		}
	}
	sort.SliceStable(back, func(i, j int) bool {
		if c := bytes.Compare(back[i].From[:], back[j].From[:]); c != 0 {
			return c < 0
		}
		return back[i].Nonce < back[j].Nonce
	})
	p.restoring = true
	defer func() { p.restoring = false }()
	for _, t0 := range back {
		t := *t0
		h := t.Hash()
		if inBlock[h] {
			continue
		}
		if _, ok := p.byHash[h]; ok {
			continue
		}
		st, err := p.restoreLocked(&t, h)
		if err != nil {
			ev := Event{Hash: h, Kind: Dropped, Detail: err.Error()}
			if r, ok := ReasonOf(err); ok {
				ev.Reason = r
				if r.invalid() {
					ev.Kind = Invalid
				}
			} else {
				p.stats.StateErrors++
			}
			p.emitLocked(ev)
			continue
		}
		p.stats.Restored++
		p.emitLocked(Event{Hash: h, Kind: Restored, Status: st})
	}
	p.trimFutureLocked()
	return p.takeEventsLocked()
}

// restoreLocked re-admits a retracted transaction with the Add checks.
func (p *Pool) restoreLocked(t *tx.Tx, h tx.Hash) (Status, error) {
	if t.From.IsZero() || t.To.IsZero() {
		return Unknown, refused(ReasonMalformed, "all-zero address")
	}
	if t.Genesis != p.cfg.Genesis {
		return Unknown, refused(ReasonWrongChain, "genesis "+t.Genesis.Short())
	}
	if t.Fee < p.cfg.MinFee {
		return Unknown, refused(ReasonFeeTooLow, fmt.Sprintf("fee %d, minimum %d", t.Fee, p.cfg.MinFee))
	}
	if _, err := p.precheckLocked(t, h); err != nil {
		return Unknown, err
	}
	if err := p.sigs.Verify(t, h); err != nil {
		return Unknown, refused(ReasonBadSignature, err.Error())
	}
	return p.admitLocked(t, h, len(t.Encode()))
}

// trimFutureLocked drops the lowest-fee future transactions (latest arrival
// first on ties) while there are more than MaxFuture.
func (p *Pool) trimFutureLocked() {
	if p.future <= p.cfg.MaxFuture {
		return
	}
	var fut []*entry
	for _, a := range p.accounts {
		for i := a.ready; i < len(a.nonces); i++ {
			fut = append(fut, a.entryAt(i))
		}
	}
	sort.Slice(fut, func(i, j int) bool {
		if fut[i].tx.Fee != fut[j].tx.Fee {
			return fut[i].tx.Fee < fut[j].tx.Fee
		}
		return fut[i].seq > fut[j].seq
	})
	for _, e := range fut {
		if p.future <= p.cfg.MaxFuture {
			break
		}
		if e.status != Future { // promoted meanwhile? (cannot happen: removing a future tx promotes nothing)
			continue
		}
		a := p.accounts[e.tx.From]
		p.removeLocked(a, e, Event{Kind: Dropped, Reason: ReasonPoolFull,
			Detail: fmt.Sprintf("more than %d future transactions", p.cfg.MaxFuture)})
		p.stats.Evicted++
		p.normalizeLocked(a)
	}
}

// Expire removes the transactions admitted at least Lifetime ago (by the
// clock), oldest first, as Dropped "expired"; the senders' later ready
// transactions are demoted. It returns the events buffered since the last
// drain followed by its own. With Lifetime 0 nothing expires.
func (p *Pool) Expire() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.Lifetime > 0 {
		now := p.clock.Now()
		var old []*entry
		for _, e := range p.byHash {
			if now.Sub(e.added) >= p.cfg.Lifetime {
				old = append(old, e)
			}
		}
		sort.Slice(old, func(i, j int) bool { return old[i].seq < old[j].seq })
		touched := map[*account]bool{}
		for _, e := range old {
			if _, ok := p.byHash[e.hash]; !ok {
				continue
			}
			a := p.accounts[e.tx.From]
			p.removeLocked(a, e, Event{Kind: Dropped, Reason: ReasonExpired,
				Detail: fmt.Sprintf("in the pool since %s, lifetime %v", e.added.UTC().Format(time.RFC3339), p.cfg.Lifetime)})
			p.stats.Expired++
			touched[a] = true
		}
		accs := make([]*account, 0, len(touched))
		for a := range touched {
			accs = append(accs, a)
		}
		sort.Slice(accs, func(i, j int) bool { return bytes.Compare(accs[i].addr[:], accs[j].addr[:]) < 0 })
		for _, a := range accs {
			if len(a.txs) > 0 {
				p.normalizeLocked(a)
			}
		}
		p.trimFutureLocked()
	}
	return p.takeEventsLocked()
}

// Stats returns a snapshot of the counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Ready, s.Future, s.Bytes, s.Senders = p.ready, p.future, p.bytes, len(p.accounts)
	s.Refused = make(map[Reason]uint64, len(p.stats.Refused))
	for r, n := range p.stats.Refused {
		s.Refused[r] = n
	}
	return s
}

// Len returns the number of pooled transactions.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byHash)
}

// NextNonce returns the nonce a's next transaction should use given the
// pool: the account nonce plus its ready transactions (a contiguous run
// from the account nonce). ok is false when the pool holds nothing of a.
func (p *Pool) NextNonce(a tx.Address) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	acc, ok := p.accounts[a]
	if !ok {
		return 0, false
	}
	return acc.nonce + uint64(acc.ready), true
}
