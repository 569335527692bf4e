package config

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkValidate measures the full validation of a validator
// configuration (chain resolution, dev key derivation, every field).
func BenchmarkValidate(b *testing.B) {
	base := filepath.Join(b.TempDir(), "base")
	for b.Loop() {
		c := Default()
		c.Dev()
		c.BasePath = base
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/validate")
}

// BenchmarkLoadTOML measures decoding a full configuration file.
func BenchmarkLoadTOML(b *testing.B) {
	c := Default()
	c.Dev()
	c.P2P.Bootnodes = []string{"/ip4/127.0.0.1/tcp/1/p2p/x", "/ip4/127.0.0.1/tcp/2/p2p/y"}
	data, err := c.EncodeTOML()
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "c.toml")
	if err := writeFileB(p, data); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var got Config
		if err := LoadTOML(p, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/load")
}

func writeFileB(p string, data []byte) error { return os.WriteFile(p, data, 0o600) }
