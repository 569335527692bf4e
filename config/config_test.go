package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
)

// validBase returns a valid dev configuration rooted in a temp dir.
func validBase(t *testing.T) Config {
	t.Helper()
	c := Default()
	c.Chain = "local"
	c.BasePath = filepath.Join(t.TempDir(), "base")
	return c
}

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), mode))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

func TestDefault(t *testing.T) {
	c := Default()
	require.Equal(t, "", c.Chain)
	require.Equal(t, DefaultBasePath(), c.BasePath)
	require.False(t, c.Validator)
	require.False(t, c.EnableASF)
	require.Equal(t, DefaultPort, c.P2P.Port)
	require.Equal(t, DefaultMaxPeers, c.P2P.MaxPeers)
	require.Equal(t, LogConfig{Level: "info", Format: "text", MaxSizeMiB: 100, MaxBackups: 10}, c.Log)
	require.Equal(t, PersistenceConfig{Enabled: true, RetentionCheckpoints: 1000, FlushInterval: 10 * time.Second, PruneInterval: 300 * time.Second}, c.Persistence)
	require.Equal(t, PersistenceConfig{Enabled: true, RetentionCheckpoints: 100, FlushInterval: 5 * time.Second, PruneInterval: 60 * time.Second}, TestnetPersistence())
	require.Equal(t, "", c.Metrics.Addr)
	require.EqualValues(t, 256, c.MinFreeDiskMiB)
	require.EqualValues(t, 256<<20, c.MinFreeDiskBytes())

	d := Default()
	d.Dev()
	require.Equal(t, "dev", d.Chain)
	require.True(t, d.Validator)
	require.Equal(t, "alice", d.KeyName)
	require.False(t, d.EnableASF, "--dev does not imply --enable-asf")
	require.Equal(t, TestnetPersistence(), d.Persistence)
}

func TestDefaultBasePath(t *testing.T) {
	tests := []struct {
		name, xdg, home, want string
	}{
		{"xdg", "/data/xdg", "/home/u", "/data/xdg/flare-node"},
		{"relative xdg ignored", "rel/xdg", "/home/u", "/home/u/.local/share/flare-node"},
		{"home", "", "/home/u", "/home/u/.local/share/flare-node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_DATA_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			require.Equal(t, tt.want, DefaultBasePath())
		})
	}
}

