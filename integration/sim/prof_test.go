package sim

import "testing"

func BenchmarkSeed(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r := Run(Options{Seed: 4242})
		b.ReportMetric(r.SimTime.Seconds(), "sim_s/op")
	}
}
