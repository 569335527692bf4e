package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/internal/buildinfo"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/p2p"
	"github.com/flarechain/flare-node/txpool"
)

// Histogram buckets, in seconds.
var (
	// ioBuckets: a Pebble write, synced or not (100 µs to 1 s).
	ioBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
	// roundBuckets: a round of votes over the network (5 ms to 2 min).
	roundBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
)

// metrics are the node's Prometheus metrics on a private registry
// (docs/metrics.md lists every one). The histograms and prune counters are
// fed by the engine's and gadget's hooks (engine.Metrics); everything else
// is read at scrape time through cheap accessors by nodeCollector.
type metrics struct {
	reg *prometheus.Registry

	blockImport   prometheus.Histogram
	certPersist   prometheus.Histogram
	voteJustified prometheus.Histogram
	pruneRuns     prometheus.Counter
	pruned        prometheus.Counter
	lastPrune     prometheus.Gauge
	// blockTxs counts the transactions of every block that became
	// canonical; txLatency times submit -> finalized.
	blockTxs  prometheus.Histogram
	txLatency *txLatency
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.blockTxs = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flare", Name: "block_transactions",
		Help: "Transactions per block that became part of the best chain.", Buckets: txBuckets})
	m.txLatency = newTxLatency()
	m.blockImport = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flare", Name: "block_import_seconds",
		Help: "Time to import a new block received by gossip or sync into the chain database.", Buckets: ioBuckets})
	m.certPersist = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flare", Name: "checkpointdb_certificate_persist_seconds",
		Help: "Time of the synced write of a certificate with the justified/finalized pointers it raises.", Buckets: ioBuckets})
	m.voteJustified = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flare", Name: "finality_vote_to_justified_seconds",
		Help: "Time from this validator's vote to the justification of its target checkpoint.", Buckets: roundBuckets})
	m.pruneRuns = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flare", Name: "checkpointdb_prune_runs_total",
		Help: "Periodic prunes of the checkpoint database."})
	m.pruned = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flare", Name: "checkpointdb_pruned_checkpoints_total",
		Help: "Checkpoints removed from the checkpoint database by pruning."})
	m.lastPrune = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flare", Name: "checkpointdb_last_prune_timestamp_seconds",
		Help: "Unix time of the last periodic prune (0: none yet in this process)."})
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flare", Name: "build_info",
		Help:        "Build of the running node (value 1).",
		ConstLabels: prometheus.Labels{"version": buildinfo.Version(), "commit": buildinfo.Commit(), "goversion": buildinfo.GoVersion()}})
	build.Set(1)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.blockImport, m.certPersist, m.voteJustified, m.pruneRuns, m.pruned, m.lastPrune, m.blockTxs, m.txLatency.hist)
	return m
}

// BlockImported implements engine.Metrics.
func (m *metrics) BlockImported(d time.Duration) { m.blockImport.Observe(d.Seconds()) }

// CertificatePersisted implements finality.Timings.
func (m *metrics) CertificatePersisted(d time.Duration) { m.certPersist.Observe(d.Seconds()) }

// OwnVoteJustified implements finality.Timings.
func (m *metrics) OwnVoteJustified(d time.Duration) { m.voteJustified.Observe(d.Seconds()) }

// Pruned implements finality.Timings.
func (m *metrics) Pruned(n int) {
	m.pruneRuns.Inc()
	m.pruned.Add(float64(n))
	m.lastPrune.SetToCurrentTime()
}

// nodeCollector reads the node's state once per scrape: engine counters,
// gadget counters and pointers, chain, databases, peers, readiness.
// It holds the parts themselves, not the Node, whose fields are cleared
// when it closes.
type nodeCollector struct {
	engine   *engine.Engine
	chain    *asf.Chain
	gadget   *finality.CheckpointFinality // nil without ASF
	cpdb     *checkpointdb.CheckpointDB   // nil without persistence
	net      *p2p.Network
	interval uint64
	ready    func() bool
	pool     *txpool.Pool // nil: no pool
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("flare_"+name, help, labels, nil)
}