func TestValidate(t *testing.T) {
	keySeed := strings.Repeat("ab", 32)
	goodKey := writeFile(t, "key", keySeed+"\n", 0o600)
	badKey := writeFile(t, "badkey", "not a key\n", 0o600)
	specFile := writeFile(t, "spec.json", `{"name":"X","id":"x","network_id":"x","genesis_timestamp_ms":1,"slot_duration_ms":1000,"checkpoint_interval":4,"set_id":0,"authorities":[{"name":"a","public_key":"`+strings.Repeat("11", 32)+`"}]}`, 0o644)
	brokenSpec := writeFile(t, "broken.json", `{"name":`, 0o644)
	notDir := writeFile(t, "file", "x", 0o644)

	tests := []struct {
		name   string
		mutate func(c *Config)
		errHas string // "" = valid
	}{
		{"valid local", func(c *Config) {}, ""},
		{"valid dev preset", func(c *Config) { c.Dev() }, ""},
		{"valid spec file", func(c *Config) { c.Chain = specFile }, ""},
		{"valid key file", func(c *Config) { c.Validator, c.KeyFile = true, goodKey }, ""},
		{"valid tmp without base path", func(c *Config) { c.Tmp, c.BasePath = true, "" }, ""},
		{"valid port 0", func(c *Config) { c.P2P.Port = 0 }, ""},
		{"valid addrs", func(c *Config) {
			c.P2P.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/4001"}
			c.P2P.Bootnodes = []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWExample"}
		}, ""},
		{"valid metrics", func(c *Config) { c.Metrics.Addr = "127.0.0.1:9615" }, ""},
		{"valid pprof", func(c *Config) { c.Metrics.Addr, c.Metrics.Pprof = "127.0.0.1:9615", true }, ""},
		{"valid rpc", func(c *Config) { c.RPC.Addr = "0.0.0.0:9933" }, ""},
		{"valid rpc and metrics on port 0", func(c *Config) { c.RPC.Addr, c.Metrics.Addr = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"valid persistence off", func(c *Config) { c.Persistence.Enabled = false }, ""},
		{"no chain", func(c *Config) { c.Chain = "" }, "no chain selected"},
		{"unknown chain", func(c *Config) { c.Chain = "nosuchchain" }, `unknown chain "nosuchchain"`},
		{"broken spec", func(c *Config) { c.Chain = brokenSpec }, "invalid chain spec"},
		{"empty base path", func(c *Config) { c.BasePath = " " }, "base_path (--base-path) is empty"},
		{"base path is a file", func(c *Config) { c.BasePath = notDir }, "is not a directory"},
		{"long name", func(c *Config) { c.Name = strings.Repeat("n", 65) }, "name (--name)"},
		{"control char name", func(c *Config) { c.Name = "a\nb" }, "non-printable"},
		{"validator without key", func(c *Config) { c.Validator = true }, "validator mode needs a key"},
		{"unknown dev key", func(c *Config) { c.Validator, c.KeyName = true, "mallory" }, `key_name "mallory" is not a dev key`},
		{"both keys", func(c *Config) { c.Validator, c.KeyName, c.KeyFile = true, "alice", goodKey }, "choose one"},
		{"missing key file", func(c *Config) { c.Validator, c.KeyFile = true, filepath.Join(t.TempDir(), "nope") }, "no such file"},
		{"malformed key file", func(c *Config) { c.Validator, c.KeyFile = true, badKey }, "malformed validator key file"},
		{"port too big", func(c *Config) { c.P2P.Port = 70000 }, "p2p.port (--port) 70000"},
		{"negative port", func(c *Config) { c.P2P.Port = -1 }, "p2p.port (--port) -1"},
		{"bad listen addr", func(c *Config) { c.P2P.ListenAddrs = []string{"127.0.0.1:4001"} }, "p2p.listen_addrs (--listen-addr)"},
		{"bootnode without peer id", func(c *Config) { c.P2P.Bootnodes = []string{"/ip4/127.0.0.1/tcp/4001"} }, "no /p2p/<peer id> suffix"},
		{"bootnode empty peer id", func(c *Config) { c.P2P.Bootnodes = []string{"/ip4/127.0.0.1/tcp/4001/p2p/"} }, "p2p.bootnodes"},
		{"zero max peers", func(c *Config) { c.P2P.MaxPeers = 0 }, "p2p.max_peers (--max-peers) 0"},
		{"bad log level", func(c *Config) { c.Log.Level = "loud" }, `log.level (--log-level) "loud"`},
		{"bad log format", func(c *Config) { c.Log.Format = "xml" }, `log.format (--log-format) "xml"`},
		{"valid log file", func(c *Config) {
			c.Log.File, c.Log.MaxSizeMiB, c.Log.MaxBackups, c.Log.MaxAgeDays = "node.log", 1, 0, 30
		}, ""},
		{"zero log size", func(c *Config) { c.Log.MaxSizeMiB = 0 }, "log.max_size_mib (--log-max-size) 0"},
		{"negative log backups", func(c *Config) { c.Log.MaxBackups = -1 }, "log.max_backups (--log-max-backups) -1"},
		{"negative log age", func(c *Config) { c.Log.MaxAgeDays = -1 }, "log.max_age_days (--log-max-age) -1"},
		{"valid pid file", func(c *Config) { c.PIDFile = "flare.pid" }, ""},
		{"zero retention", func(c *Config) { c.Persistence.RetentionCheckpoints = 0 }, "retention_checkpoints"},
		{"nanosecond flush", func(c *Config) { c.Persistence.FlushInterval = 10 }, "flush_interval"},
		{"zero prune", func(c *Config) { c.Persistence.PruneInterval = 0 }, "prune_interval"},
		{"bad metrics addr", func(c *Config) { c.Metrics.Addr = "9615" }, "metrics.addr (--metrics-addr)"},
		{"pprof without metrics", func(c *Config) { c.Metrics.Pprof = true }, "metrics.pprof (--pprof) needs metrics.addr"},
		{"bad rpc addr", func(c *Config) { c.RPC.Addr = "9933" }, "rpc.addr (--rpc-addr)"},
		{"rpc on the metrics addr", func(c *Config) { c.RPC.Addr, c.Metrics.Addr = "127.0.0.1:9615", "127.0.0.1:9615" }, "is the metrics address"},
		{"huge min free disk", func(c *Config) { c.MinFreeDiskMiB = 1 << 40 }, "min_free_disk_mib (--min-free-disk)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase(t)
			tt.mutate(&c)
			before := c.BasePath
			err := c.Validate()
			if tt.errHas == "" {
				require.NoError(t, err)
				require.NotNil(t, c.Spec)
				if !c.Tmp {
					require.True(t, filepath.IsAbs(c.BasePath))
				}
				_, statErr := os.Stat(before)
				require.True(t, before == "" || os.IsNotExist(statErr) || before == notDir, "Validate must not create the base path")
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.errHas)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.NotContains(t, err.Error(), "\n")
			require.Nil(t, c.Spec)
		})
	}
}

func TestValidateRelativePaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.WriteFile("k", []byte(strings.Repeat("cd", 32)), 0o600))
	c := Default()
	c.Chain, c.BasePath, c.Validator, c.KeyFile = "dev", "data", true, "k"
	require.NoError(t, c.Validate())
	// t.TempDir may sit behind a symlink; compare against the resolved cwd.
	wd, err := os.Getwd()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(wd, "data"), c.BasePath)
	require.Equal(t, filepath.Join(wd, "k"), c.KeyFile)
	_, err = os.Stat("data")
	require.True(t, os.IsNotExist(err))
}

func TestPaths(t *testing.T) {
	c := Default()
	c.Chain, c.BasePath = "local", "/srv/flare"
	require.NoError(t, c.Validate())
	require.Equal(t, "/srv/flare/chains/local", c.ChainDir())
	require.Equal(t, "/srv/flare/chains/local/db/chain", c.ChainDBPath())
	require.Equal(t, "/srv/flare/chains/local/db/checkpoints", c.CheckpointDBPath())
	require.Equal(t, "/srv/flare/chains/local/network/secret_ed25519", c.NodeKeyPath())
	require.Equal(t, "/srv/flare/chains/local/network/peers.json", c.AddressBookPath())
}

func TestPrivateAddressPolicy(t *testing.T) {
	const id = "/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	specFile := writeFile(t, "spec.json", `{"name":"X","id":"x","network_id":"x","genesis_timestamp_ms":1,"slot_duration_ms":1000,"checkpoint_interval":4,"set_id":0,"authorities":[{"name":"a","public_key":"`+strings.Repeat("11", 32)+`"}]}`, 0o644)
	yes, no := true, false
	for _, tc := range []struct {
		name      string
		chain     string
		bootnodes []string
		listen    []string
		set       *bool
		want      bool
	}{
		{"dev chain", "dev", nil, nil, nil, true},
		{"local chain with a public bootnode", "local", []string{"/ip4/8.8.8.8/tcp/30333" + id}, nil, nil, true},
		{"custom chain, public bootnode", specFile, []string{"/ip4/8.8.8.8/tcp/30333" + id}, nil, nil, false},
		{"custom chain, DNS bootnode", specFile, []string{"/dns4/boot.example.com/tcp/30333" + id}, nil, nil, false},
		{"custom chain, loopback bootnode", specFile, []string{"/ip4/127.0.0.1/tcp/30333" + id}, nil, nil, true},
		{"custom chain, RFC 1918 bootnode among public ones", specFile, []string{"/ip4/8.8.8.8/tcp/30333" + id, "/ip4/192.168.1.2/tcp/30333" + id}, nil, nil, true},
		{"custom chain, no bootnodes, default listen address", specFile, nil, nil, nil, false},
		{"custom chain, no bootnodes, loopback listen address", specFile, nil, []string{"/ip4/127.0.0.1/tcp/30333"}, nil, true},
		{"custom chain, no bootnodes, wildcard listen address", specFile, nil, []string{"/ip4/0.0.0.0/tcp/30333"}, nil, false},
		{"custom chain, no bootnodes, loopback and public listen", specFile, nil, []string{"/ip4/127.0.0.1/tcp/1", "/ip4/8.8.8.8/tcp/1"}, nil, false},
		{"--no-private-ip on dev", "dev", nil, nil, &no, false},
		{"--allow-private-ip on a custom chain", specFile, []string{"/ip4/8.8.8.8/tcp/30333" + id}, nil, &yes, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validBase(t)
			c.Chain, c.P2P.Bootnodes, c.P2P.ListenAddrs, c.P2P.AllowPrivateIP = tc.chain, tc.bootnodes, tc.listen, tc.set
			if tc.set == nil && !strings.HasSuffix(tc.chain, ".json") {
				require.Equal(t, tc.want, c.PrivateIPAllowed(), "before Validate")
			}
			require.NoError(t, c.Validate())
			require.Equal(t, tc.want, c.PrivateIPAllowed())
			require.NotNil(t, c.P2P.AllowPrivateIP)
			require.Equal(t, tc.want, *c.P2P.AllowPrivateIP)
			// Idempotent.
			require.NoError(t, c.Validate())
			require.Equal(t, tc.want, *c.P2P.AllowPrivateIP)
		})
	}
}

