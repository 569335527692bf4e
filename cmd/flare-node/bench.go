package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/tx"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:   "bench",
		Usage:  "load tools",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:  "tx-load",
				Usage: "submit pre-signed transfers open-loop at fixed rates and measure submit -> finalized",
				Description: "Signs transfers between the well-known bench keys (testnet --bench-accounts N) before each\n" +
					"rate step, submits them at the rate round-robin over --rpc, follows the finalized blocks of the\n" +
					"first RPC and prints one tx-load line per rate, then the saturation rate.",
				Flags: []cli.Flag{
					chainFlag(),
					&cli.StringFlag{Name: "rpc", Usage: "comma-separated node API `URLS` (round-robin)", Required: true},
					&cli.IntFlag{Name: "accounts", Value: 2000, Usage: "bench keys 0..`N`-1 send (they must be endowed)"},
					&cli.StringFlag{Name: "rates", Value: "1000", Usage: "comma-separated submit `RATES` in transfers/s"},
					&cli.DurationFlag{Name: "duration", Value: 30 * time.Second, Usage: "submit time per rate"},
					&cli.DurationFlag{Name: "drain", Value: 10 * time.Second, Usage: "how long to wait for the last transfers of a rate to finalize"},
					&cli.StringFlag{Name: "pids", Usage: "comma-separated node `PIDS` whose CPU use is reported"},
					&cli.StringFlag{Name: "label", Usage: "`TEXT` printed after 'tx-load:' on every line (e.g. validators=4 slot=250ms interval=1)"},
					&cli.IntFlag{Name: "workers", Value: 64, Usage: "concurrent HTTP submitters"},
				},
				Action: benchTxLoad,
			},
		},
	}
}

type loadTx struct {
	hash tx.Hash
	raw  []byte
}

// loadRun is one rate step.
type loadRun struct {
	rate      int
	submitted atomic.Int64
	refused   atomic.Int64
	mu        sync.Mutex
	// reasons counts refusals by reason (HTTP errors by their text).
	reasons   map[string]int
	sentAt    map[tx.Hash]time.Time
	latencies []time.Duration
	// firstAt and finalAt: when the first and the last of the transfers
	// were seen finalized.
	firstAt, finalAt time.Time
}

