package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/p2p"
)

// binPath is the flare-node binary built once by TestMain.
var binPath string

var extraBuildArgs []string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flare-node-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "flare-node")
	build := exec.Command("go", append(append([]string{"build"}, extraBuildArgs...), "-o", binPath, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building flare-node:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sandbox is an isolated environment for one CLI run: HOME, XDG_DATA_HOME
// and TMPDIR point into root, so that the default base path and --tmp
// directories are observable, and no FLARE_* variable leaks in from the
// caller.
type sandbox struct {
	t    *testing.T
	root string
	env  []string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"home", "tmp"} {
		require.NoError(t, os.Mkdir(filepath.Join(root, d), 0o755))
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "FLARE_") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "TMPDIR=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+filepath.Join(root, "home"), "XDG_DATA_HOME="+filepath.Join(root, "xdg"),
		"TMPDIR="+filepath.Join(root, "tmp"), "NO_COLOR=1",
		// Nodes started by tests never announce themselves on the LAN.
		"FLARE_NO_MDNS=true")
	return &sandbox{t: t, root: root, env: env}
}

// path returns a path inside the sandbox.
func (s *sandbox) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// write creates a file inside the sandbox and returns its path.
func (s *sandbox) write(name, content string, mode os.FileMode) string {
	s.t.Helper()
	p := s.path(name)
	require.NoError(s.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(s.t, os.WriteFile(p, []byte(content), mode))
	require.NoError(s.t, os.Chmod(p, mode))
	return p
}

// listing returns every path below the sandbox root (relative), sorted.
func (s *sandbox) listing() []string {
	s.t.Helper()
	var out []string
	require.NoError(s.t, filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		if rel != "." {
			out = append(out, rel)
		}
		return nil
	}))
	sort.Strings(out)
	return out
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary with args, extra environment variables and stdin.
func (s *sandbox) run(stdin string, extraEnv []string, args ...string) result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(append([]string{}, s.env...), extraEnv...)
	cmd.Dir = s.root
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.True(s.t, errors.As(err, &ee), "run %v: %v", args, err)
		code = ee.ExitCode()
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// requireUsageError checks the contract of a refused command line: exit
// code 2, exactly one "Error: " line on stderr, nothing on stdout.
func requireUsageError(t *testing.T, r result, contains string) {
	t.Helper()
	require.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Empty(t, r.stdout)
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	require.Len(t, lines, 1, "stderr: %q", r.stderr)
	require.True(t, strings.HasPrefix(lines[0], "Error: "), "stderr: %q", r.stderr)
	require.Contains(t, lines[0], contains)
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      []string
		files    map[string]string // sandbox-relative name -> content, created before the run
		contains string
	}{
		{name: "unknown flag", args: []string{"--dev", "--nope"}, contains: "unknown flag --nope"},
		{name: "unknown command", args: []string{"frobnicate"}, contains: `unknown command "frobnicate"`},
		{name: "no chain", args: []string{}, contains: "no chain selected"},
		{name: "unknown chain", args: []string{"--chain", "nosuch"}, contains: `unknown chain "nosuch"`},
		{name: "unknown chain from env", env: []string{"FLARE_CHAIN=nosuch"}, contains: `unknown chain "nosuch"`},
		{name: "invalid spec file", args: []string{"--chain", "spec.json"}, files: map[string]string{"spec.json": `{"name": "x"}`}, contains: "invalid chain spec"},
		{name: "spec file not JSON", args: []string{"--chain", "spec.json"}, files: map[string]string{"spec.json": "not json"}, contains: "invalid chain spec"},
		{name: "unreadable spec (a directory)", args: []string{"--chain", "specdir"}, files: map[string]string{"specdir/x": ""}, contains: "specdir"},
		{name: "port out of range", args: []string{"--dev", "--port", "70000"}, contains: "p2p.port (--port) 70000"},
		{name: "port not a number", args: []string{"--dev", "--port", "abc"}, contains: `invalid value "abc" for flag --port`},
		{name: "port env not a number", args: []string{"--dev"}, env: []string{"FLARE_PORT=abc"}, contains: "FLARE_PORT"},
		{name: "flag without value", args: []string{"--dev", "--chain"}, contains: "flag needs an argument: --chain"},
		{name: "max peers zero", args: []string{"--dev", "--max-peers", "0"}, contains: "--max-peers"},
		{name: "bad listen addr", args: []string{"--dev", "--listen-addr", "0.0.0.0:30333"}, contains: "--listen-addr"},
		{name: "bootnode without peer id", args: []string{"--dev", "--bootnodes", "/ip4/127.0.0.1/tcp/30333"}, contains: "/p2p/<peer id>"},
		{name: "log level", args: []string{"--dev", "--log-level", "loud"}, contains: `"loud"`},
		{name: "log format", args: []string{"--dev", "--log-format", "xml"}, contains: `"xml"`},
		{name: "retention zero", args: []string{"--dev", "--checkpoint-retention", "0"}, contains: "--checkpoint-retention"},
		{name: "state retention zero", args: []string{"--dev", "--state-retention", "0"}, contains: "--state-retention"},
		{name: "flush interval zero", args: []string{"--dev", "--checkpoint-flush-interval", "0s"}, contains: "--checkpoint-flush-interval"},
		{name: "flush interval unparsable", args: []string{"--dev", "--checkpoint-flush-interval", "soon"}, contains: "checkpoint-flush-interval"},
		{name: "prune interval negative", args: []string{"--dev", "--checkpoint-prune-interval", "-1s"}, contains: "--checkpoint-prune-interval"},
		{name: "metrics addr", args: []string{"--dev", "--metrics-addr", "9615"}, contains: "--metrics-addr"},
		{name: "rpc addr", args: []string{"--dev", "--rpc-addr", "9933"}, contains: "--rpc-addr"},
		{name: "two dev keys", args: []string{"--dev", "--alice", "--bob"}, contains: "--alice and --bob"},
		{name: "private address flags together", args: []string{"--dev", "--allow-private-ip", "--no-private-ip"}, contains: "--allow-private-ip and --no-private-ip"},
		{name: "dev key and key file", args: []string{"--chain", "local", "--bob", "--key-file", "k"}, contains: "--bob and --key-file"},
		{name: "missing key file", args: []string{"--chain", "local", "--key-file", "missing.key"}, contains: "missing.key"},
		{name: "malformed key file", args: []string{"--chain", "local", "--key-file", "bad.key"}, files: map[string]string{"bad.key": "xyz"}, contains: "malformed validator key file"},
		{name: "validator without key", args: []string{"--chain", "local", "--validator"}, contains: "validator mode needs a key"},
		{name: "tmp and base path", args: []string{"--dev", "--tmp", "--base-path", "data"}, contains: "--tmp and --base-path"},
		{name: "base path is a file", args: []string{"--dev", "--base-path", "afile"}, files: map[string]string{"afile": "x"}, contains: "is not a directory"},
		{name: "missing config file", args: []string{"--dev", "--config", "none.toml"}, contains: "none.toml"},
		{name: "unknown config key", args: []string{"--dev", "--config", "c.toml"}, files: map[string]string{"c.toml": "[p2p]\nprot = 1\n"}, contains: `unknown configuration key "p2p.prot"`},
		{name: "config syntax error", args: []string{"--dev", "--config", "c.toml"}, files: map[string]string{"c.toml": "chain = \n"}, contains: "line 1"},
		{name: "config bad value", args: []string{"--dev", "--config", "c.toml"}, files: map[string]string{"c.toml": "[log]\nformat = \"xml\"\n"}, contains: "log.format"},
		{name: "print-config still validates", args: []string{"--print-config", "--chain", "nosuch"}, contains: "unknown chain"},
		{name: "build-spec unknown chain", args: []string{"build-spec", "--chain", "nosuch"}, contains: "unknown chain"},
		{name: "build-spec dev and chain", args: []string{"build-spec", "--dev", "--chain", "local"}, contains: "--dev and --chain"},
		{name: "key without subcommand", args: []string{"key"}, contains: "missing subcommand"},
		{name: "key unknown subcommand", args: []string{"key", "frob"}, contains: `unknown command "frob"`},
		{name: "key inspect nothing", args: []string{"key", "inspect"}, contains: "needs a key FILE"},
		{name: "key inspect unknown dev key", args: []string{"key", "inspect", "--dev-name", "mallory"}, contains: "mallory"},
		{name: "key inspect bad file", args: []string{"key", "inspect", "bad.key"}, files: map[string]string{"bad.key": "xyz"}, contains: "malformed"},
		{name: "key inspect unknown chain", args: []string{"key", "inspect", "--dev-name", "bob", "--chain", "nosuch"}, contains: "unknown chain"},
		{name: "key inspect-node-key missing", args: []string{"key", "inspect-node-key", "--file", "nokey"}, contains: "nokey"},
		{name: "key inspect-node-key no file", args: []string{"key", "inspect-node-key"}, contains: "needs a node key FILE (or --file FILE)"},
		{name: "key inspect-node-key missing positional", args: []string{"key", "inspect-node-key", "nokey"}, contains: "nokey"},
		{name: "key inspect-node-key two files", args: []string{"key", "inspect-node-key", "a", "b"}, contains: "takes one FILE, got 2"},
		{name: "key inspect-node-key FILE and --file", args: []string{"key", "inspect-node-key", "a", "--file", "b"}, contains: "not both"},
		{name: "key generate into a missing directory", args: []string{"key", "generate", "--output", "nodir/v.key"}, contains: "directory nodir does not exist; create it first"},
		{name: "key generate into a file's directory", args: []string{"key", "generate", "--output", "afile/v.key"}, files: map[string]string{"afile": "x"}, contains: "directory afile is not a directory"},
		{name: "dev key not an authority of dev", args: []string{"--dev", "--bob"}, contains: `chain "dev" does not list --bob (key_name "bob") among its authorities (alice)`},
		{name: "dev key not an authority of a custom chain", args: []string{"--chain", "dev.json", "--bob"}, files: map[string]string{"dev.json": devSpecJSON}, contains: `does not list --bob`},
		{name: "flush interval without unit", args: []string{"--dev", "--checkpoint-flush-interval", "5"}, contains: `invalid value "5" for flag --checkpoint-flush-interval: use a duration with a unit, such as 5s, 500ms or 2m`},
		{name: "flush interval without unit from env", env: []string{"FLARE_CHECKPOINT_FLUSH_INTERVAL=5"}, args: []string{"--dev"}, contains: `invalid value "5" for FLARE_CHECKPOINT_FLUSH_INTERVAL (--checkpoint-flush-interval): use a duration with a unit`},
		{name: "negative retention", args: []string{"--dev", "--checkpoint-retention", "-5"}, contains: `invalid value "-5" for flag --checkpoint-retention: use a non-negative whole number`},
		{name: "negative retention in the config file", args: []string{"--dev", "--config", "c.toml"}, files: map[string]string{"c.toml": "[persistence]\nretention_checkpoints = -5\n"}, contains: "persistence.retention_checkpoints = -5: use a non-negative whole number"},
		{name: "bool flag value", args: []string{"--dev", "--enable-asf=maybe"}, contains: `invalid value "maybe" for flag --enable-asf: use true or false`},
		{name: "short flag value", args: []string{"checkpoints", "list", "--dev", "-n", "x"}, contains: `invalid value "x" for flag -n: use a whole number`},
		{name: "key generate extra argument", args: []string{"key", "generate", "extra"}, contains: `unknown argument "extra"`},
		{name: "testnet without out", args: []string{"testnet", "--validators", "2"}, contains: "--out"},
		{name: "testnet zero validators", args: []string{"testnet", "--validators", "0", "--out", "net"}, contains: "--validators 0"},
		{name: "testnet port overflow", args: []string{"testnet", "--validators", "3", "--base-port", "65534", "--out", "net"}, contains: "--base-port"},
		{name: "testnet non-empty out", args: []string{"testnet", "--out", "full"}, files: map[string]string{"full/x": "x"}, contains: "not empty"},
		{name: "testnet slot too short", args: []string{"testnet", "--slot-duration", "1ms", "--out", "net"}, contains: "--slot-duration"},
		{name: "testnet leave before join", args: []string{"testnet", "--join-at", "8", "--leave-at", "8", "--out", "net"}, contains: "--leave-at 8 must be above --join-at 8"},
		{name: "testnet join at zero", args: []string{"testnet", "--join-at", "0", "--out", "net"}, contains: "--join-at must be a checkpoint number of at least 1"},
		{name: "testnet join too large a change", args: []string{"testnet", "--validators", "2", "--join-at", "8", "--out", "net"}, contains: "1 of 2 keys change, at most 0"},
		{name: "testnet joiner port overflow", args: []string{"testnet", "--validators", "3", "--base-port", "65533", "--join-at", "8", "--out", "net"}, contains: "ports 65533..65536"},
		{name: "purge-chain unknown chain", args: []string{"purge-chain", "-y", "--chain", "nosuch"}, contains: "unknown chain"},
		{name: "purge-chain no chain", args: []string{"purge-chain", "-y"}, contains: "no chain selected"},
		{name: "checkpoints without subcommand", args: []string{"checkpoints"}, contains: "missing subcommand"},
		{name: "checkpoints list unknown chain", args: []string{"checkpoints", "list", "--chain", "nosuch"}, contains: "unknown chain"},
		{name: "checkpoints show not a number", args: []string{"checkpoints", "show", "--dev", "abc"}, contains: `"abc"`},
		{name: "checkpoints show no number", args: []string{"checkpoints", "show", "--dev"}, contains: "checkpoint number"},
		{name: "checkpoints list no database", args: []string{"checkpoints", "list", "--dev"}, contains: "no checkpoint database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			for name, content := range tt.files {
				s.write(name, content, 0o600)
			}
			before := s.listing()
			r := s.run("", tt.env, tt.args...)
			requireUsageError(t, r, tt.contains)
			require.Equal(t, before, s.listing(), "a refused command line must not write anything")
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	s := newSandbox(t)
	r := s.run("", nil, "--help")
	require.Equal(t, 0, r.code)
	for _, want := range []string{"CHAIN", "VALIDATOR", "NETWORK", "LOGGING", "CHECKPOINT PERSISTENCE", "METRICS", "STORAGE",
		"--dev", "--enable-asf", "--checkpoint-persistence", "[$FLARE_CHECKPOINT_RETENTION]", "[$FLARE_BOOTNODES]",
		"build-spec", "purge-chain", "checkpoints", "testnet"} {
		require.Contains(t, r.stdout, want)
	}
	// Every node flag names its environment variable, except the one-shot
	// --init-signer-record (command line only).
	for _, f := range runFlags() {
		name := f.Names()[0]
		if name == "init-signer-record" {
			require.NotContains(t, r.stdout, "[$"+env(name)[0]+"]")
			continue
		}
		require.Contains(t, r.stdout, "[$"+env(name)[0]+"]", "flag --%s", name)
	}

	r = s.run("", nil, "version")
	require.Equal(t, 0, r.code)
	require.Regexp(t, `^flare-node \S+\ncommit: ([0-9a-f]{40}( \(modified\))?|unknown)\ngo: go1\.\S+ \S+/\S+\n$`, r.stdout)
	require.Empty(t, r.stderr)
	// go build of a git checkout embeds the commit it was built from
	// (vcs.revision); without it (-buildvcs=false, a git worktree, whose
	// .git is a file, a tree without .git) the commit is unknown.
	bi, err := buildinfo.ReadFile(binPath)
	require.NoError(t, err)
	want := "unknown"
	for _, kv := range bi.Settings {
		if kv.Key == "vcs.revision" {
			want = kv.Value
		}
	}
	require.Contains(t, r.stdout, "commit: "+want)
}