func TestMDNSEnabled(t *testing.T) {
	specFile := writeFile(t, "spec.json", `{"name":"X","id":"x","network_id":"x","genesis_timestamp_ms":1,"slot_duration_ms":1000,"checkpoint_interval":4,"set_id":0,"authorities":[{"name":"a","public_key":"`+strings.Repeat("11", 32)+`"}]}`, 0o644)
	for _, tc := range []struct {
		chain  string
		noMDNS bool
		want   bool
	}{
		{"dev", false, true}, {"local", false, true}, {"dev", true, false}, {specFile, false, false},
	} {
		c := validBase(t)
		c.Chain, c.P2P.NoMDNS = tc.chain, tc.noMDNS
		require.False(t, c.MDNSEnabled(), "before Validate")
		require.NoError(t, c.Validate())
		require.Equal(t, tc.want, c.MDNSEnabled(), "%s no_mdns=%v", tc.chain, tc.noMDNS)
	}
}

func TestValidatorKey(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	dir := t.TempDir()
	kf := filepath.Join(dir, "validator.key")
	require.NoError(t, WriteKeyFile(kf, priv))
	fi, err := os.Stat(kf)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.ErrorIs(t, WriteKeyFile(kf, priv), os.ErrExist, "never overwrite a key")

	alice, err := chainspec.DevKey("alice")
	require.NoError(t, err)
	seedHex := string(EncodeKeyFile(priv))
	tests := []struct {
		name    string
		cfg     Config
		content string // written to KeyFile when set
		want    ed25519.PrivateKey
		err     error
	}{
		{name: "dev key", cfg: Config{KeyName: "alice"}, want: alice},
		{name: "written key file", cfg: Config{KeyFile: kf}, want: priv},
		{name: "0x prefix and spaces", cfg: Config{KeyFile: filepath.Join(dir, "k2")}, content: "  0x" + strings.TrimSpace(seedHex) + "\n\n", want: priv},
		{name: "uppercase hex", cfg: Config{KeyFile: filepath.Join(dir, "k3")}, content: strings.ToUpper(seedHex), want: priv},
		{name: "none", cfg: Config{}, err: ErrNoValidatorKey},
		{name: "unknown dev key", cfg: Config{KeyName: "zed"}, err: chainspec.ErrUnknownDevKey},
		{name: "short seed", cfg: Config{KeyFile: filepath.Join(dir, "k4")}, content: "abcd", err: ErrBadKeyFile},
		{name: "not hex", cfg: Config{KeyFile: filepath.Join(dir, "k5")}, content: strings.Repeat("zz", 32), err: ErrBadKeyFile},
		{name: "private key instead of seed", cfg: Config{KeyFile: filepath.Join(dir, "k6")}, content: strings.Repeat("ab", 64), err: ErrBadKeyFile},
		{name: "huge file", cfg: Config{KeyFile: filepath.Join(dir, "k7")}, content: strings.Repeat("a", 5000), err: ErrBadKeyFile},
		{name: "missing file", cfg: Config{KeyFile: filepath.Join(dir, "missing")}, err: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.content != "" {
				require.NoError(t, os.WriteFile(tt.cfg.KeyFile, []byte(tt.content), 0o600))
			}
			got, err := tt.cfg.ValidatorKey()
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.True(t, tt.want.Equal(got))
		})
	}
}