func benchTxLoad(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	spec, err := chainspec.Resolve(c.String("chain"))
	if err != nil {
		return usageError(err)
	}
	rpcs := strings.Split(c.String("rpc"), ",")
	var rates []int
	for _, s := range strings.Split(c.String("rates"), ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r < 1 {
			return usageError(fmt.Errorf("--rates: %q is not a positive integer", s))
		}
		rates = append(rates, r)
	}
	nacc := c.Int("accounts")
	if nacc < 2 {
		return usageError(errors.New("--accounts must be at least 2"))
	}
	var pids []int
	if s := c.String("pids"); s != "" {
		for _, p := range strings.Split(s, ",") {
			pid, err := strconv.Atoi(p)
			if err != nil {
				return usageError(fmt.Errorf("--pids: %q is not a pid", p))
			}
			pids = append(pids, pid)
		}
	}
	genesis := node.GenesisHash(spec)
	keys := make([]ed25519.PrivateKey, nacc)
	addrs := make([]tx.Address, nacc)
	for i := range keys {
		keys[i] = chainspec.BenchKey(i)
		addrs[i] = tx.AddressOf(keys[i].Public().(ed25519.PublicKey))
	}
	ctx := c.Context
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	// Wait until the network finalizes (a fresh testnet).
	var fl0 struct {
		Finalized struct {
			Number uint64 `json:"number"`
		} `json:"finalized"`
	}
	for wait := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		err := getJSONURL(ctx, client, rpcs[0]+"/finality/latest", &fl0)
		if err == nil && fl0.Finalized.Number >= 1 {
			break
		}
		if time.Now().After(wait) {
			return fmt.Errorf("%s finalized nothing within 2 minutes (last error: %v)", rpcs[0], err)
		}
	}
	// Starting nonces (best state of the first node).
	nonces := make([]uint64, nacc)
	for i, a := range addrs {
		var acc struct {
			Nonce uint64 `json:"nonce"`
		}
		if err := getJSONURL(ctx, client, rpcs[0]+"/accounts/"+a.String(), &acc); err != nil {
			return fmt.Errorf("read the nonce of bench account %d: %w", i, err)
		}
		nonces[i] = acc.Nonce
	}
	w := c.App.Writer
	label := c.String("label")
	saturation := 0
	var baseline time.Duration
	for _, rate := range rates {
		dur := c.Duration("duration")
		n := int(float64(rate) * dur.Seconds())
		txs := make([]loadTx, n)
		for i := range txs {
			s := i % nacc
			x := &tx.Tx{Genesis: genesis, To: addrs[(s+1)%nacc], Amount: 1, Fee: spec.MinFee, Nonce: nonces[s]}
			nonces[s]++
			x.Sign(keys[s])
			txs[i] = loadTx{hash: x.Hash(), raw: x.Encode()}
		}
		run := &loadRun{rate: rate, sentAt: make(map[tx.Hash]time.Time, n), reasons: map[string]int{}}
		cpu0 := cpuTicks(pids)
		fctx, stopFollow := context.WithCancel(ctx)
		followed := make(chan error, 1)
		go func() { followed <- followFinality(fctx, client, rpcs[0], run) }()
		start := time.Now()
		submit(ctx, client, rpcs, txs, rate, c.Int("workers"), run)
		// Wait for the stragglers.
		deadline := time.Now().Add(c.Duration("drain"))
		for time.Now().Before(deadline) {
			run.mu.Lock()
			left := len(run.sentAt)
			run.mu.Unlock()
			if left == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		stopFollow()
		if err := <-followed; err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		elapsed := time.Since(start)
		cpu := cpuTicks(pids) - cpu0
		run.mu.Lock()
		lat := slices.Clone(run.latencies)
		run.mu.Unlock()
		slices.Sort(lat)
		fin := len(lat)
		// The finalized rate: finalized transfers over the span in which
		// they were seen finalized (an open-loop rate is sustained when what
		// goes in comes out at the same pace), at least one second.
		window := time.Second
		if fin > 0 {
			window = max(window, run.finalAt.Sub(run.firstAt))
		}
		tps := float64(fin) / window.Seconds()
		p50, p99 := pct(lat, 50), pct(lat, 99)
		cpuPerNode := "n/a"
		if len(pids) > 0 {
			cpuPerNode = fmt.Sprintf("%.2f", float64(cpu)/float64(clockTicks)/elapsed.Seconds()/float64(len(pids)))
		}
		fmt.Fprintf(w, "tx-load: %s rate=%d submitted=%d finalized=%d finalized_tps=%.0f submit_to_finalized_p50_ms=%d submit_to_finalized_p99_ms=%d p50_ms=%d p99_ms=%d refused=%d cpu_per_node=%s\n",
			label, rate, run.submitted.Load(), fin, tps, p50.Milliseconds(), p99.Milliseconds(), p50.Milliseconds(), p99.Milliseconds(), run.refused.Load(), cpuPerNode)
		if len(run.reasons) > 0 {
			keys := make([]string, 0, len(run.reasons))
			for k := range run.reasons {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(c.App.ErrWriter, "tx-load: rate=%d refused %d: %s\n", rate, run.reasons[k], k)
			}
		}
		// Bounded: the p99 at most twice the lowest rate's (the latency of
		// an unloaded network is the protocol's: a checkpoint interval and
		// the next checkpoint's justification).
		if baseline == 0 {
			baseline = p99
		}
		if tps >= 0.95*float64(rate) && fin >= n*95/100 && p99 <= 2*baseline {
			saturation = max(saturation, rate)
		}
	}
	fmt.Fprintf(w, "tx-load: %s saturation_rate=%d\n", label, saturation)
	agree, err := compareRoots(ctx, client, rpcs, spec.CheckpointInterval)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "tx-load: %s state_roots_agree=%d checkpoints nodes=%d\n", label, agree, len(rpcs))
	return nil
}

