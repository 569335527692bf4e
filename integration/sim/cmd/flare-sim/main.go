// Command flare-sim runs the deterministic network simulator
// (integration/sim) over many seeds, one seed, the named scenarios or the
// mutants, and prints a one-line summary (see scripts/sim.sh).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/blake2b"

	"github.com/flarechain/flare-node/integration/sim"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Limits of the numeric flags. Every job and result of a sweep is held in
// memory (a million seeds take about a day and a half on two cores), and
// --parallel workers are started as goroutines.
const (
	maxSeeds    = 1_000_000
	maxParallel = 4096
)

// config holds the parsed flags.
type config struct {
	seeds, parallel         int
	first, seed             uint64
	scenario, mutant, trace string
	scenarios, mutants      bool
	logs                    bool
}

func run(args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("flare-sim", flag.ContinueOnError)
	// The flag package's own message and usage dump are replaced by one
	// "Error: ..." line; --help prints the usage on stdout.
	fs.SetOutput(io.Discard)
	fs.IntVar(&c.seeds, "seeds", 200, fmt.Sprintf("seeds of a sweep: --first .. --first+N-1 (1..%d; with --scenarios: per scenario; with --mutants: per mutant)", maxSeeds))
	fs.Uint64Var(&c.first, "first", 1, "first seed of a sweep (>= 1)")
	fs.Uint64Var(&c.seed, "seed", 0, "run this one seed (>= 1), with --scenario/--mutant when a replay line says so")
	fs.StringVar(&c.scenario, "scenario", "", "named scenario ("+strings.Join(sim.Scenarios, ", ")+"); empty: random")
	fs.BoolVar(&c.scenarios, "scenarios", false, "sweep every named scenario, --seeds seeds each")
	fs.StringVar(&c.mutant, "mutant", "", "run with this mutant ("+strings.Join(sim.MutantNames(), ", ")+"); with --mutants: hunt only this one")
	fs.BoolVar(&c.mutants, "mutants", false, "hunt every mutant over the seeds until a violation catches it; each must be caught")
	fs.StringVar(&c.trace, "trace", "", "with --seed: write the step trace to this file")
	fs.BoolVar(&c.logs, "logs", false, "with --seed: print the nodes' logs to stderr")
	fs.IntVar(&c.parallel, "parallel", min(runtime.GOMAXPROCS(0), maxParallel), fmt.Sprintf("seeds run at once (1..%d; no effect with --seed)", maxParallel))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: flare-sim [flags]   (scripts/sim.sh builds and runs it; see docs/simulation.md)")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "Error: %s (see --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "Error: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := validate(c, set); err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 2
	}
	start := time.Now()
	switch {
	case set["seed"]:
		opts := sim.Options{Seed: c.seed, Scenario: c.scenario, Mutant: c.mutant}
		var f *os.File
		var buf *bufio.Writer
		if c.trace != "" {
			var err error
			if f, err = os.Create(c.trace); err != nil {
				fmt.Fprintln(stderr, "Error:", err)
				return 2
			}
			buf = bufio.NewWriter(f)
			opts.Trace = buf
		}
		if c.logs {
			l, _ := zap.NewDevelopment()
			opts.Logger = l
		}
		r := sim.Run(opts)
		if f != nil {
			err := buf.Flush()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				fmt.Fprintln(stderr, "Error: write trace:", err)
				return 1
			}
		}
		printViolations(stdout, r)
		stalls := 0
		if r.HandOffStall != "" {
			stalls = 1
		}
		fmt.Fprintf(stdout, "sim: seeds=1 violations=%d handoff_stalls=%d steps=%d sim_seconds=%.0f wall=%.2fs trace=%x\n",
			len(r.Violations), stalls, r.Steps, r.SimTime.Seconds(), time.Since(start).Seconds(), r.TraceHash)
		if len(r.Violations) > 0 {
			return 1
		}
		return 0
	case c.mutants:
		names := sim.MutantNames()
		if c.mutant != "" {
			names = []string{c.mutant}
		}
		return runMutants(stdout, names, c.first, c.seeds, c.parallel, start)
	}
	var jobs []sim.Options
	if c.scenarios {
		for _, sc := range sim.Scenarios {
			for s := range c.seeds {
				jobs = append(jobs, sim.Options{Seed: c.first + uint64(s), Scenario: sc, Mutant: c.mutant})
			}
		}
	} else {
		for s := range c.seeds {
			jobs = append(jobs, sim.Options{Seed: c.first + uint64(s), Scenario: c.scenario, Mutant: c.mutant})
		}
	}
	results := runAll(jobs, c.parallel)
	total := summarize(results)
	for _, r := range results {
		printViolations(stdout, r)
	}
	fmt.Fprintf(stdout, "sim: seeds=%d violations=%d handoff_stalls=%d steps=%d sim_seconds=%.0f wall=%.2fs trace=%x\n",
		len(results), total.violations, total.stalls, total.steps, total.simSeconds, time.Since(start).Seconds(), total.trace)
	if total.violations > 0 {
		return 1
	}
	return 0
}

