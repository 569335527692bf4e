package main

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInterspersed(t *testing.T) {
	app := newApp(strings.NewReader(""), io.Discard, io.Discard)
	tests := []struct {
		in, want string
	}{
		{"flare-node", "flare-node"},
		{"flare-node --dev --port 1", "flare-node --dev --port 1"},
		{"flare-node checkpoints show 5 --json --chain local", "flare-node checkpoints show --json --chain local 5"},
		{"flare-node checkpoints show 5 --base-path /x --json", "flare-node checkpoints show --base-path /x --json 5"},
		{"flare-node checkpoints show --chain=local 5 -n", "flare-node checkpoints show --chain=local -n 5"},
		{"flare-node checkpoints show 5 -- --json", "flare-node checkpoints show 5 -- --json"},
		{"flare-node --log-level debug key inspect f --chain dev", "flare-node --log-level debug key inspect --chain dev f"},
		{"flare-node key inspect --chain checkpoints f", "flare-node key inspect --chain checkpoints f"},
		{"flare-node key", "flare-node key"},
		{"flare-node unknown --x 1", "flare-node unknown --x 1"},
		{"flare-node -- checkpoints show 5 --json", "flare-node -- checkpoints show 5 --json"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			require.Equal(t, strings.Fields(tt.want), interspersed(app, strings.Fields(tt.in)))
		})
	}
}

func TestExitCodeOf(t *testing.T) {
	require.Equal(t, 0, exitCodeOf(nil))
	require.Equal(t, 1, exitCodeOf(io.EOF))
	require.Equal(t, 2, exitCodeOf(usageError(io.EOF)))
	require.Equal(t, 2, exitCodeOf(usageError(&exitError{code: exitUsage, err: io.EOF})))
	require.Equal(t, 1, exitCodeOf(usageError(&exitError{code: exitFailure, err: io.EOF})), "an existing code is kept")
	require.Equal(t, "Error: a b c", errorLine(usageError(errorString("a\n  b\tc"))))
}

type errorString string

func (e errorString) Error() string { return string(e) }