func TestCheckKeyFileModeAndWarnings(t *testing.T) {
	seed := strings.Repeat("ef", 32)
	tests := []struct {
		name     string
		mode     os.FileMode
		insecure bool
	}{
		{"0600", 0o600, false},
		{"0400", 0o400, false},
		{"0640", 0o640, true},
		{"0644", 0o644, true},
		{"0602", 0o602, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "key", seed, tt.mode)
			err := CheckKeyFileMode(p)
			c := validBase(t)
			c.Validator, c.KeyFile = true, p
			require.NoError(t, c.Validate(), "a loose mode is a warning, not an error")
			if tt.insecure {
				require.ErrorIs(t, err, ErrInsecureKeyFile)
				require.Len(t, c.Warnings(), 1)
				require.Contains(t, c.Warnings()[0], "0600")
			} else {
				require.NoError(t, err)
				require.Empty(t, c.Warnings())
			}
		})
	}

	t.Run("validator without persistence", func(t *testing.T) {
		c := validBase(t)
		c.Validator, c.KeyName, c.EnableASF, c.Persistence.Enabled = true, "alice", true, false
		require.NoError(t, c.Validate())
		require.Len(t, c.Warnings(), 1)
		require.Contains(t, c.Warnings()[0], "will not vote")
	})
	t.Run("validator key file on a temporary base path", func(t *testing.T) {
		c := validBase(t)
		c.Validator, c.KeyFile, c.Tmp = true, writeFile(t, "key", seed, 0o600), true
		require.NoError(t, c.Validate())
		require.Len(t, c.Warnings(), 1)
		require.Contains(t, c.Warnings()[0], "double sign")
	})
	t.Run("dev key on a custom chain", func(t *testing.T) {
		alice, err := chainspec.DevKey("alice")
		require.NoError(t, err)
		spec, err := chainspec.Builtin("local")
		require.NoError(t, err)
		spec.ID, spec.Name = "custom", "Custom"
		_ = alice
		b, err := json.Marshal(spec)
		require.NoError(t, err)
		c := validBase(t)
		c.Chain = writeFile(t, "custom.json", string(b), 0o644)
		c.Validator, c.KeyName = true, "alice"
		require.NoError(t, c.Validate())
		require.Len(t, c.Warnings(), 1)
		require.Contains(t, c.Warnings()[0], "publicly known dev key")
	})
}

// TestDevKeyMustBeAnAuthority: a dev key validates only on a chain whose
// spec lists its public key, builtin or custom (integration tests run custom
// specs derived from local that keep the dev keys).
func TestDevKeyMustBeAnAuthority(t *testing.T) {
	customOf := func(t *testing.T, edit func(*chainspec.Spec)) string {
		spec, err := chainspec.Builtin("local")
		require.NoError(t, err)
		spec.ID, spec.Name = "custom", "Custom"
		edit(spec)
		b, err := json.Marshal(spec)
		require.NoError(t, err)
		return writeFile(t, "custom.json", string(b), 0o644)
	}
	tests := []struct {
		name, chain, key string
		validator        bool
		refused          bool
	}{
		{"alice on dev", "dev", "alice", true, false},
		{"bob on dev", "dev", "bob", true, true},
		{"dave on local", "local", "dave", true, false},
		{"eve on local", "local", "eve", true, true},
		{"bob on dev, not a validator", "dev", "bob", false, false},
		{"custom spec keeping the dev keys", "keep", "charlie", true, false},
		{"custom spec without the key", "drop", "charlie", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase(t)
			c.Chain = tt.chain
			switch tt.chain {
			case "keep":
				c.Chain = customOf(t, func(*chainspec.Spec) {})
			case "drop":
				c.Chain = customOf(t, func(s *chainspec.Spec) {
					eve, err := chainspec.DevKey("eve")
					require.NoError(t, err)
					s.Authorities[2].Name = "eve"
					s.Authorities[2].PublicKey = "0x" + hex.EncodeToString(eve.Public().(ed25519.PublicKey))
				})
			}
			c.Validator, c.KeyName = tt.validator, tt.key
			err := c.Validate()
			if !tt.refused {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorIs(t, err, ErrDevKeyNotAuthority)
			require.Contains(t, err.Error(), "--"+tt.key)
		})
	}
}

