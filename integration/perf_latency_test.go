package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
)

var reAuthored = regexp.MustCompile(`^Authored block #\d+`)

// authored is one "Authored block #N" line at its producer.
type authored struct {
	number, slot uint64
	hash         string
	at           time.Time
}

// finalizedAt is one "FINALITY ADVANCED" line at a node: the checkpoint
// block number and hash it finalized.
type finalizedAt struct {
	block uint64
	hash  string
	at    time.Time
}

// latencyReport is the outcome of one measurement window.
type latencyReport struct {
	slots, blocks, forks int
	samples              []time.Duration // block authored -> finalized, per block per node
	missing              int             // (block, node) pairs not finalized by the end of the run
}

// analyzeLatency computes, for the blocks authored in [from, to): the slots
// of the window, the blocks of the final chain among them (distinct
// numbers; an extra block at a number already authored is a fork), and for
// every such block and every node the time from the "Authored" line to the
// first FINALITY ADVANCED line at that node whose checkpoint block is at or
// above the block. When a fork produced two blocks at a number, the one a
// FINALITY line names is kept; a number with competing blocks that no
// FINALITY line names is left out of the samples.
func analyzeLatency(blocks []authored, finals [][]finalizedAt, genesis time.Time, slot time.Duration, from, to time.Time) latencyReport {
	var r latencyReport
	slotAt := func(t time.Time) int64 { return int64(t.Sub(genesis) / slot) }
	r.slots = int(slotAt(to) - slotAt(from))
	named := map[uint64]string{} // block number -> finalized hash
	for _, fs := range finals {
		for _, f := range fs {
			named[f.block] = f.hash
		}
	}
	byNumber := map[uint64][]authored{}
	for _, b := range blocks {
		s := int64(b.slot)
		if s <= slotAt(from) || s > slotAt(to) {
			continue
		}
		byNumber[b.number] = append(byNumber[b.number], b)
	}
	for num, bs := range byNumber {
		r.blocks++
		r.forks += len(bs) - 1
		b := bs[0]
		if len(bs) > 1 {
			h, ok := named[num]
			i := slices.IndexFunc(bs, func(x authored) bool { return x.hash == h })
			if !ok || i < 0 {
				continue
			}
			b = bs[i]
		}
		for _, fs := range finals {
			i := slices.IndexFunc(fs, func(f finalizedAt) bool { return f.block >= num && !f.at.Before(b.at) })
			if i < 0 {
				r.missing++
				continue
			}
			r.samples = append(r.samples, fs[i].at.Sub(b.at))
		}
	}
	return r
}