// buildinfoPkg is the package whose version and commit variables a release
// build sets with -ldflags -X (the Dockerfile does).
const buildinfoPkg = "github.com/flarechain/flare-node/internal/buildinfo"

// TestVersionLinkerOverride builds the binary with the -ldflags -X values a
// release or Docker build without .git uses (see internal/buildinfo).
func TestVersionLinkerOverride(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "flare-node")
	build := exec.Command("go", "build", "-buildvcs=false",
		"-ldflags", "-X "+buildinfoPkg+".version=9.8.7 -X "+buildinfoPkg+".commit=feedc0de", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	for _, args := range [][]string{{"version"}, {"--version"}} {
		cmd := exec.Command(bin, args...)
		out, err := cmd.Output()
		require.NoError(t, err)
		if args[0] == "version" {
			require.Regexp(t, `^flare-node 9\.8\.7\ncommit: feedc0de\ngo: go1\.`, string(out))
		} else {
			require.Equal(t, "flare-node version 9.8.7+feedc0de\n", string(out))
		}
	}
}

func TestBuildSpec(t *testing.T) {
	s := newSandbox(t)
	for _, name := range chainspec.BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			r := s.run("", nil, "build-spec", "--chain", name)
			require.Equal(t, 0, r.code, r.stderr)
			got, err := chainspec.Parse([]byte(r.stdout))
			require.NoError(t, err)
			want, err := chainspec.Builtin(name)
			require.NoError(t, err)
			require.Equal(t, want, got)

			r = s.run("", nil, "build-spec", "--chain", name, "--canonical")
			require.Equal(t, 0, r.code, r.stderr)
			require.Equal(t, string(want.CanonicalJSON())+"\n", r.stdout)
		})
	}
	t.Run("default is dev, and a written spec runs", func(t *testing.T) {
		r := s.run("", nil, "build-spec")
		require.Equal(t, 0, r.code, r.stderr)
		spec := s.write("my.json", strings.Replace(r.stdout, `"Development"`, `"Mine"`, 1), 0o644)
		r = s.run("", nil, "build-spec", "--chain", spec)
		require.Equal(t, 0, r.code, r.stderr)
		got, err := chainspec.Parse([]byte(r.stdout))
		require.NoError(t, err)
		require.Equal(t, "Mine", got.Name)
	})
}

