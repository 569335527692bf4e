package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/node"
)

// perfEnabled gates the measurement campaigns (scripts/perf.sh sets it).
func perfEnabled(t *testing.T) {
	if os.Getenv("FLARE_PERF") == "" {
		t.Skip("measurement campaign: set FLARE_PERF=1 (scripts/perf.sh)")
	}
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

type nopBroadcaster struct{}

func (nopBroadcaster) BroadcastVote(context.Context, checkpoint.SignedVote) error         { return nil }
func (nopBroadcaster) BroadcastCertificate(context.Context, checkpoint.Certificate) error { return nil }

// chainObserver applies justification and finality to the chain, as the
// node does.
type chainObserver struct {
	ctx   context.Context
	chain *asf.Chain
}

func (o chainObserver) Justified(cp checkpoint.Checkpoint) { _, _ = o.chain.SetJustified(o.ctx, cp) }
func (o chainObserver) Finalized(cp checkpoint.Checkpoint) { _ = o.chain.SetFinalized(o.ctx, cp) }

// buildDevHistory writes `checkpoints` checkpoints of dev-chain history
// (blocks, votes, certificates, finality) into base, the way the dev node
// would have over checkpoints*interval slots, using a fake clock.
func buildDevHistory(t *testing.T, base string, checkpoints uint64) {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Dev()
	cfg.BasePath = base
	cfg.EnableASF = true
	require.NoError(t, cfg.Validate())
	spec := cfg.Spec
	key, err := chainspec.DevKey("alice")
	require.NoError(t, err)
	clock := &fakeClock{now: spec.GenesisTime()}
	chain, err := asf.OpenChain(cfg.ChainDBPath(), spec, asf.ChainOptions{Clock: clock, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer chain.Close()
	genesis := node.GenesisHash(spec)
	db, err := checkpointdb.Open(cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesis})
	require.NoError(t, err)
	defer db.Close()
	set := spec.AuthoritySet()
	set.Genesis = genesis
	g, err := finality.New(finality.Config{Authorities: set, Persistence: finality.CheckpointPersistenceConfig{
		Enabled: true, RetentionCheckpoints: cfg.Persistence.RetentionCheckpoints, FlushInterval: time.Hour, PruneInterval: time.Hour}},
		finality.Deps{Store: db, Signer: finality.NewSafeSigner(db, finality.NewKeySigner(key), 0, genesis),
			Clock: clock, Broadcaster: nopBroadcaster{}, Ancestry: chain, Observer: chainObserver{ctx, chain}, Logger: zap.NewNop()})
	require.NoError(t, err)
	require.NoError(t, g.RestoreFromStorage(ctx))
	producer := asf.NewProducer(chain, spec, key, 0, clock, zap.NewNop())
	for slot := uint64(1); g.LatestFinalized().Number < checkpoints; slot++ {
		clock.now = asf.SlotStart(spec, slot)
		_, res, err := producer.Produce(ctx, slot)
		require.NoError(t, err)
		for _, cp := range res.Checkpoints {
			require.NoError(t, g.OnCheckpointBlock(ctx, cp))
		}
	}
	require.NoError(t, db.Flush(ctx))
}

var sinceStartRe = regexp.MustCompile(`^(\d+(\.\d+)?)(ns|µs|us|ms|s)$`)

// sinceStart reads a duration field ("since_start" or "restore") of a log line.
func durationField(t *testing.T, l logLine, key string) time.Duration {
	t.Helper()
	s, ok := l.Fields[key].(string)
	require.True(t, ok, "no %s field in %s", key, l.Raw)
	d, err := time.ParseDuration(strings.Replace(s, "µs", "us", 1))
	require.NoError(t, err, s)
	return d
}

func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, err := strconv.Atoi(f[1])
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestPerfDevRestart measures a dev validator restart over ~1000 checkpoints
// of history: time from process start to restored checkpoint state, to the
// network being up, to the first new block and to the first new finalized
// checkpoint, plus RSS. It prints a table (scripts/perf.sh).
func TestPerfDevRestart(t *testing.T) {
	perfEnabled(t)
	const history = 1000
	base := t.TempDir()
	start := time.Now()
	buildDevHistory(t, base, history)
	t.Logf("built %d checkpoints of dev history in %v", history, time.Since(start))
	size, err := dirSize(filepath.Join(base, "chains"))
	require.NoError(t, err)

	var restore, restored, network, block, final []time.Duration
	var rss []int
	for run := 0; run < 5; run++ {
		// Restart at a random phase of the slot, as an operator would.
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
		p := startNode(t, fmt.Sprintf("dev-restart#%d", run), "--dev", "--enable-asf", "--base-path", base, "--port", "0")
		l, _ := p.waitLog(regexp.MustCompile(`^Checkpoint state restore timing`), 0, 30*time.Second)
		restore = append(restore, durationField(t, l, "restore"))
		restored = append(restored, durationField(t, l, "since_start"))
		l, _ = p.waitLog(regexp.MustCompile(`^Network started`), 0, 30*time.Second)
		network = append(network, durationField(t, l, "since_start"))
		l, _ = p.waitLog(regexp.MustCompile(`^First new block since start`), 0, 30*time.Second)
		block = append(block, durationField(t, l, "since_start"))
		l, _ = p.waitLog(regexp.MustCompile(`^First new finalized checkpoint since start`), 0, 60*time.Second)
		final = append(final, durationField(t, l, "since_start"))
		rss = append(rss, rssKiB(t, p.cmd.Process.Pid))
		require.Equal(t, 0, p.stop(syscall.SIGINT, 30*time.Second))
	}
	slices.Sort(rss)
	fmt.Printf("\nDev validator restart with %d checkpoints (%d blocks) of history, %d runs, data %.1f MiB\n", history, history*4, len(restore), float64(size)/(1<<20))
	fmt.Printf("%-44s %10s %10s %10s\n", "figure", "min", "median", "max")
	row := func(name string, ds []time.Duration) {
		fmt.Printf("%-44s %10v %10v %10v\n", name, slices.Min(ds).Round(time.Microsecond), median(ds).Round(time.Microsecond), slices.Max(ds).Round(time.Microsecond))
	}
	row("checkpoint state restore (gadget)", restore)
	row("process start -> restored checkpoint state", restored)
	row("process start -> network up", network)
	row("process start -> first new block", block)
	row("process start -> first new finalized checkpoint", final)
	fmt.Printf("%-44s %9dM %9dM %9dM\n", "RSS at first new finality (MiB)", rss[0]/1024, rss[len(rss)/2]/1024, rss[len(rss)-1]/1024)
}

func dirSize(root string) (int64, error) {
	var n int64
	err := filepath.Walk(root, func(_ string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n, err
}
