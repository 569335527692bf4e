package sim

import (
	"testing"
	"time"
)

// BenchmarkSimulation reports simulated seconds per wall-clock second: the
// steady world (4 validators, 1 s slots, a checkpoint every block, no
// faults) and the mix of the first random seeds.
func BenchmarkSimulation(b *testing.B) {
	for _, bc := range []struct {
		name     string
		scenario string
	}{{"steady-4-validators", "steady"}, {"random-seeds", ""}} {
		b.Run(bc.name, func(b *testing.B) {
			var sim time.Duration
			start := time.Now()
			for i := 0; i < b.N; i++ {
				r := Run(Options{Seed: uint64(i + 1), Scenario: bc.scenario})
				if len(r.Violations) > 0 {
					b.Fatalf("seed %d: %v", i+1, r.Violations[0])
				}
				sim += r.SimTime
			}
			b.ReportMetric(sim.Seconds()/time.Since(start).Seconds(), "sim_s/wall_s")
		})
	}
}