func TestLoadTOML(t *testing.T) {
	tests := []struct {
		name   string
		toml   string
		check  func(t *testing.T, c Config)
		errHas string
		errIs  error
	}{
		{
			name: "full file",
			toml: `
chain = "local"
base_path = "/srv/flare"
name = "n1"
validator = true
key_name = "bob"
enable_asf = true
min_free_disk_mib = 1024
pid_file = "/run/flare/flare-node.pid"
[p2p]
port = 4001
listen_addrs = ["/ip4/127.0.0.1/tcp/4001"]
bootnodes = ["/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWX"]
max_peers = 7
[log]
level = "debug"
format = "json"
file = "/var/log/flare/node.log"
max_size_mib = 5
max_backups = 3
max_age_days = 7
[persistence]
enabled = false
retention_checkpoints = 42
flush_interval = "2s"
prune_interval = "1m30s"
[metrics]
addr = "127.0.0.1:9615"
`,
			check: func(t *testing.T, c Config) {
				require.Equal(t, Config{
					Chain: "local", BasePath: "/srv/flare", Name: "n1", Validator: true, KeyName: "bob", EnableASF: true, MinFreeDiskMiB: 1024, StateRetentionBlocks: DefaultStateRetentionBlocks,
					PIDFile:     "/run/flare/flare-node.pid",
					P2P:         P2PConfig{Port: 4001, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/4001"}, Bootnodes: []string{"/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWX"}, MaxPeers: 7},
					Log:         LogConfig{Level: "debug", Format: "json", File: "/var/log/flare/node.log", MaxSizeMiB: 5, MaxBackups: 3, MaxAgeDays: 7},
					Persistence: PersistenceConfig{Enabled: false, RetentionCheckpoints: 42, FlushInterval: 2 * time.Second, PruneInterval: 90 * time.Second},
					Metrics:     MetricsConfig{Addr: "127.0.0.1:9615"},
				}, c)
			},
		},
		{
			name: "partial file keeps defaults",
			toml: "[log]\nlevel = \"warn\"\n",
			check: func(t *testing.T, c Config) {
				want := Default()
				want.Log.Level = "warn"
				require.Equal(t, want, c)
			},
		},
		{name: "unknown top-level key", toml: "chian = \"dev\"\n", errIs: ErrUnknownKey, errHas: `"chian"`},
		{name: "unknown nested key", toml: "[p2p]\nprot = 1\n", errIs: ErrUnknownKey, errHas: `"p2p.prot"`},
		{name: "unknown table", toml: "[jsonrpc]\nport = 1\n", errIs: ErrUnknownKey, errHas: `"jsonrpc"`},
		{name: "unknown key of a known table", toml: "[rpc]\nport = 1\n", errIs: ErrUnknownKey, errHas: `"rpc.port"`},
		{name: "wrong type", toml: "[p2p]\nport = \"x\"\n", errHas: "port"},
		{name: "bad duration", toml: "[persistence]\nflush_interval = \"soon\"\n", errHas: "soon"},
		{name: "duration without unit", toml: "[persistence]\nflush_interval = \"5\"\n", errHas: `use a duration string with a unit, such as "5s"`},
		{name: "negative retention", toml: "[persistence]\nretention_checkpoints = -5\n", errHas: "persistence.retention_checkpoints = -5: use a non-negative whole number"},
		{name: "negative free disk", toml: "min_free_disk_mib = -1\n", errHas: "min_free_disk_mib = -1: use a non-negative whole number"},
		{name: "syntax error", toml: "chain = \n", errHas: "line 1"},
		{name: "spec cannot be set", toml: "spec = \"x\"\n", errIs: ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "flare.toml", tt.toml, 0o644)
			c := Default()
			err := LoadTOML(p, &c)
			if tt.errHas == "" && tt.errIs == nil {
				require.NoError(t, err)
				tt.check(t, c)
				return
			}
			require.Error(t, err)
			require.NotContains(t, err.Error(), "\n")
			require.Contains(t, err.Error(), p)
			if tt.errIs != nil {
				require.ErrorIs(t, err, tt.errIs)
			}
			require.Contains(t, err.Error(), tt.errHas)
		})
	}

	t.Run("missing file", func(t *testing.T) {
		c := Default()
		err := LoadTOML(filepath.Join(t.TempDir(), "nope.toml"), &c)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

// TestKnownKeys keeps KnownKeys in step with the toml tags of Config.
func TestKnownKeys(t *testing.T) {
	var keys, unsigned []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("toml")
			if tag == "-" {
				continue
			}
			require.NotEmpty(t, tag, "field %s has no toml tag", f.Name)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				walk(prefix+tag+".", f.Type)
				continue
			}
			keys = append(keys, prefix+tag)
			switch f.Type.Kind() {
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				unsigned = append(unsigned, prefix+tag)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	require.ElementsMatch(t, keys, KnownKeys())
	require.ElementsMatch(t, unsigned, unsignedKeys, "LoadTOML refuses negative values of these keys")
}

func TestEncodeTOMLRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"default", func(c *Config) {}},
		{"dev", func(c *Config) { c.Dev() }},
		{"everything set", func(c *Config) {
			c.Chain, c.BasePath, c.Tmp, c.Name = "local", "/srv/it's", true, "node \"1\""
			c.Validator, c.KeyFile, c.EnableASF, c.MinFreeDiskMiB = true, "/k", true, 0
			allow := false
			c.P2P = P2PConfig{Port: 1, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/1"}, Bootnodes: []string{"/ip4/127.0.0.1/tcp/2/p2p/x"}, MaxPeers: 3, AllowPrivateIP: &allow, NoMDNS: true}
			c.Log = LogConfig{Level: "debug", Format: "json"}
			c.Persistence = PersistenceConfig{Enabled: false, RetentionCheckpoints: 5, FlushInterval: 1500 * time.Millisecond, PruneInterval: time.Hour}
			c.Metrics.Addr = "[::1]:9615"
			c.RPC.Addr = "127.0.0.1:9933"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			b, err := c.EncodeTOML()
			require.NoError(t, err)
			p := writeFile(t, "c.toml", string(b), 0o644)
			var got Config
			require.NoError(t, LoadTOML(p, &got))
			require.Equal(t, c, got, "encoded:\n%s", b)
		})
	}
}

// TestRPCAddrDefaultsToLocalhost: an rpc.addr without a host binds
// 127.0.0.1, not every interface.
func TestRPCAddrDefaultsToLocalhost(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{":9933", "127.0.0.1:9933"},
		{"0.0.0.0:9933", "0.0.0.0:9933"},
		{"[::1]:9933", "[::1]:9933"},
		{"", ""},
	} {
		c := validBase(t)
		c.RPC.Addr = tt.in
		require.NoError(t, c.Validate())
		require.Equal(t, tt.want, c.RPC.Addr, tt.in)
	}
}

func TestParseCheckpointSync(t *testing.T) {
	h := "0x" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in string
		ok bool
	}{{"12:" + h, true}, {"0:" + h, false}, {"12", false}, {"x:" + h, false}, {"12:0x12", false}, {"-1:" + h, false}} {
		cp, err := ParseCheckpointSync(tc.in)
		if tc.ok {
			require.NoError(t, err, tc.in)
			require.Equal(t, uint64(12), cp.Number)
			require.Equal(t, h, cp.Hash.String())
		} else {
			require.Error(t, err, tc.in)
		}
	}
}
