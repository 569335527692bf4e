package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkCLIStartup measures a full run of the binary that parses and
// validates a node configuration and exits (--print-config): process start,
// flag parsing, TOML-free layering, chain resolution and validation.
func BenchmarkCLIStartup(b *testing.B) {
	base := filepath.Join(b.TempDir(), "base")
	env := append(os.Environ(), "NO_COLOR=1")
	for b.Loop() {
		cmd := exec.Command(binPath, "--print-config", "--dev", "--enable-asf", "--base-path", base)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/run")
}

// BenchmarkCheckpointsList measures `checkpoints list --json` over a
// checkpoint database with a few certificates (opening it read-only,
// verifying it, reading and printing).
func BenchmarkCheckpointsList(b *testing.B) {
	f := newFixture(b, filepath.Join(b.TempDir(), "base"))
	for b.Loop() {
		cmd := exec.Command(binPath, "checkpoints", "list", "--json", "--chain", "local", "--base-path", f.base)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/run")
}
