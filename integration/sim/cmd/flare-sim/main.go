// Command flare-sim runs the deterministic network simulator
// (integration/sim) over many seeds, one seed, the named scenarios or the
// mutants, and prints a one-line summary (see scripts/sim.sh).
package main

import (
	"flag"
	"fmt"
	"io"
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

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flare-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seeds := fs.Int("seeds", 200, "number of random seeds to run (1..N, or from --first)")
	first := fs.Uint64("first", 1, "first seed of a sweep")
	seed := fs.Uint64("seed", 0, "run this one seed only (with --scenario/--mutant when a replay line says so)")
	scenario := fs.String("scenario", "", "named scenario ("+strings.Join(sim.Scenarios, ", ")+"); empty: random")
	scenarios := fs.Bool("scenarios", false, "run every named scenario (seeds 1..--seeds each)")
	mutant := fs.String("mutant", "", "run with this mutant ("+strings.Join(sim.MutantNames(), ", ")+")")
	mutants := fs.Bool("mutants", false, "run every mutant over the seeds; each must be caught")
	trace := fs.String("trace", "", "write the step trace of --seed to this file")
	logs := fs.Bool("logs", false, "with --seed: print the nodes' logs to stderr")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "seeds run in parallel")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "Error: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := validate(*scenario, *mutant); err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 2
	}
	start := time.Now()
	switch {
	case *seed != 0:
		opts := sim.Options{Seed: *seed, Scenario: *scenario, Mutant: *mutant}
		if *trace != "" {
			f, err := os.Create(*trace)
			if err != nil {
				fmt.Fprintln(stderr, "Error:", err)
				return 2
			}
			defer f.Close()
			opts.Trace = f
		}
		if *logs {
			l, _ := zap.NewDevelopment()
			opts.Logger = l
		}
		r := sim.Run(opts)
		printViolations(stdout, r)
		fmt.Fprintf(stdout, "sim: seeds=1 violations=%d steps=%d sim_seconds=%.0f wall=%.2fs trace=%x\n",
			len(r.Violations), r.Steps, r.SimTime.Seconds(), time.Since(start).Seconds(), r.TraceHash)
		if len(r.Violations) > 0 {
			return 1
		}
		return 0
	case *mutants:
		return runMutants(stdout, *first, *seeds, *parallel, start)
	}
	var jobs []sim.Options
	if *scenarios {
		for _, sc := range sim.Scenarios {
			for s := range *seeds {
				jobs = append(jobs, sim.Options{Seed: *first + uint64(s), Scenario: sc, Mutant: *mutant})
			}
		}
	} else {
		for s := range *seeds {
			jobs = append(jobs, sim.Options{Seed: *first + uint64(s), Scenario: *scenario, Mutant: *mutant})
		}
	}
	results := runAll(jobs, *parallel)
	total := summarize(results)
	for _, r := range results {
		printViolations(stdout, r)
	}
	fmt.Fprintf(stdout, "sim: seeds=%d violations=%d steps=%d sim_seconds=%.0f wall=%.2fs trace=%x\n",
		len(results), total.violations, total.steps, total.simSeconds, time.Since(start).Seconds(), total.trace)
	if total.violations > 0 {
		return 1
	}
	return 0
}

func validate(scenario, mutant string) error {
	if scenario != "" && !contains(sim.Scenarios, scenario) {
		return fmt.Errorf("unknown scenario %q (known: %s)", scenario, strings.Join(sim.Scenarios, ", "))
	}
	if mutant != "" && !contains(sim.MutantNames(), mutant) {
		return fmt.Errorf("unknown mutant %q (known: %s)", mutant, strings.Join(sim.MutantNames(), ", "))
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
	steps      int
	simSeconds float64
	trace      [32]byte
}

func summarize(results []sim.Result) totals {
	var t totals
	h, _ := blake2b.New256(nil)
	for _, r := range results {
		t.violations += len(r.Violations)
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
	for range max(parallel, 1) {
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

func printViolations(w io.Writer, r sim.Result) {
	for _, v := range r.Violations {
		fmt.Fprintf(w, "violation: seed=%d scenario=%s %s\n  replay: %s\n", r.Seed, r.Scenario, v, replay(r))
	}
}

// runMutants runs each mutant over its exposing scenario and the random
// seeds until a violation catches it.
func runMutants(stdout io.Writer, first uint64, seeds, parallel int, start time.Time) int {
	caught := 0
	for _, name := range sim.MutantNames() {
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
	fmt.Fprintf(stdout, "mutants: caught=%d/%d wall=%.2fs\n", caught, len(sim.MutantNames()), time.Since(start).Seconds())
	if caught < len(sim.MutantNames()) {
		return 1
	}
	return 0
}