// validate checks the flags before anything runs; set holds the names of
// the flags given on the command line.
func validate(c config, set map[string]bool) error {
	if c.seeds < 1 || c.seeds > maxSeeds {
		return fmt.Errorf("--seeds must be between 1 and %d, not %d", maxSeeds, c.seeds)
	}
	// Seed 0 is no seed: "--seed 0" could not replay it.
	if c.first < 1 {
		return fmt.Errorf("--first must be at least 1")
	}
	if c.first-1 > math.MaxUint64-uint64(c.seeds) {
		return fmt.Errorf("--first %d with --seeds %d runs past the largest seed", c.first, c.seeds)
	}
	one := set["seed"]
	if one && c.seed < 1 {
		return fmt.Errorf("--seed must be at least 1")
	}
	if c.parallel < 1 || c.parallel > maxParallel {
		return fmt.Errorf("--parallel must be between 1 and %d, not %d", maxParallel, c.parallel)
	}
	if c.scenario != "" && !contains(sim.Scenarios, c.scenario) {
		return fmt.Errorf("unknown scenario %q (known: %s)", c.scenario, strings.Join(sim.Scenarios, ", "))
	}
	if c.mutant != "" && !contains(sim.MutantNames(), c.mutant) {
		return fmt.Errorf("unknown mutant %q (known: %s)", c.mutant, strings.Join(sim.MutantNames(), ", "))
	}
	modes := 0
	for _, m := range []bool{one, c.scenarios, c.mutants} {
		if m {
			modes++
		}
	}
	switch {
	case modes > 1:
		return fmt.Errorf("--seed, --scenarios and --mutants exclude each other")
	case one && (set["seeds"] || set["first"]):
		return fmt.Errorf("--seeds and --first select a sweep; --seed runs one seed")
	case (c.scenarios || c.mutants) && c.scenario != "":
		return fmt.Errorf("--scenario does not combine with --scenarios or --mutants")
	case !one && c.trace != "":
		return fmt.Errorf("--trace needs --seed")
	case !one && c.logs:
		return fmt.Errorf("--logs needs --seed")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type totals struct {
	violations int
	stalls     int
	steps      int
	simSeconds float64
	trace      [32]byte
}

func summarize(results []sim.Result) totals {
	var t totals
	h, _ := blake2b.New256(nil)
	for _, r := range results {
		t.violations += len(r.Violations)
		if r.HandOffStall != "" {
			t.stalls++
		}
		t.steps += r.Steps
		t.simSeconds += r.SimTime.Seconds()
		h.Write(r.TraceHash[:])
	}
	copy(t.trace[:], h.Sum(nil))
	return t
}

// runAll runs the jobs on parallel workers; results keep the job order.
func runAll(jobs []sim.Options, parallel int) []sim.Result {
	results := make([]sim.Result, len(jobs))
	ch := make(chan int)
	var wg sync.WaitGroup
	for range max(min(parallel, len(jobs)), 1) {
		wg.Go(func() {
			for i := range ch {
				results[i] = sim.Run(jobs[i])
			}
		})
	}
	for i := range jobs {
		ch <- i
	}
	close(ch)
	wg.Wait()
	return results
}

func replay(r sim.Result) string {
	cmd := fmt.Sprintf("scripts/sim.sh --seed %d", r.Seed)
	if r.Scenario != "" && r.Scenario != "random" {
		cmd += " --scenario " + r.Scenario
	}
	if r.Mutant != "" {
		cmd += " --mutant " + r.Mutant
	}
	return cmd + " --trace /tmp/flare-sim.trace"
}

// printViolations prints the run's violations and its hand-off stall (the
// documented split limit: reported, not a violation), each with its replay
// line.
func printViolations(w io.Writer, r sim.Result) {
	for _, v := range r.Violations {
		fmt.Fprintf(w, "violation: seed=%d scenario=%s %s\n  replay: %s\n", r.Seed, r.Scenario, v, replay(r))
	}
	if r.HandOffStall != "" {
		fmt.Fprintf(w, "handoff-stall: seed=%d scenario=%s at %s: %s\n  replay: %s\n", r.Seed, r.Scenario, r.SimTime, r.HandOffStall, replay(r))
	}
}

// runMutants runs each named mutant over its exposing scenario (up to 5
// seeds) and the random seeds until a violation catches it.
func runMutants(stdout io.Writer, names []string, first uint64, seeds, parallel int, start time.Time) int {
	caught := 0
	for _, name := range names {
		var jobs []sim.Options
		if sc := sim.MutantScenario(name); sc != "" {
			for s := range min(seeds, 5) {
				jobs = append(jobs, sim.Options{Seed: first + uint64(s), Scenario: sc, Mutant: name})
			}
		}
		for s := range seeds {
			jobs = append(jobs, sim.Options{Seed: first + uint64(s), Mutant: name})
		}
		var hit *sim.Result
		// Run in batches so a caught mutant stops early.
		for i := 0; i < len(jobs) && hit == nil; i += parallel * 4 {
			batch := jobs[i:min(len(jobs), i+parallel*4)]
			for _, r := range runAll(batch, parallel) {
				if len(r.Violations) > 0 {
					r := r
					hit = &r
					break
				}
			}
		}
		if hit != nil {
			caught++
			fmt.Fprintf(stdout, "mutant %s: caught by seed %d (scenario %s): %s\n  replay: %s\n", name, hit.Seed, hit.Scenario, hit.Violations[0].What, replay(*hit))
		} else {
			fmt.Fprintf(stdout, "mutant %s: NOT caught in %d runs\n", name, len(jobs))
		}
	}
	fmt.Fprintf(stdout, "mutants: caught=%d/%d wall=%.2fs\n", caught, len(names), time.Since(start).Seconds())
	if caught < len(names) {
		return 1
	}
	return 0
}
