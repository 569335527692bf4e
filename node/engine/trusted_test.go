package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func TestCheckTrusted(t *testing.T) {
	cp := func(n uint64, tag string) checkpoint.Checkpoint {
		return checkpoint.Checkpoint{Number: n, Hash: checkpoint.HashOf([]byte(tag), []byte{byte(n)})}
	}
	cert := func(s, t checkpoint.Checkpoint) checkpoint.Certificate {
		return checkpoint.Certificate{Source: s, Target: t}
	}
	handOff := cert(cp(4, "a"), cp(5, "a"))
	tests := []struct {
		name    string
		proof   checkpoint.FinalityProof
		trusted *checkpoint.Checkpoint
		ok      bool
	}{
		{"no trusted checkpoint", checkpoint.FinalityProof{Finalizing: cert(cp(9, "a"), cp(10, "a"))}, nil, true},
		{"below the trusted checkpoint", checkpoint.FinalityProof{Finalizing: cert(cp(2, "a"), cp(3, "a"))}, &checkpoint.Checkpoint{Number: 5, Hash: cp(5, "a").Hash}, true},
		{"names it in a hand-off", checkpoint.FinalityProof{Finalizing: cert(cp(9, "a"), cp(10, "a")), HandOffs: []checkpoint.Certificate{handOff}}, ptr(cp(5, "a")), true},
		{"names it as finalized", checkpoint.FinalityProof{Finalizing: cert(cp(5, "a"), cp(6, "a"))}, ptr(cp(5, "a")), true},
		{"above what the proof finalizes: not judged yet", checkpoint.FinalityProof{Finalizing: cert(cp(5, "x"), cp(6, "x")), Justified: ptrCert(cert(cp(6, "x"), cp(8, "a")))}, ptr(cp(8, "b")), true},
		{"names another block at its number", checkpoint.FinalityProof{Finalizing: cert(cp(9, "a"), cp(10, "a")), HandOffs: []checkpoint.Certificate{cert(cp(4, "b"), cp(5, "b"))}}, ptr(cp(5, "a")), false},
		{"does not name it", checkpoint.FinalityProof{Finalizing: cert(cp(9, "a"), cp(10, "a"))}, ptr(cp(5, "a")), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTrusted(tc.proof, tc.trusted)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrTrustedCheckpoint)
			}
		})
	}
}

func ptr(c checkpoint.Checkpoint) *checkpoint.Checkpoint { return &c }

func ptrCert(c checkpoint.Certificate) *checkpoint.Certificate { return &c }
