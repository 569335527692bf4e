package sim

import (
	"os"
	"strconv"
	"testing"
)

func TestDebugOne(t *testing.T) {
	seed, _ := strconv.ParseUint(os.Getenv("SIM_SEED"), 10, 64)
	opts := Options{Seed: seed, Scenario: os.Getenv("SIM_SCENARIO"), Mutant: os.Getenv("SIM_MUTANT")}
	if os.Getenv("SIM_TRACE") != "" {
		f, _ := os.Create(os.Getenv("SIM_TRACE"))
		defer f.Close()
		opts.Trace = f
	}
	r := Run(opts)
	t.Logf("seed=%d scenario=%s steps=%d sim=%s final=%d hash=%x violations=%v", r.Seed, r.Scenario, r.Steps, r.SimTime, r.Finalized, r.TraceHash[:8], r.Violations)
}
