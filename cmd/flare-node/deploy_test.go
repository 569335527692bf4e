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

// dockerInstr is one Dockerfile instruction.
type dockerInstr struct{ cmd, args string }

// parseDockerfile returns the instructions of a Dockerfile in order,
// continuation lines joined.
func parseDockerfile(t *testing.T, path string) []dockerInstr {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []dockerInstr
	var cur string
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		cmd, args, _ := strings.Cut(cur, " ")
		out = append(out, dockerInstr{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// TestDockerfile lints the Dockerfile (docker cannot build on the test
// machines): a multi-stage build on the go.mod toolchain whose final stage
// runs the binary as a non-root user with the base path as a volume, and a
// go build command that is valid (go build -n) and, with
// FLARE_LONG_TESTS=1, is run to check the version it stamps.
func TestDockerfile(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	instrs := parseDockerfile(t, filepath.Join(root, "Dockerfile"))

	var froms []int
	args := map[string]string{}
	var build string
	for i, in := range instrs {
		switch in.cmd {
		case "FROM":
			froms = append(froms, i)
		case "ARG":
			if k, v, ok := strings.Cut(in.args, "="); ok {
				args[k] = v
			}
		case "RUN":
			if strings.Contains(in.args, "go build") {
				build = in.args
			}
		}
	}
	require.GreaterOrEqual(t, len(froms), 2, "multi-stage")
	require.Regexp(t, `^golang:\$\{GO_VERSION\}-\S+ AS build$`, instrs[froms[0]].args)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.Regexp(t, `(?m)^go `+regexp.QuoteMeta(args["GO_VERSION"])+`$`, string(gomod), "the image builds with the go.mod toolchain")

	final := map[string][]string{}
	for _, in := range instrs[froms[len(froms)-1]+1:] {
		final[in.cmd] = append(final[in.cmd], in.args)
	}
	require.Len(t, final["USER"], 1)
	uid, _, _ := strings.Cut(final["USER"][0], ":")
	n, err := strconv.Atoi(uid)
	require.NoError(t, err, "numeric user")
	require.NotZero(t, n, "non-root")
	require.Equal(t, []string{`["/data"]`}, final["VOLUME"])
	require.Equal(t, []string{"FLARE_BASE_PATH=/data"}, final["ENV"], "the volume is the base path")
	require.Contains(t, final["COPY"], "--from=build --chown="+final["USER"][0]+" /out/data /data", "the volume is owned by the user")
	require.Equal(t, []string{`["/usr/local/bin/flare-node"]`}, final["ENTRYPOINT"])
	require.Contains(t, final["COPY"], "--from=build /out/flare-node /usr/local/bin/flare-node")
	require.Equal(t, []string{"SIGTERM"}, final["STOPSIGNAL"])
	require.Contains(t, final["EXPOSE"][0], strconv.Itoa(30333)+"/tcp")

	// The build command: every -X names a variable of internal/buildinfo.
	require.NotEmpty(t, build)
	env, cmdline, ok := strings.Cut(build, " go ")
	require.True(t, ok, build)
	require.Equal(t, "CGO_ENABLED=0", env)
	line := os.Expand("go "+cmdline, func(k string) string { return map[string]string{"VERSION": "9.8.7", "COMMIT": "feedc0de"}[k] })
	argv := shellSplit(t, line)
	require.Contains(t, line, "-X "+buildinfoPkg+".version=9.8.7")
	require.Contains(t, line, "-X "+buildinfoPkg+".commit=feedc0de")
	out := filepath.Join(t.TempDir(), "flare-node")
	for i, a := range argv {
		if a == "/out/flare-node" {
			argv[i] = out
		}
	}
	dry := exec.Command(argv[0], append([]string{argv[1], "-n"}, argv[2:]...)...)
	dry.Dir, dry.Env = root, append(os.Environ(), env)
	o, err := dry.CombinedOutput()
	require.NoError(t, err, "go build -n: %s", o)

	if os.Getenv("FLARE_LONG_TESTS") == "" {
		t.Log("FLARE_LONG_TESTS unset: the image's go build was checked with -n only")
		return
	}
	real := exec.Command(argv[0], argv[1:]...)
	real.Dir, real.Env = root, append(os.Environ(), env)
	o, err = real.CombinedOutput()
	require.NoError(t, err, "%s", o)
	o, err = exec.Command(out, "version").Output()
	require.NoError(t, err)
	require.Regexp(t, `^flare-node 9\.8\.7\ncommit: feedc0de\n`, string(o))
}