func TestKeyCommands(t *testing.T) {
	s := newSandbox(t)
	pubRe := regexp.MustCompile(`Public key:\s+([0-9a-f]{64})`)

	// generate to a file
	r := s.run("", nil, "key", "generate", "--output", "v.key")
	require.Equal(t, 0, r.code, r.stderr)
	m := pubRe.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	fi, err := os.Stat(s.path("v.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	key, err := config.ReadKeyFile(s.path("v.key"))
	require.NoError(t, err)
	require.Equal(t, m[1], hex.EncodeToString(key.Public().(ed25519.PublicKey)))
	require.NotContains(t, r.stdout, hex.EncodeToString(key.Seed()), "a key written to a file is not printed")

	// never overwrite
	r = s.run("", nil, "key", "generate", "--output", "v.key")
	requireUsageError(t, r, "already exists")
	key2, err := config.ReadKeyFile(s.path("v.key"))
	require.NoError(t, err)
	require.True(t, key.Equal(key2))

	// generate to stdout: the printed seed gives the printed public key
	r = s.run("", nil, "key", "generate")
	require.Equal(t, 0, r.code, r.stderr)
	seedM := regexp.MustCompile(`Secret seed:\s+([0-9a-f]{64})`).FindStringSubmatch(r.stdout)
	require.NotNil(t, seedM, r.stdout)
	seed, err := hex.DecodeString(seedM[1])
	require.NoError(t, err)
	require.Equal(t, hex.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)), pubRe.FindStringSubmatch(r.stdout)[1])

	// inspect the file: same public key, no authority of the builtin chains
	r = s.run("", nil, "key", "inspect", "v.key")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, m[1], pubRe.FindStringSubmatch(r.stdout)[1])
	require.Contains(t, r.stdout, "Chain dev:  not an authority (1 authorities)")
	require.Contains(t, r.stdout, "Chain local:  not an authority (4 authorities)")
	require.NotContains(t, r.stdout, "Warning")

	// a loose mode is reported
	require.NoError(t, os.Chmod(s.path("v.key"), 0o644))
	r = s.run("", nil, "key", "inspect", "v.key")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "Warning:")

	// dev keys and their authority index
	for i, name := range []string{"alice", "bob", "charlie", "dave"} {
		r = s.run("", nil, "key", "inspect", "--dev-name", name, "--chain", "local")
		require.Equal(t, 0, r.code, r.stderr)
		dk, err := chainspec.DevKey(name)
		require.NoError(t, err)
		require.Equal(t, hex.EncodeToString(dk.Public().(ed25519.PublicKey)), pubRe.FindStringSubmatch(r.stdout)[1])
		require.Contains(t, r.stdout, fmt.Sprintf("Chain local:  authority index %d of 4 (%s)", i, name))
	}

	// node key
	nodeKey := s.path("secret_ed25519")
	_, err = p2p.LoadOrCreateNodeKey(nodeKey)
	require.NoError(t, err)
	want, err := p2p.PeerIDFromKeyFile(nodeKey)
	require.NoError(t, err)
	for _, args := range [][]string{{"--file", nodeKey}, {nodeKey}} {
		r = s.run("", nil, append([]string{"key", "inspect-node-key"}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, want.String()+"\n", r.stdout)
	}
}

