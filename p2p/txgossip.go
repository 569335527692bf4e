package p2p

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/flarechain/flare-node/tx"
)

// Transaction gossip tunables (docs/wire.md, "Transactions topic"). Votes,
// certificates and blocks keep priority over transactions: the transactions
// topic has its own, smaller validation concurrency, its handler calls run
// in txHandlerSlots slots, and every peer has a token bucket.
const (
	// txValidatorConcurrency bounds concurrent validations on the
	// transactions topic (the other topics have validatorConcurrency each;
	// 3*256 + 128 <= validateThrottle, so transactions can never take the
	// validation slots of the other topics). Messages beyond it are dropped
	// by gossipsub as throttled (no penalty).
	txValidatorConcurrency = 128
	// txHandlerSlots bounds concurrent HandleTransaction calls (signature
	// verification and pool admission); the other validations of the
	// topic wait for a slot until txValidatorTimeout.
	txHandlerSlots = 4
	// txValidatorTimeout bounds one transaction validation, waiting for a
	// handler slot included; a message still waiting then is ignored
	// ("busy").
	txValidatorTimeout = time.Second

	// DefaultTxRate and DefaultTxBurst are the per-peer token bucket of the
	// transactions topic: a peer may deliver DefaultTxRate transaction
	// messages per second on average and DefaultTxBurst at once. A message
	// without a token is ignored and counted ("rate_limited").
	DefaultTxRate  = 2000
	DefaultTxBurst = 4000
	// DefaultTxExcessReject is the sustained-excess rule: once a peer has
	// sent this many messages without a token inside one excess window
	// (txExcessWindow), it earns one strike (once per window). Strikes are
	// the application-specific score component P5: -10 * strikes^2, the
	// strikes decaying like invalid deliveries (halved in 90 s). A peer that
	// keeps sending more than DefaultTxRate + DefaultTxExcessReject per
	// second thus earns one strike per second: below the gossip threshold
	// after 2 s, graylisted after 3 s (docs/wire.md, "Validation"). The
	// message itself is only ignored: rejecting it would also penalize the
	// honest peers that relay the same bytes (gossipsub counts a copy of a
	// rejected message as an invalid delivery of whoever sends it).
	DefaultTxExcessReject = 1000
	txExcessWindow        = time.Second
)

// Score parameters of the transactions topic: transactions are cheap to
// produce, so relaying them earns at most +1 (P2, no P1), against at most
// +11 on each of the other topics; invalid transactions cost what any
// invalid message costs (P4 as on the other topics).
const (
	txFirstDeliveriesWeight = 0.05
	txFirstDeliveriesCap    = 20
)

func txTopicScoreParams() *pubsub.TopicScoreParams {
	p := topicScoreParams()
	p.TimeInMeshWeight = 0
	p.FirstMessageDeliveriesWeight = txFirstDeliveriesWeight
	p.FirstMessageDeliveriesCap = txFirstDeliveriesCap
	return p
}

// txLimiter holds the per-peer token buckets of the transactions topic.
type txLimiter struct {
	rate         rate.Limit
	burst        int
	excessReject int
	// maxIdle peers are kept; beyond it, buckets idle long enough to be full
	// again are dropped (a fresh bucket is identical).
	maxIdle int

	mu    sync.Mutex
	peers map[peer.ID]*peerBucket
}

type peerBucket struct {
	lim *rate.Limiter
	// excess window: start, tokenless messages in it, whether it gave a
	// strike.
	windowStart time.Time
	excess      int
	struck      bool
	lastSeen    time.Time
	// strikes as of strikesAt (decaying).
	strikes   float64
	strikesAt time.Time
}

// strikeWeight is the P5 weight of strikes: -10 * strikes^2, as an invalid
// delivery (invalidMessageWeight).
const strikeWeight = invalidMessageWeight

// strikeDecay is the per-second decay factor of strikes (that of P4).
var strikeDecay = scoreDecay(10 * time.Minute)

