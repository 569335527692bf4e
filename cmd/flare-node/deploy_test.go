package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// unitFile parses a systemd unit: section -> key -> values (in order).
func unitFile(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "line %q", line)
			out[section][k] = append(out[section][k], v)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestSystemdUnit checks deploy/systemd/flare-node.service against the
// node: operator errors (exit 2) are not restarted, the stop signal is one
// the node stops cleanly on (exit 0, TestRunTmpCleanShutdown), the
// writable path is the base path, the hardening options are there, the
// ExecStart command line with the sample configuration is valid, and, where
// systemd-analyze exists, the unit verifies and its exposure is low.
func TestSystemdUnit(t *testing.T) {
	unitPath, _ := filepath.Abs(filepath.Join("..", "..", "deploy", "systemd", "flare-node.service"))
	u := unitFile(t, unitPath)
	svc := u["Service"]
	one := func(k string) string {
		t.Helper()
		require.Len(t, svc[k], 1, "Service.%s", k)
		return svc[k][0]
	}
	require.Equal(t, "on-failure", one("Restart"))
	require.Equal(t, strconv.Itoa(exitUsage), one("RestartPreventExitStatus"), "operator errors are not restarted")
	require.Equal(t, "SIGTERM", one("KillSignal"))
	require.Equal(t, "flare", one("User"))
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
		"StateDirectory": "flare-node", "Environment": "FLARE_BASE_PATH=/var/lib/flare-node", "ReadWritePaths": "/var/lib/flare-node",
		"LimitNOFILE": "65536", "CapabilityBoundingSet": "",
	} {
		require.Equal(t, want, one(k), "Service.%s", k)
	}

	// The command line, with the sample configuration, is accepted.
	exec0 := strings.Fields(one("ExecStart"))
	require.Equal(t, "/usr/local/bin/flare-node", exec0[0])
	sample, _ := filepath.Abs(filepath.Join("..", "..", "deploy", "systemd", "flare-node.toml"))
	args := append([]string{}, exec0[1:]...)
	for i, a := range args {
		if a == "/etc/flare-node/flare-node.toml" {
			args[i] = sample
		}
	}
	s := newSandbox(t)
	c := printConfig(t, s, []string{one("Environment")}, args...)
	require.Equal(t, "/var/lib/flare-node", c.BasePath)
	require.True(t, c.EnableASF)
	require.Equal(t, "json", c.Log.Format)

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze: the unit's syntax and exposure are not checked")
	}
	data, err := os.ReadFile(unitPath)
	require.NoError(t, err)
	local := filepath.Join(t.TempDir(), "flare-node.service")
	require.NoError(t, os.WriteFile(local, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/flare-node", binPath)), 0o644))
	out, err := exec.Command(analyze, "verify", "--man=no", local).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify: %s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warnings")
	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", local).CombinedOutput()
	require.NoError(t, err, "%s", out)
	m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindSubmatch(out)
	require.NotNil(t, m, "%s", out)
	exposure, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	t.Logf("systemd-analyze security exposure: %.1f", exposure)
	require.LessOrEqual(t, exposure, 2.0, "the unit is hardened")
}