// devSpecJSON is the builtin dev chain spec as a custom spec file.
var devSpecJSON = func() string {
	spec, err := chainspec.Builtin("dev")
	if err != nil {
		panic(err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// printConfig runs --print-config and decodes the printed TOML.
func printConfig(t *testing.T, s *sandbox, env []string, args ...string) config.Config {
	t.Helper()
	r := s.run("", env, append([]string{"--print-config"}, args...)...)
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	p := filepath.Join(t.TempDir(), "printed.toml")
	require.NoError(t, os.WriteFile(p, []byte(r.stdout), 0o600))
	var c config.Config
	require.NoError(t, config.LoadTOML(p, &c), r.stdout)
	return c
}

func TestConfigLayering(t *testing.T) {
	s := newSandbox(t)
	keyFile := s.write("v.key", strings.Repeat("42", 32)+"\n", 0o600)
	cfgFile := s.write("flare.toml", `
chain = "local"
base_path = "from-file"
name = "file-name"
validator = true
key_name = "charlie"
enable_asf = true
[p2p]
port = 1111
bootnodes = ["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWFile"]
max_peers = 11
[log]
level = "warn"
[persistence]
retention_checkpoints = 111
flush_interval = "1s"
prune_interval = "11s"
[metrics]
addr = "127.0.0.1:1111"
`, 0o644)

	tests := []struct {
		name  string
		env   []string
		args  []string
		check func(t *testing.T, c config.Config)
	}{
		{
			name: "defaults with --dev",
			args: []string{"--dev"},
			check: func(t *testing.T, c config.Config) {
				want := config.Default()
				want.Dev()
				want.BasePath = s.path("xdg", "flare-node") // persistent default base path
				allow := true                               // the dev chain's default, resolved
				want.P2P.AllowPrivateIP = &allow
				want.P2P.NoMDNS = true // FLARE_NO_MDNS of the sandbox
				// The effective listen addresses are printed.
				want.P2P.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/30333"}
				require.Equal(t, want, c)
			},
		},
		{
			name: "listen addresses follow --port",
			args: []string{"--dev", "--port", "4321"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, p2p.DefaultListenAddrs(4321), c.P2P.ListenAddrs)
				require.Equal(t, []string{"/ip4/0.0.0.0/tcp/4321"}, c.P2P.ListenAddrs)
			},
		},
		{
			name: "file only",
			args: []string{"--config", cfgFile},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "local", c.Chain)
				require.Equal(t, s.path("from-file"), c.BasePath, "relative base path resolved against the working directory")
				require.Equal(t, "charlie", c.KeyName)
				require.True(t, c.Validator)
				require.True(t, c.EnableASF)
				require.Equal(t, 1111, c.P2P.Port)
				require.Equal(t, 11, c.P2P.MaxPeers)
				require.Equal(t, "warn", c.Log.Level)
				require.Equal(t, "text", c.Log.Format, "unset in the file: default")
				require.Equal(t, config.PersistenceConfig{Enabled: true, RetentionCheckpoints: 111, FlushInterval: time.Second, PruneInterval: 11 * time.Second}, c.Persistence)
				require.Equal(t, "127.0.0.1:1111", c.Metrics.Addr)
			},
		},
		{
			name: "env overrides file",
			env:  []string{"FLARE_CONFIG=" + cfgFile, "FLARE_PORT=2222", "FLARE_LOG_LEVEL=debug", "FLARE_BOB=true", "FLARE_CHECKPOINT_RETENTION=222", "FLARE_BOOTNODES=/ip4/127.0.0.1/tcp/2/p2p/A,/ip4/127.0.0.1/tcp/3/p2p/B"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, 2222, c.P2P.Port)
				require.Equal(t, "debug", c.Log.Level)
				require.Equal(t, "bob", c.KeyName)
				require.Equal(t, uint64(222), c.Persistence.RetentionCheckpoints)
				require.Equal(t, []string{"/ip4/127.0.0.1/tcp/2/p2p/A", "/ip4/127.0.0.1/tcp/3/p2p/B"}, c.P2P.Bootnodes)
				require.Equal(t, 11, c.P2P.MaxPeers, "not in the environment: from the file")
			},
		},
		{
			name: "flags override env and file",
			env:  []string{"FLARE_PORT=2222", "FLARE_LOG_LEVEL=debug", "FLARE_NAME=env-name"},
			args: []string{"--config", cfgFile, "--port", "3333", "--log-level", "error", "--key-file", keyFile,
				"--checkpoint-persistence=false", "--checkpoint-flush-interval", "3s", "--bootnodes", "/ip4/127.0.0.1/tcp/9/p2p/F",
				"--bootnodes", "/ip4/127.0.0.1/tcp/8/p2p/G", "--listen-addr", "/ip4/127.0.0.1/tcp/3333", "--base-path", "flag-base"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, 3333, c.P2P.Port)
				require.Equal(t, "error", c.Log.Level)
				require.Equal(t, "env-name", c.Name, "only in env and file: env wins")
				require.Equal(t, "", c.KeyName, "--key-file replaces the file's dev key")
				require.Equal(t, keyFile, c.KeyFile)
				require.False(t, c.Persistence.Enabled)
				require.Equal(t, 3*time.Second, c.Persistence.FlushInterval)
				require.Equal(t, 11*time.Second, c.Persistence.PruneInterval)
				require.Equal(t, []string{"/ip4/127.0.0.1/tcp/9/p2p/F", "/ip4/127.0.0.1/tcp/8/p2p/G"}, c.P2P.Bootnodes)
				require.Equal(t, []string{"/ip4/127.0.0.1/tcp/3333"}, c.P2P.ListenAddrs)
				require.Equal(t, s.path("flag-base"), c.BasePath)
			},
		},
		{
			name: "rpc address: flag, env, localhost when the host is left out",
			env:  []string{"FLARE_METRICS_ADDR=127.0.0.1:9615"},
			args: []string{"--dev", "--rpc-addr", ":9933"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "127.0.0.1:9933", c.RPC.Addr)
				require.Equal(t, "127.0.0.1:9615", c.Metrics.Addr)
			},
		},
		{
			name: "rpc address from the environment",
			env:  []string{"FLARE_RPC_ADDR=0.0.0.0:9934"},
			args: []string{"--dev"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "0.0.0.0:9934", c.RPC.Addr)
			},
		},
		{
			name: "private addresses: --no-private-ip on dev, chain default elsewhere",
			args: []string{"--dev", "--no-private-ip"},
			check: func(t *testing.T, c config.Config) {
				require.False(t, *c.P2P.AllowPrivateIP)
			},
		},
		{
			name: "private addresses: --allow-private-ip, mDNS back on by env",
			env:  []string{"FLARE_NO_MDNS=false"},
			args: []string{"--chain", "local", "--allow-private-ip", "--bootnodes", "/dns4/boot.example.com/tcp/1/p2p/X"},
			check: func(t *testing.T, c config.Config) {
				require.True(t, *c.P2P.AllowPrivateIP)
				require.False(t, c.P2P.NoMDNS)
			},
		},
		{
			name: "--validator=false wins over an implied validator",
			args: []string{"--chain", "local", "--alice", "--validator=false"},
			check: func(t *testing.T, c config.Config) {
				require.False(t, c.Validator)
				require.Equal(t, "alice", c.KeyName)
			},
		},
		{
			name: "--dev refined by flags, --tmp",
			args: []string{"--dev", "--chain", "local", "--bob", "--enable-asf", "--tmp", "--checkpoint-retention", "7"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "local", c.Chain)
				require.Equal(t, "bob", c.KeyName)
				require.True(t, c.EnableASF)
				require.True(t, c.Tmp)
				require.Equal(t, uint64(7), c.Persistence.RetentionCheckpoints)
				require.Equal(t, config.TestnetPersistence().FlushInterval, c.Persistence.FlushInterval)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.listing()
			c := printConfig(t, s, tt.env, tt.args...)
			tt.check(t, c)
			require.Equal(t, before, s.listing(), "--print-config writes nothing")
		})
	}
}