func TestAnalyzeLatency(t *testing.T) {
	g := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	slot := 100 * time.Millisecond
	at := func(ms int) time.Time { return g.Add(time.Duration(ms) * time.Millisecond) }
	blocks := []authored{
		{number: 1, slot: 1, hash: "a1", at: at(100)},   // before the window
		{number: 2, slot: 2, hash: "a2", at: at(200)},   // slot 2
		{number: 3, slot: 3, hash: "a3", at: at(300)},   // fork at 3: a3 loses
		{number: 3, slot: 4, hash: "b3", at: at(400)},   // b3 wins (named below)
		{number: 4, slot: 6, hash: "a4", at: at(600)},   // slot 5 was empty
		{number: 5, slot: 20, hash: "a5", at: at(2000)}, // after the window
	}
	finals := [][]finalizedAt{
		{{1, "a1", at(150)}, {2, "a2", at(250)}, {3, "b3", at(450)}, {4, "a4", at(700)}},
		{{3, "b3", at(500)}, {4, "a4", at(800)}}, // jumped over 2
	}
	r := analyzeLatency(blocks, finals, g, slot, at(150), at(650))
	require.Equal(t, 5, r.slots)  // slots 2..6
	require.Equal(t, 3, r.blocks) // numbers 2, 3, 4
	require.Equal(t, 1, r.forks)
	require.Zero(t, r.missing)
	ms := func(d ...int) []time.Duration {
		var out []time.Duration
		for _, x := range d {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	require.ElementsMatch(t, ms(50, 300, 50, 100, 100, 200), r.samples)

	// A fork nobody finalized is left out; an unfinalized block is missing.
	r = analyzeLatency([]authored{{7, 7, "x", at(700)}, {7, 8, "y", at(800)}, {8, 9, "z", at(900)}}, finals, g, slot, at(650), at(950))
	require.Equal(t, 2, r.blocks)
	require.Equal(t, 1, r.forks)
	require.Empty(t, r.samples)
	require.Equal(t, 2, r.missing)
}

// freeRange returns a port p with p..p+n-1 free on 127.0.0.1.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + int(time.Now().UnixNano()%30000)
		ok := true
		for i := 0; i < n && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// cpuTicks is utime+stime of a process in clock ticks (/proc/<pid>/stat).
func cpuTicks(t *testing.T, pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// The command name (field 2) may contain spaces: split after ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, err := strconv.ParseUint(f[11], 10, 64) // field 14
	require.NoError(t, err)
	st, err := strconv.ParseUint(f[12], 10, 64) // field 15
	require.NoError(t, err)
	return ut + st
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// TestPerfFinalityLatency measures time to finality on a network written by
// `flare-node testnet` (node0 is every other node's only bootnode; the rest
// is found by discovery): block authored ("Authored block #N" at its
// producer) -> the FINALITY ADVANCED line covering it at each node. It
// prints p50/p99, blocks per slot and CPU per node per finalized checkpoint
// (utime+stime from /proc). Parameters: FLARE_LAT_VALIDATORS (4),
// FLARE_LAT_SLOT (250ms), FLARE_LAT_INTERVAL (1), FLARE_LAT_WARMUP (15 s or
// 6 checkpoint intervals, whichever is longer),
// FLARE_PERF_DURATION (60s). scripts/finality-latency.sh runs it.
func TestPerfFinalityLatency(t *testing.T) {
	perfEnabled(t)
	n, err := strconv.Atoi(envOr("FLARE_LAT_VALIDATORS", "4"))
	require.NoError(t, err)
	slot, err := time.ParseDuration(envOr("FLARE_LAT_SLOT", "250ms"))
	require.NoError(t, err)
	interval := envOr("FLARE_LAT_INTERVAL", "1")
	iv, err := strconv.Atoi(interval)
	require.NoError(t, err)
	// The default warm-up covers the fresh signer records' first use (two
	// checkpoint intervals of listening) and the first finalization (two
	// more): 15 s, or 6 checkpoint intervals when that is longer (24 s on
	// the local chain's timing).
	defWarmup := max(15*time.Second, 6*time.Duration(iv)*slot)
	warmup, err := time.ParseDuration(envOr("FLARE_LAT_WARMUP", defWarmup.String()))
	require.NoError(t, err)
	window, err := time.ParseDuration(envOr("FLARE_PERF_DURATION", "60s"))
	require.NoError(t, err)

	// More node processes than cores emulate n machines on a few cores:
	// each process gets GOMAXPROCS=1 (FLARE_LAT_GOMAXPROCS overrides; "0"
	// keeps the Go default of one P per core, whose idle Ps then spin in
	// all n processes at once).
	procsPerNode := os.Getenv("FLARE_LAT_GOMAXPROCS")
	if procsPerNode == "" && n > runtime.NumCPU() {
		procsPerNode = "1"
	}
	if procsPerNode != "" && procsPerNode != "0" {
		t.Setenv("GOMAXPROCS", procsPerNode)
	} else {
		procsPerNode = "default"
	}

	dir := filepath.Join(t.TempDir(), "net")
	base := freeRange(t, n)
	out, stderr, code := runCLI(t, "testnet", "--validators", strconv.Itoa(n), "--out", dir,
		"--base-port", strconv.Itoa(base), "--metrics-base-port", "0",
		"--slot-duration", slot.String(), "--checkpoint-interval", interval, "--binary", binPath)
	require.Equal(t, 0, code, "%s%s", out, stderr)
	spec, err := chainspec.Load(filepath.Join(dir, "chainspec.json"))
	require.NoError(t, err)
	env := readNodesEnv(t, filepath.Join(dir, "nodes.env"))

	// FLARE_LAT_PROFILE=FILE: node1 serves --pprof and a CPU profile of
	// the first 20 s of the window is written to FILE.
	profile := os.Getenv("FLARE_LAT_PROFILE")
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	procs := make([]*proc, n)
	for i := range procs {
		args := shellWords(t, env[fmt.Sprintf("NODE%d_CMD", i)])
		require.Equal(t, binPath, args[0])
		if profile != "" && i == 1 {
			args = append(args, "--metrics-addr", pprofAddr, "--pprof")
		}
		procs[i] = startNode(t, fmt.Sprintf("node%d", i), args[1:]...)
	}
	time.Sleep(warmup) // the network forms and settles; not a synchronisation
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- fetchProfile("http://"+pprofAddr+"/debug/pprof/profile?seconds=20", profile) }()
	}
	for _, p := range procs {
		require.NotEmpty(t, p.all(reFinality), "%s finalized nothing during the warm-up:\n%s", p.name, p.tail(20))
	}
	ticks0 := make([]uint64, n)
	fin0 := make([]uint64, n)
	for i, p := range procs {
		ticks0[i] = cpuTicks(t, p.cmd.Process.Pid)
		fin0[i] = finalizedOf(t, p)
	}
	from := time.Now()
	time.Sleep(window) // the measurement window: the network runs on its own
	to := time.Now()
	var ticks uint64
	var checkpoints uint64
	for i, p := range procs {
		ticks += cpuTicks(t, p.cmd.Process.Pid) - ticks0[i]
		checkpoints += finalizedOf(t, p) - fin0[i]
	}
	if profile != "" {
		require.NoError(t, <-profiled)
		t.Logf("CPU profile of node1: %s", profile)
	}
	// Blocks authored at the end of the window get time to be finalized.
	time.Sleep(10*slot + 2*time.Second)
	for _, p := range procs {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	}
	for _, p := range procs {
		p.wait(60 * time.Second)
	}

	var blocks []authored
	finals := make([][]finalizedAt, n)
	for i, p := range procs {
		for _, l := range p.all(reAuthored) {
			num, _ := l.Fields["number"].(float64)
			s, _ := l.Fields["slot"].(float64)
			h, _ := l.Fields["hash"].(string)
			blocks = append(blocks, authored{number: uint64(num), slot: uint64(s), hash: h, at: logTime(t, l)})
		}
		for _, l := range p.all(reFinality) {
			b, _ := l.Fields["block"].(float64)
			h, _ := l.Fields["hash"].(string)
			finals[i] = append(finals[i], finalizedAt{block: uint64(b), hash: h, at: logTime(t, l)})
		}
	}
	genesis := time.UnixMilli(int64(spec.GenesisTimestampMs))
	r := analyzeLatency(blocks, finals, genesis, slot, from, to)
	require.NotEmpty(t, r.samples, "no block finalized in the window")

	clk := uint64(100)
	if o, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(o)), 10, 64); err == nil && v > 0 {
			clk = v
		}
	}
	cpu := time.Duration(ticks) * time.Second / time.Duration(clk)
	perNodeCheckpoints := float64(checkpoints) / float64(n)
	fmt.Printf("\nFinality latency: %d validators (testnet, node0 sole bootnode), %v slots, checkpoint every %s blocks, %v window, loopback, %d CPUs, GOMAXPROCS %s per node\n",
		n, slot, interval, window.Round(time.Second), runtime.NumCPU(), procsPerNode)
	fmt.Printf("%-44s %d / %d (%.1f %%), %d forked blocks\n", "blocks / slots", r.blocks, r.slots, 100*float64(r.blocks)/float64(r.slots), r.forks)
	fmt.Printf("%-44s p50 %v  p99 %v  max %v  (%d samples, %d not finalized)\n", "authored -> FINALITY ADVANCED at each node",
		pct(r.samples, 0.5).Round(time.Millisecond), pct(r.samples, 0.99).Round(time.Millisecond),
		slices.Max(r.samples).Round(time.Millisecond), len(r.samples), r.missing)
	fmt.Printf("%-44s %.1f per node\n", "checkpoints finalized in the window", perNodeCheckpoints)
	fmt.Printf("%-44s %.2f s of %.0f s x %d cores (%.1f %%)\n", "CPU, all nodes", cpu.Seconds(), window.Seconds(), runtime.NumCPU(),
		100*cpu.Seconds()/window.Seconds()/float64(runtime.NumCPU()))
	if perNodeCheckpoints > 0 {
		fmt.Printf("%-44s %.2f ms\n", "CPU per node per finalized checkpoint", float64(cpu.Milliseconds())/float64(n)/perNodeCheckpoints)
	}
}

// readNodesEnv reads nodes.env by letting a shell source it.
func readNodesEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `set -a; . "$1"; env -0`, "sh", path).Output()
	require.NoError(t, err)
	m := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// shellWords splits a command line the way a POSIX shell does.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `eval "set -- $1"; for a in "$@"; do printf '%s\0' "$a"; done`, "sh", line).Output()
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// fetchProfile saves the body of a pprof URL to file.
func fetchProfile(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}