// compareRoots checks that every node reports the same state root for
// every finalized checkpoint block (up to the lowest finalized block among
// the nodes) and returns how many checkpoints it compared.
func compareRoots(ctx context.Context, client *http.Client, rpcs []string, interval uint64) (int, error) {
	lowest := uint64(1<<63 - 1)
	for _, r := range rpcs {
		var fl struct {
			Finalized struct {
				Block uint64 `json:"block"`
			} `json:"finalized"`
		}
		if err := getJSONURL(ctx, client, r+"/finality/latest", &fl); err != nil {
			return 0, err
		}
		lowest = min(lowest, fl.Finalized.Block)
	}
	agree := 0
	for n := interval; n <= lowest; n += interval {
		want := ""
		for _, r := range rpcs {
			var b struct {
				StateRoot string `json:"state_root"`
			}
			if err := getJSONURL(ctx, client, fmt.Sprintf("%s/blocks/%d", r, n), &b); err != nil {
				return agree, err
			}
			if want == "" {
				want = b.StateRoot
			} else if b.StateRoot != want {
				return agree, fmt.Errorf("state root of finalized block #%d differs: %s at %s, %s at %s", n, want, rpcs[0], b.StateRoot, r)
			}
		}
		agree++
	}
	return agree, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// submit posts txs open-loop: transfer i is due at start + i/rate.
func submit(ctx context.Context, client *http.Client, rpcs []string, txs []loadTx, rate, workers int, run *loadRun) {
	type job struct {
		i int
		t loadTx
	}
	jobs := make(chan job, 4096)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				url := rpcs[j.i%len(rpcs)] + "/tx"
				run.mu.Lock()
				run.sentAt[j.t.hash] = time.Now()
				run.mu.Unlock()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(j.t.raw))
				if err != nil {
					continue
				}
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := client.Do(req)
				run.submitted.Add(1)
				if err != nil {
					run.refused.Add(1)
					run.mu.Lock()
					delete(run.sentAt, j.t.hash)
					run.reasons["http: "+err.Error()]++
					run.mu.Unlock()
					continue
				}
				var st struct {
					Reason string `json:"reason"`
					Error  string `json:"error"`
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					_ = json.Unmarshal(body, &st)
					run.refused.Add(1)
					run.mu.Lock()
					delete(run.sentAt, j.t.hash)
					run.reasons[fmt.Sprintf("%d %s%s", resp.StatusCode, st.Reason, st.Error)]++
					run.mu.Unlock()
				}
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i, t := range txs {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		select {
		case jobs <- job{i, t}:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
}

// followFinality polls the finalized checkpoint of url and reads every
// newly finalized block: each pending transfer in one is final now.
func followFinality(ctx context.Context, client *http.Client, url string, run *loadRun) error {
	var fl struct {
		Finalized struct {
			Block uint64 `json:"block"`
		} `json:"finalized"`
	}
	if err := getJSONURL(ctx, client, url+"/finality/latest", &fl); err != nil {
		return err
	}
	next := fl.Finalized.Block + 1
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if err := getJSONURL(ctx, client, url+"/finality/latest", &fl); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		now := time.Now()
		for ; next <= fl.Finalized.Block; next++ {
			var b struct {
				Transactions []struct {
					Hash string `json:"hash"`
				} `json:"transactions"`
			}
			if err := getJSONURL(ctx, client, fmt.Sprintf("%s/blocks/%d", url, next), &b); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				break
			}
			run.mu.Lock()
			for _, t := range b.Transactions {
				h, err := checkpoint.ParseHash(t.Hash)
				if err != nil {
					continue
				}
				if at, ok := run.sentAt[h]; ok {
					run.latencies = append(run.latencies, now.Sub(at))
					delete(run.sentAt, h)
					if run.firstAt.IsZero() {
						run.firstAt = now
					}
					run.finalAt = now
				}
			}
			run.mu.Unlock()
		}
	}
}

func getJSONURL(ctx context.Context, client *http.Client, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// clockTicks is the kernel's USER_HZ (100 on Linux).
const clockTicks = 100

// cpuTicks sums utime+stime of pids from /proc (0 where unreadable).
func cpuTicks(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += u + st
	}
	return sum
}