func TestTestnet(t *testing.T) {
	s := newSandbox(t)
	const n = 3
	r := s.run("", nil, "testnet", "--validators", fmt.Sprint(n), "--out", "net", "--base-port", "41000", "--metrics-base-port", "42000",
		"--bench-accounts", "2")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	dir := s.path("net")
	require.Contains(t, r.stdout, dir)

	spec, err := chainspec.Load(filepath.Join(dir, testnetSpecFile))
	require.NoError(t, err)
	require.Len(t, spec.Authorities, n)
	// Every validator key it writes holds a genesis balance, and so do the
	// first --bench-accounts bench keys.
	require.Len(t, spec.Balances, n+2)
	for i, b := range spec.Balances[:n] {
		require.Equal(t, "0x"+strings.ToLower(strings.TrimPrefix(spec.Authorities[i].PublicKey, "0x")), b.Address)
		require.Equal(t, uint64(chainspec.DevBalance), b.Balance)
	}
	for i, b := range spec.Balances[n:] {
		require.Equal(t, "0x"+hex.EncodeToString(chainspec.BenchKey(i).Public().(ed25519.PublicKey)), b.Address)
	}
	set := spec.AuthoritySet()

	env := readEnvFile(t, filepath.Join(dir, testnetEnvFile))
	require.Equal(t, fmt.Sprint(n), env["FLARE_TESTNET_NODES"])
	require.Equal(t, binPath, env["FLARE_TESTNET_BIN"])
	require.Equal(t, genesisOf(spec).String(), env["FLARE_TESTNET_GENESIS"])

	cmds, err := os.ReadFile(filepath.Join(dir, testnetCommandsFile))
	require.NoError(t, err)
	var cmdLines []string
	for _, l := range strings.Split(string(cmds), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			cmdLines = append(cmdLines, l)
		}
	}
	require.Len(t, cmdLines, n)

	bootnode := fmt.Sprintf("/ip4/127.0.0.1/tcp/41000/p2p/%s", env["NODE0_PEER_ID"])
	for i := range n {
		p := fmt.Sprintf("NODE%d_", i)
		// validator key: in the spec at index i, mode 0600
		key, err := config.ReadKeyFile(env[p+"KEY_FILE"])
		require.NoError(t, err)
		idx, ok := set.IndexOf(key.Public().(ed25519.PublicKey))
		require.True(t, ok)
		require.Equal(t, i, int(idx))
		require.NoError(t, config.CheckKeyFileMode(env[p+"KEY_FILE"]))
		// node key: the peer id in nodes.env
		nodeCfg := config.Config{BasePath: env[p+"BASE_PATH"], Spec: spec}
		id, err := p2p.PeerIDFromKeyFile(nodeCfg.NodeKeyPath())
		require.NoError(t, err)
		require.Equal(t, id.String(), env[p+"PEER_ID"])
		require.Equal(t, fmt.Sprint(41000+i), env[p+"PORT"])

		// the command line: as written in commands.txt and nodes.env, and
		// accepted by the node's own validation
		require.Equal(t, cmdLines[i], env[p+"CMD"])
		args := shellSplit(t, cmdLines[i])
		require.Equal(t, binPath, args[0])
		if i == 0 {
			require.NotContains(t, cmdLines[i], "--bootnodes")
		} else {
			require.Contains(t, cmdLines[i], "--bootnodes "+bootnode)
		}
		c := printConfig(t, s, nil, args[1:]...)
		require.Equal(t, filepath.Join(dir, testnetSpecFile), c.Chain)
		require.True(t, c.Validator)
		require.True(t, c.EnableASF)
		require.Equal(t, env[p+"KEY_FILE"], c.KeyFile)
		require.Equal(t, env[p+"BASE_PATH"], c.BasePath)
		require.Equal(t, []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 41000+i)}, c.P2P.ListenAddrs)
		require.Equal(t, fmt.Sprintf("127.0.0.1:%d", 42000+i), c.Metrics.Addr)
		require.Equal(t, config.TestnetPersistence(), c.Persistence)
	}

	// metrics on by default (node i at 9615 + i), so that testnet.sh status
	// can read each node's peers
	r = s.run("", nil, "testnet", "--validators", "2", "--out", "net-default-metrics", "--base-port", "41000")
	require.Equal(t, 0, r.code, r.stderr)
	env = readEnvFile(t, s.path("net-default-metrics", testnetEnvFile))
	require.Equal(t, "127.0.0.1:9615", env["NODE0_METRICS_ADDR"])
	require.Equal(t, "127.0.0.1:9616", env["NODE1_METRICS_ADDR"])
	requireUsageError(t, s.run("", nil, "testnet", "--validators", "2", "--out", "net-overlap", "--base-port", "9614"), "overlaps")

	// a second run into the same directory is refused and changes nothing
	before := s.listing()
	requireUsageError(t, s.run("", nil, "testnet", "--validators", "2", "--out", "net"), "not empty")
	require.Equal(t, before, s.listing())
}

