package node

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

var (
	descPoolTxs      = desc("txpool_transactions", "Transactions in the pool, by queue: ready (executable now) or future (waiting for a nonce gap).", "queue")
	descPoolBytes    = desc("txpool_bytes", "Encoded bytes of the pooled transactions.")
	descPoolSenders  = desc("txpool_senders", "Accounts with at least one pooled transaction.")
	descPoolAdmitted = desc("txpool_admitted_total", "Transactions the pool admitted (API and gossip, replacements included).")
	descPoolRefused  = desc("txpool_refused_total", "Transactions the pool refused, by reason (the refusal vocabulary of POST /tx).", "reason")
	descPoolRemoved  = desc("txpool_removed_total", "Pooled transactions removed other than by inclusion, by cause: replaced, evicted, expired.", "cause")
	poolMetrics      = []*prometheus.Desc{descPoolTxs, descPoolBytes, descPoolSenders, descPoolAdmitted, descPoolRefused, descPoolRemoved}
)

// txBuckets: transactions per block (0 to 10,000).
var txBuckets = []float64{0, 1, 10, 100, 500, 1000, 2500, 5000, 10000}

// finalityBuckets: submit to finalized (50 ms to 2 min).
var finalityBuckets = []float64{0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 120}

// collectPool adds the pool's gauges and counters (every reason, also at 0,
// so that the families always exist).
func collectPool(ch chan<- prometheus.Metric, p *txpool.Pool) {
	st := p.Stats()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	c := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	g(descPoolTxs, float64(st.Ready), "ready")
	g(descPoolTxs, float64(st.Future), "future")
	g(descPoolBytes, float64(st.Bytes))
	g(descPoolSenders, float64(st.Senders))
	c(descPoolAdmitted, st.Admitted)
	for _, r := range txpool.Reasons() {
		c(descPoolRefused, st.Refused[r], string(r))
	}
	c(descPoolRemoved, st.Replaced, "replaced")
	c(descPoolRemoved, st.Evicted, "evicted")
	c(descPoolRemoved, st.Expired, "expired")
}

// maxTracked bounds the submit times kept for the latency histogram.
const maxTracked = 200_000

// txLatency measures submit -> finalized for transactions submitted to this
// node's API: the submit time is noted when the pool admits one, and
// observed when a finalized block holds it.
type txLatency struct {
	mu        sync.Mutex
	submitted map[tx.Hash]time.Time
	hist      prometheus.Histogram
	// finalized receives finality advances (from the engine's callback,
	// which must not block) for the pool task to walk.
	finalized chan checkpoint.Checkpoint
}

func newTxLatency() *txLatency {
	return &txLatency{
		submitted: make(map[tx.Hash]time.Time),
		hist: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flare", Name: "tx_submit_to_finalized_seconds",
			Help: "Time from POST /tx admitting a transaction to this node seeing it in a finalized block.", Buckets: finalityBuckets}),
		finalized: make(chan checkpoint.Checkpoint, 64),
	}
}

func (l *txLatency) noteSubmitted(h tx.Hash, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.submitted) >= maxTracked {
		return // measured again once the backlog finalizes
	}
	if _, ok := l.submitted[h]; !ok {
		l.submitted[h] = at
	}
}

// noteFinalized observes every tracked transaction of body.
func (l *txLatency) noteFinalized(body [][]byte, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.submitted) == 0 {
		return
	}
	for _, raw := range body {
		x, err := tx.Decode(raw)
		if err != nil {
			continue
		}
		h := x.Hash()
		if t, ok := l.submitted[h]; ok {
			l.hist.Observe(at.Sub(t).Seconds())
			delete(l.submitted, h)
		}
	}
}

// apiPool is the pool as the API uses it: admissions are timed (the
// latency histogram) and published on the transactions topic. A
// resubmission of a transaction the pool holds as ready is published again
// (gossipsub drops it if it was seen in the last two minutes), so a
// transaction first submitted while the node had no peers still gets out.
type apiPool struct{ n *Node }

func (p apiPool) Add(raw []byte) (tx.Hash, txpool.Status, error) {
	h, st, err := p.n.pool.Add(raw)
	if err == nil {
		p.n.metrics.txLatency.noteSubmitted(h, time.Now())
	}
	var re *txpool.RefusedError
	publish := err == nil || (errors.As(err, &re) && re.Reason == txpool.ReasonAlreadyKnown && st == txpool.Ready)
	if publish && p.n.netA != nil {
		if t, _, ok := p.n.pool.Get(h); ok {
			p.n.netA.PublishTransaction(t)
		}
	}
	return h, st, err
}

func (p apiPool) Get(h tx.Hash) (*tx.Tx, txpool.Status, bool) { return p.n.pool.Get(h) }

func (p apiPool) NextNonce(a tx.Address) (uint64, bool) { return p.n.pool.NextNonce(a) }