// strikesAtLocked returns b's strikes decayed to now.
func (b *peerBucket) strikesAtLocked(now time.Time) float64 {
	if b.strikes == 0 {
		return 0
	}
	dt := now.Sub(b.strikesAt).Seconds()
	if dt <= 0 {
		return b.strikes
	}
	s := b.strikes * math.Pow(strikeDecay, dt)
	if s < scoreDecayToZero {
		return 0
	}
	return s
}

func newTxLimiter(r float64, burst, excessReject, maxIdle int) *txLimiter {
	return &txLimiter{rate: rate.Limit(r), burst: burst, excessReject: excessReject, maxIdle: maxIdle,
		peers: make(map[peer.ID]*peerBucket)}
}

// reconfigure replaces the limits and forgets every bucket (tests change
// the limits of a running network; the pubsub score function reads the
// limiter concurrently, so the pointer itself never changes).
func (l *txLimiter) reconfigure(r float64, burst, excessReject, maxIdle int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate, l.burst, l.excessReject, l.maxIdle = rate.Limit(r), burst, excessReject, maxIdle
	l.peers = make(map[peer.ID]*peerBucket)
}

// limitVerdict is the limiter's decision on one message.
type limitVerdict int

const (
	limitPass limitVerdict = iota
	limitIgnore
	// limitStrike: ignored, and the sender earned a strike.
	limitStrike
)

// allow takes a token from p's bucket at now.
func (l *txLimiter) allow(p peer.ID, now time.Time) limitVerdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.peers[p]
	if !ok {
		if len(l.peers) >= l.maxIdle {
			l.pruneLocked(now)
		}
		b = &peerBucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.peers[p] = b
	}
	b.lastSeen = now
	if b.lim.AllowN(now, 1) {
		return limitPass
	}
	if now.Sub(b.windowStart) >= txExcessWindow {
		b.windowStart, b.excess, b.struck = now, 0, false
	}
	b.excess++
	if b.excess > l.excessReject && !b.struck {
		b.struck = true
		b.strikes = b.strikesAtLocked(now) + 1
		b.strikesAt = now
		return limitStrike
	}
	return limitIgnore
}

// score is p's application-specific score (P5): strikeWeight * strikes^2.
func (l *txLimiter) score(p peer.ID, now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.peers[p]
	if !ok {
		return 0
	}
	s := b.strikesAtLocked(now)
	return strikeWeight * s * s
}

// pruneLocked drops the buckets that have been idle long enough to refill,
// whose excess window is over and whose strikes decayed away.
func (l *txLimiter) pruneLocked(now time.Time) {
	full := time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + txExcessWindow
	for p, b := range l.peers {
		if now.Sub(b.lastSeen) > full && b.strikesAtLocked(now) == 0 {
			delete(l.peers, p)
		}
	}
}

// size returns the number of tracked peers.
func (l *txLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.peers)
}

// handleTx runs the transaction topic's last steps after the structural
// checks: a handler slot, then the handler.
func (n *Network) handleTx(ctx context.Context, from peer.ID, t *tx.Tx) (pubsub.ValidationResult, rejectReason) {
	select {
	case n.txSlots <- struct{}{}:
	case <-ctx.Done():
		return pubsub.ValidationIgnore, reasonBusy
	}
	defer func() { <-n.txSlots }()
	switch n.gossip.HandleTransaction(ctx, from, t) {
	case Accept:
		return pubsub.ValidationAccept, reasonNone
	case Reject:
		return pubsub.ValidationReject, reasonNone
	default:
		return pubsub.ValidationIgnore, reasonNone
	}
}

// PublishTransaction gossips a transaction (its canonical encoding in a
// version 1 envelope). The node publishes the transactions it admitted from
// its API; those admitted from gossip are relayed by gossipsub.
func (n *Network) PublishTransaction(ctx context.Context, t *tx.Tx) error {
	if t == nil {
		return fmt.Errorf("publish txs: nil transaction")
	}
	return n.publishData(ctx, kindTxs, transactionEnvelope(t.Encode()))
}