// TestTestnetJoinLeave: --join-at writes a fifth validator outside the
// genesis set and schedules it as set 1; --leave-at schedules node0's
// removal as set 2.
func TestTestnetJoinLeave(t *testing.T) {
	s := newSandbox(t)
	const n = 4
	r := s.run("", nil, "testnet", "--validators", fmt.Sprint(n), "--out", "net", "--base-port", "41100", "--metrics-base-port", "42100",
		"--join-at", "8", "--leave-at", "16")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	require.Contains(t, r.stdout, "Joins:       node4 at hand-off checkpoint 8 (set 1)")
	require.Contains(t, r.stdout, "Leaves:      node0 at hand-off checkpoint 16 (set 2)")
	dir := s.path("net")

	spec, err := chainspec.Load(filepath.Join(dir, testnetSpecFile))
	require.NoError(t, err)
	require.Len(t, spec.Authorities, n)
	env := readEnvFile(t, filepath.Join(dir, testnetEnvFile))
	require.Equal(t, fmt.Sprint(n+1), env["FLARE_TESTNET_NODES"])
	require.Equal(t, fmt.Sprint(n), env["FLARE_TESTNET_GENESIS_VALIDATORS"])
	require.Equal(t, "8", env["FLARE_TESTNET_JOIN_AT"])
	require.Equal(t, "16", env["FLARE_TESTNET_LEAVE_AT"])
	require.Equal(t, genesisOf(spec).String(), env["FLARE_TESTNET_GENESIS"])

	pubs := make([]string, n+1)
	for i := range pubs {
		p := fmt.Sprintf("NODE%d_", i)
		require.Equal(t, nodeName(i), env[p+"NAME"])
		require.Equal(t, fmt.Sprint(41100+i), env[p+"PORT"])
		key, err := config.ReadKeyFile(env[p+"KEY_FILE"])
		require.NoError(t, err)
		pubs[i] = hex.EncodeToString(key.Public().(ed25519.PublicKey))
		require.Equal(t, pubs[i], env[p+"PUBLIC_KEY"])
		c := printConfig(t, s, nil, shellSplit(t, env[p+"CMD"])[1:]...)
		require.True(t, c.Validator)
		require.Equal(t, env[p+"BASE_PATH"], c.BasePath)
	}
	_, inGenesis := spec.AuthoritySet().IndexOf(mustDecodeHex(t, pubs[n]))
	require.False(t, inGenesis, "the joiner is not in the genesis set")
	require.Equal(t, []chainspec.AuthorityChange{
		{SetID: 1, HandOff: 8, Authorities: pubs},
		{SetID: 2, HandOff: 16, Authorities: pubs[1:]},
	}, spec.AuthorityChanges)
	require.NoError(t, spec.Schedule().Validate())

	// build-spec prints the changes and the file round-trips.
	r = s.run("", nil, "build-spec", "--chain", filepath.Join(dir, testnetSpecFile))
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"authority_changes": [`)
	printed, err := chainspec.Parse([]byte(r.stdout))
	require.NoError(t, err)
	require.Equal(t, spec, printed)

	// `authorities` on a stopped node: the schedule alone, then with the
	// first hand-off in its checkpoint database.
	specPath := filepath.Join(dir, testnetSpecFile)
	r = s.run("", nil, "authorities", "--chain", specPath, "--base-path", env["NODE1_BASE_PATH"])
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "authority set 0 in force since checkpoint 0 (4 keys, quorum 3)")
	require.Contains(t, r.stdout, "set 1 takes over once set 0 finalizes checkpoint 8 or above (5 keys)")
	require.Contains(t, r.stdout, "set 2 takes over once set 1 finalizes checkpoint 16 or above (4 keys)")
	{
		g := genesisOf(spec)
		cp := func(n uint64) checkpoint.Checkpoint {
			return checkpoint.Checkpoint{Number: n, Hash: checkpoint.HashOf([]byte{byte(n)})}
		}
		v := checkpoint.Vote{Genesis: g, SetID: 0, Source: cp(8), Target: cp(9)}
		var votes []checkpoint.SignedVote
		for i := range 3 {
			key, err := config.ReadKeyFile(env[fmt.Sprintf("NODE%d_KEY_FILE", i)])
			require.NoError(t, err)
			votes = append(votes, checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i), Signature: finality.NewKeySigner(key).Sign(v.SigningBytes())})
		}
		cert, err := checkpoint.NewCertificate(votes)
		require.NoError(t, err)
		c := config.Default()
		c.Chain, c.BasePath = specPath, env["NODE1_BASE_PATH"]
		require.NoError(t, c.Validate())
		db, err := checkpointdb.Open(c.CheckpointDBPath(), checkpointdb.Options{Genesis: g})
		require.NoError(t, err)
		require.NoError(t, db.StoreHandOff(context.Background(), cert))
		require.NoError(t, db.Close())
	}
	r = s.run("", nil, "authorities", "--chain", specPath, "--base-path", env["NODE1_BASE_PATH"])
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "authority set 1 in force since checkpoint 9 (5 keys, quorum 4)")
	require.NotContains(t, r.stdout, "set 1 takes over")
	require.Contains(t, r.stdout, "set 2 takes over once set 1 finalizes checkpoint 16 or above (4 keys)")
	r = s.run("", nil, "authorities", "--chain", specPath, "--base-path", env["NODE1_BASE_PATH"], "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var doc api.Authorities
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc))
	require.Equal(t, uint64(1), doc.SetID)
	require.Len(t, doc.Authorities, 5)
	require.Equal(t, "0x"+pubs[4], doc.Authorities[4].PublicKey)

	// --leave-at alone removes node0 from the genesis set as set 1.
	r = s.run("", nil, "testnet", "--validators", "3", "--out", "net-leave", "--base-port", "41200", "--metrics-base-port", "0", "--leave-at", "5")
	require.Equal(t, 0, r.code, r.stderr)
	spec, err = chainspec.Load(s.path("net-leave", testnetSpecFile))
	require.NoError(t, err)
	env = readEnvFile(t, s.path("net-leave", testnetEnvFile))
	require.Equal(t, "3", env["FLARE_TESTNET_NODES"])
	require.Equal(t, "", env["FLARE_TESTNET_JOIN_AT"])
	require.Len(t, spec.AuthorityChanges, 1)
	require.Equal(t, uint64(1), spec.AuthorityChanges[0].SetID)
	require.Equal(t, uint64(5), spec.AuthorityChanges[0].HandOff)
	require.Equal(t, []string{spec.Authorities[1].PublicKey, spec.Authorities[2].PublicKey}, spec.AuthorityChanges[0].Authorities)
}

func mustDecodeHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// readEnvFile reads nodes.env by letting a shell source it.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `set -a; . "$1"; env -0`, "sh", path).Output()
	require.NoError(t, err)
	m := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// shellSplit splits a command line the way a POSIX shell does.
func shellSplit(t *testing.T, line string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `eval "set -- $1"; for a in "$@"; do printf '%s\0' "$a"; done`, "sh", line).Output()
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

func TestShellQuote(t *testing.T) {
	tests := []string{"", "plain", "/a/b-c_d.e:f", "with space", "it's", `"dq"`, "$HOME", "a\nb", "back\\slash", "*?[]", "--flag=v,w"}
	line := shellJoin(tests)
	require.Equal(t, tests, shellSplit(t, line))
	require.Equal(t, "plain", shellQuote("plain"))
	require.Equal(t, "''", shellQuote(""))
}