var (
	descBestBlock      = desc("chain_best_block", "Number of the best block.")
	descFinalizedBlock = desc("chain_finalized_block", "Number of the chain's latest finalized block.")
	descAuthored       = desc("blocks_authored_total", "Blocks this validator authored.")
	descImports        = desc("block_imports_total", "Blocks received by gossip or sync, by outcome: imported, ignored (unknown parent, future, off the finalized chain, tip limit), rejected (invalid), equivocation (a second block of a proposer for a slot).", "result")
	descSyncRounds     = desc("sync_rounds_total", "Catch-up rounds started with a peer.")
	descSyncBlocks     = desc("sync_blocks_total", "Blocks imported by catch-up.")
	descSyncCerts      = desc("sync_certificates_total", "Certificates received by catch-up.")
	descSyncProofs     = desc("sync_finality_proofs_applied_total", "Finality proofs received by catch-up and applied.")
	descSyncFailed     = desc("sync_requests_failed_total", "Sync requests to peers that failed or timed out.")
	descSyncing        = desc("syncing", "1 while a catch-up with a peer makes progress.")
	descPeers          = desc("p2p_peers", "Connected peers by the direction of their oldest connection.", "direction")
	descDisk           = desc("db_disk_usage_bytes", "Disk space used by a database (Pebble's estimate of its files).", "db")
	descReady          = desc("ready", "1 when /readyz answers 200.")
	descSelfConflicts  = desc("p2p_self_id_conflicts", "Addresses at which another node runs with this node's key (peer id).")
	descGossip         = desc("p2p_gossip_messages_total", "Gossip messages validated, by topic, verdict and reason (rate_limited and strike: the transactions topic's per-peer limit).", "topic", "verdict", "reason")

	descJustified   = desc("finality_justified_checkpoint", "Latest justified checkpoint number.")
	descFinalized   = desc("finality_finalized_checkpoint", "Latest finalized checkpoint number.")
	descSetID       = desc("finality_authority_set_id", "Id of the authority set in force.")
	descLastFinal   = desc("finality_last_finalized_timestamp_seconds", "Unix time finality last advanced in this process (0: not yet).")
	descHalted      = desc("finality_halted", "1 when voting stopped on a safety alarm.")
	descSignerInit  = desc("finality_signer_initialising", "1 while a fresh signer record is being initialised (no vote yet).")
	descMessages    = desc("finality_messages_total", "Votes and certificates received from the network, by verdict.", "kind", "verdict")
	descFormed      = desc("finality_certificates_formed_total", "Certificates this node formed from votes.")
	descEvidence    = desc("finality_evidence_total", "Evidence of validator misbehaviour or conflicting finality stored.")
	descOwnVotes    = desc("finality_own_votes_total", "Votes signed by this validator.")
	descOldestKept  = desc("checkpointdb_oldest_retained_checkpoint", "Lowest checkpoint number whose votes and certificate the checkpoint database keeps.")
	allNodeMetrics  = []*prometheus.Desc{descBestBlock, descFinalizedBlock, descAuthored, descImports, descSyncRounds, descSyncBlocks, descSyncCerts, descSyncProofs, descSyncFailed, descSyncing, descPeers, descSelfConflicts, descGossip, descDisk, descReady}
	finalityMetrics = []*prometheus.Desc{descJustified, descFinalized, descSetID, descLastFinal, descHalted, descSignerInit, descMessages, descFormed, descEvidence, descOwnVotes}
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allNodeMetrics {
		ch <- d
	}
	if c.gadget != nil {
		for _, d := range finalityMetrics {
			ch <- d
		}
	}
	if c.cpdb != nil {
		ch <- descOldestKept
	}
	if c.pool != nil {
		for _, d := range poolMetrics {
			ch <- d
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.pool != nil {
		collectPool(ch, c.pool)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := c.engine.Stats()
	gauge(descBestBlock, float64(c.chain.Best().Number))
	gauge(descFinalizedBlock, float64(c.chain.Finalized().Number*c.interval))
	counter(descAuthored, st.BlocksAuthored)
	counter(descImports, st.BlocksImported, "imported")
	counter(descImports, st.BlocksIgnored, "ignored")
	counter(descImports, st.BlocksRejected, "rejected")
	counter(descImports, st.BlocksEquivocating, "equivocation")
	counter(descSyncRounds, st.SyncRounds)
	counter(descSyncBlocks, st.SyncedBlocks)
	counter(descSyncCerts, st.SyncedCertificates)
	counter(descSyncProofs, st.ProofsApplied)
	counter(descSyncFailed, st.RequestsFailed)
	gauge(descSyncing, b2f(c.engine.Syncing()))
	in, out := c.net.PeerCounts()
	gauge(descPeers, float64(in), p2p.DirectionInbound)
	gauge(descPeers, float64(out), p2p.DirectionOutbound)
	gauge(descSelfConflicts, float64(len(c.net.SelfIDConflicts())))
	for _, g := range c.net.GossipCounts() {
		counter(descGossip, g.Count, g.Topic, g.Verdict, g.Reason)
	}
	gauge(descDisk, float64(c.chain.DiskUsageBytes()), "chain")
	if c.cpdb != nil {
		gauge(descDisk, float64(c.cpdb.Stats().DiskUsageBytes), "checkpoints")
		gauge(descOldestKept, float64(c.cpdb.OldestRetained()))
	}
	gauge(descReady, b2f(c.ready()))
	g := c.gadget
	if g == nil {
		return
	}
	gauge(descJustified, float64(g.LatestJustified().Number))
	gauge(descFinalized, float64(g.LatestFinalized().Number))
	gauge(descSetID, float64(g.Authorities().Set.SetID))
	last := 0.0
	if at := c.engine.LastFinalizedAt(); !at.IsZero() {
		last = float64(at.UnixNano()) / 1e9
	}
	gauge(descLastFinal, last)
	gauge(descHalted, b2f(g.Halted()))
	gauge(descSignerInit, b2f(c.engine.SignerPending()))
	fm := g.Metrics()
	for _, m := range []struct {
		kind, verdict string
		v             uint64
	}{
		{"vote", finality.VerdictAccept.String(), fm.VotesAccepted},
		{"vote", finality.VerdictIgnore.String(), fm.VotesIgnored},
		{"vote", finality.VerdictReject.String(), fm.VotesRejected},
		{"certificate", finality.VerdictAccept.String(), fm.CertificatesAccepted},
		{"certificate", finality.VerdictIgnore.String(), fm.CertificatesIgnored},
		{"certificate", finality.VerdictReject.String(), fm.CertificatesRejected},
	} {
		counter(descMessages, m.v, m.kind, m.verdict)
	}
	counter(descFormed, fm.CertificatesFormed)
	counter(descEvidence, fm.Evidence)
	counter(descOwnVotes, fm.OwnVotes)
}
