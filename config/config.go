package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Defaults of a node that is not otherwise configured.
const (
	// DefaultPort is the default libp2p TCP port.
	DefaultPort = 30333
	// DefaultMaxPeers is the default peer limit.
	DefaultMaxPeers = 50
	// DefaultLogLevel is the default log level.
	DefaultLogLevel = "info"
	// DefaultLogFormat is the default log format.
	DefaultLogFormat = "text"
	// MaxNameLength bounds the human readable node name.
	MaxNameLength = 64
	// DefaultMinFreeDiskMiB is the default of MinFreeDiskMiB: 256 MiB, room
	// for the databases to flush and compact and for the node to stop
	// cleanly (geth stops at a comparable margin, --datadir.minfreedisk).
	DefaultMinFreeDiskMiB = 256
	// DefaultStateRetentionBlocks is the default of StateRetentionBlocks.
	DefaultStateRetentionBlocks = 256
	// MaxMinFreeDiskMiB bounds MinFreeDiskMiB (1 PiB).
	MaxMinFreeDiskMiB = 1 << 30
	// MinInterval is the shortest flush or prune interval accepted; it
	// mostly catches a TOML integer read as nanoseconds ("10" instead of
	// "10s").
	MinInterval = time.Millisecond
)

// Sentinel errors.
var (
	// ErrInvalidConfig wraps every field error Validate reports.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrUnknownKey is returned by LoadTOML for a key the Config does not
	// have.
	ErrUnknownKey = errors.New("unknown configuration key")
	// ErrNoValidatorKey is returned by ValidatorKey when neither a dev key
	// name nor a key file is configured.
	ErrNoValidatorKey = errors.New("no validator key configured")
	// ErrBadKeyFile is returned for a key file that is not a hex ed25519
	// seed.
	ErrBadKeyFile = errors.New("malformed validator key file")
	// ErrInsecureKeyFile is reported (as a warning) for a key file that
	// group or other users may read or write.
	ErrInsecureKeyFile = errors.New("validator key file is accessible by other users")
	// ErrDevKeyNotAuthority is reported by Validate for a validator with a
	// dev key (key_name) the chain spec does not list as an authority.
	ErrDevKeyNotAuthority = errors.New("dev key is not an authority")
)

// Config is the complete run configuration of a node. The toml tags are the
// keys of the configuration file.
type Config struct {
	// Chain is a builtin chain name (chainspec.BuiltinNames) or the path of
	// a chain spec JSON file.
	Chain string `toml:"chain"`
	// Spec is the chain specification Chain resolves to; Validate sets it.
	Spec *chainspec.Spec `toml:"-"`
	// BasePath is the directory below which the node keeps its data.
	BasePath string `toml:"base_path"`
	// Tmp runs on a temporary base path that is removed at exit (the
	// command line creates it after Validate; BasePath is then ignored).
	Tmp bool `toml:"tmp"`
	// Name is a human readable node name (logs only).
	Name string `toml:"name"`
	// Validator makes the node author blocks and vote on checkpoints with
	// the key named by KeyName or read from KeyFile.
	Validator bool `toml:"validator"`
	// KeyName is a well-known development key (chainspec.DevKeyNames).
	KeyName string `toml:"key_name"`
	// KeyFile is a file holding a hex ed25519 seed (32 bytes, 64 hex
	// characters); it should be readable by its owner only.
	KeyFile string `toml:"key_file"`
	// EnableASF runs the ASF checkpoint finality gadget.
	EnableASF bool `toml:"enable_asf"`
	// InitSignerRecord declares that the validator key has no signer record
	// on this chain yet although the base path was used before (a new key,
	// or a node that ran without ASF): the node creates a fresh record
	// through its first-use procedure instead of refusing to start. A
	// one-shot command-line decision, never read from a configuration file
	// or the environment.
	InitSignerRecord bool `toml:"-"`
	// DoppelgangerListen makes a validator whose signer record already
	// exists (a restart, an imported record, a copied base path) listen for
	// two checkpoint intervals for votes of its key before its first vote,
	// as a fresh record does (Lighthouse's doppelganger protection). It
	// costs those two intervals of votes at every start.
	DoppelgangerListen bool `toml:"doppelganger_listen"`
	// MinFreeDiskMiB is the free space, in MiB, the file system of BasePath
	// must keep: the node refuses to start below it and stops (exit 1) when
	// free space falls below it while running. 0 disables the check.
	MinFreeDiskMiB uint64 `toml:"min_free_disk_mib"`
	// StateRetentionBlocks is how many blocks below the finalized one keep
	// their complete account state (older canonical states are pruned; the
	// blocks themselves are kept).
	StateRetentionBlocks uint64 `toml:"state_retention_blocks"`
	// CheckpointSync is a trusted checkpoint "NUMBER:0xHASH" (weak
	// subjectivity): the node refuses finality proofs that do not contain
	// it and stops if its finalized chain does not hold it. Validate parses
	// it into TrustedCheckpoint.
	CheckpointSync    string                 `toml:"checkpoint_sync"`
	TrustedCheckpoint *checkpoint.Checkpoint `toml:"-"`
	// PIDFile, when set, is written with the node's process id once the
	// node holds its databases, and removed when it exits (a kill -9
	// leaves it behind; the next start replaces it). Its directory must
	// exist.
	PIDFile string `toml:"pid_file"`

	P2P         P2PConfig         `toml:"p2p"`
	Log         LogConfig         `toml:"log"`
	Persistence PersistenceConfig `toml:"persistence"`
	Metrics     MetricsConfig     `toml:"metrics"`
	RPC         RPCConfig         `toml:"rpc"`
}

// P2PConfig configures the libp2p network.
type P2PConfig struct {
	// Port is the TCP port used when ListenAddrs is empty (0 picks a free
	// port).
	Port int `toml:"port"`
	// ListenAddrs are explicit multiaddrs to listen on (override Port).
	ListenAddrs []string `toml:"listen_addrs"`
	// Bootnodes are multiaddrs with a /p2p/<peer id> suffix to dial at start.
	Bootnodes []string `toml:"bootnodes"`
	// MaxPeers bounds the number of connected peers; peer discovery keeps
	// 4/5 of it, dialling half of those itself.
	MaxPeers int `toml:"max_peers"`
	// AllowPrivateIP lets the node dial non-public addresses (loopback,
	// RFC 1918, link-local, ...) it learns from peers, the DHT, mDNS or its
	// address book; configured bootnode addresses are dialled regardless.
	// Unset, Validate sets the chain's default (DefaultAllowPrivateIP).
	AllowPrivateIP *bool `toml:"allow_private_ip"`
	// NoMDNS turns off mDNS discovery on the local network (otherwise on
	// for the dev and local chains).
	NoMDNS bool `toml:"no_mdns"`
}

// DefaultAllowPrivateIP is the private-address policy of a chain when
// p2p.allow_private_ip is not set: allowed on the builtin dev and local
// chains, on a chain with a bootnode at a non-public address (a network on a
// LAN or one machine), and on a node without bootnodes whose listen
// addresses are all non-public (for example node0 of 'flare-node testnet');
// denied otherwise, as for any network spanning the internet.
func DefaultAllowPrivateIP(chainID string, bootnodes, listenAddrs []string) bool {
	if slices.Contains(chainspec.BuiltinNames(), chainID) {
		return true
	}
	for _, b := range bootnodes {
		if a, err := ma.NewMultiaddr(b); err == nil && !manet.IsPublicAddr(a) {
			return true
		}
	}
	if len(bootnodes) == 0 && len(listenAddrs) > 0 {
		for _, l := range listenAddrs {
			a, err := ma.NewMultiaddr(l)
			if err != nil || manet.IsPublicAddr(a) || manet.IsIPUnspecified(a) {
				return false
			}
		}
		return true
	}
	return false
}

// PrivateIPAllowed is p2p.allow_private_ip, or the chain's default
// (DefaultAllowPrivateIP) when it is unset.
func (c *Config) PrivateIPAllowed() bool {
	if c.P2P.AllowPrivateIP != nil {
		return *c.P2P.AllowPrivateIP
	}
	return DefaultAllowPrivateIP(c.ChainID(), c.P2P.Bootnodes, c.P2P.ListenAddrs)
}

// MDNSEnabled reports whether the node runs mDNS discovery: on the builtin
// dev and local chains unless no_mdns (--no-mdns). Call it after Validate.
func (c *Config) MDNSEnabled() bool {
	return !c.P2P.NoMDNS && c.Spec != nil && slices.Contains(chainspec.BuiltinNames(), c.Spec.ID)
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is one of debug, info, warn, error.
	Level string `toml:"level"`
	// Format is text (human friendly console lines) or json.
	Format string `toml:"format"`
	// File, when set, receives the log instead of standard output, rotated
	// when it reaches MaxSizeMiB: the old file is renamed with a timestamp
	// (<name>-<UTC time>.<ext>) in the same directory. Its directory must
	// exist.
	File string `toml:"file"`
	// MaxSizeMiB is the size at which File is rotated.
	MaxSizeMiB int `toml:"max_size_mib"`
	// MaxBackups is how many rotated files are kept (0: all).
	MaxBackups int `toml:"max_backups"`
	// MaxAgeDays removes rotated files older than that many days (0: no
	// age limit).
	MaxAgeDays int `toml:"max_age_days"`
}

// Log file rotation defaults and bounds.
const (
	DefaultLogMaxSizeMiB = 100
	DefaultLogMaxBackups = 10
	MaxLogMaxSizeMiB     = 1 << 20
)

// PersistenceConfig configures the checkpoint database of the finality
// gadget (see finality.CheckpointPersistenceConfig).
type PersistenceConfig struct {
	// Enabled turns persistence on; a validator never votes without it.
	Enabled bool `toml:"enabled"`
	// RetentionCheckpoints is how many checkpoints at and below the
	// finalized one are kept.
	RetentionCheckpoints uint64 `toml:"retention_checkpoints"`
	// FlushInterval bounds how long an unsynced peer vote may stay
	// non-durable (TOML: a duration string such as "10s").
	FlushInterval time.Duration `toml:"flush_interval"`
	// PruneInterval is how often old checkpoints are pruned.
	PruneInterval time.Duration `toml:"prune_interval"`
}

// MetricsConfig configures the optional Prometheus/status HTTP listener.
type MetricsConfig struct {
	// Addr is a host:port to listen on; empty disables the listener.
	Addr string `toml:"addr"`
	// Pprof also serves the Go runtime profiles (net/http/pprof) at
	// /debug/pprof/ on that listener. Needs Addr.
	Pprof bool `toml:"pprof"`
}

// RPCConfig configures the optional listener of the read-only JSON API.
type RPCConfig struct {
	// Addr is a host:port to serve the JSON API on, apart from the metrics
	// listener; an empty host (":9933") means 127.0.0.1. Empty: the API is
	// served on the metrics listener (Metrics.Addr), if any.
	Addr string `toml:"addr"`
}

// DefaultRPCHost is the host of an rpc.addr given without one.
const DefaultRPCHost = "127.0.0.1"

// DefaultPersistence is the mainnet persistence preset: 1000 checkpoints,
// flush every 10 s, prune every 300 s.
func DefaultPersistence() PersistenceConfig {
	return PersistenceConfig{Enabled: true, RetentionCheckpoints: 1000, FlushInterval: 10 * time.Second, PruneInterval: 300 * time.Second}
}

// TestnetPersistence is the testnet persistence preset (used by --dev and
// by the testnet command): 100 checkpoints, flush every 5 s, prune every
// 60 s.
func TestnetPersistence() PersistenceConfig {
	return PersistenceConfig{Enabled: true, RetentionCheckpoints: 100, FlushInterval: 5 * time.Second, PruneInterval: 60 * time.Second}
}

// Default returns the configuration of a node given no file and no flags:
// no chain (one must be chosen), the default base path, a non-validating
// node without the finality gadget, port 30333, 50 peers, info text logs,
// persistence with the mainnet preset, no metrics listener, and a stop when
// free disk space falls below 256 MiB.
func Default() Config {
	return Config{
		BasePath:             DefaultBasePath(),
		MinFreeDiskMiB:       DefaultMinFreeDiskMiB,
		StateRetentionBlocks: DefaultStateRetentionBlocks,
		P2P:                  P2PConfig{Port: DefaultPort, MaxPeers: DefaultMaxPeers},
		Log:                  LogConfig{Level: DefaultLogLevel, Format: DefaultLogFormat, MaxSizeMiB: DefaultLogMaxSizeMiB, MaxBackups: DefaultLogMaxBackups},
		Persistence:          DefaultPersistence(),
	}
}

// Dev applies the --dev preset to c: the dev chain, validating as alice, with
// the testnet persistence preset. EnableASF is left as it is.
func (c *Config) Dev() {
	c.Chain = "dev"
	c.Validator = true
	c.KeyName = "alice"
	c.KeyFile = ""
	c.Persistence = TestnetPersistence()
}

// DefaultBasePath is $XDG_DATA_HOME/flare-node, or ~/.local/share/flare-node
// when XDG_DATA_HOME is unset, or ./flare-node-data when no home directory
// is known.
func DefaultBasePath() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "flare-node")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "share", "flare-node")
	}
	return "flare-node-data"
}

// LogLevels are the accepted values of Log.Level.
var LogLevels = []string{"debug", "info", "warn", "error"}

// LogFormats are the accepted values of Log.Format.
var LogFormats = []string{"text", "json"}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// Validate checks every field, resolves Chain into Spec and normalizes
// BasePath and KeyFile to absolute paths. It reads files (the chain spec,
// the key file) but never writes anything. Errors wrap ErrInvalidConfig (or
// the chainspec error for the chain) and name the offending setting by its
// file key and flag.
func (c *Config) Validate() error {
	// Chain.
	if strings.TrimSpace(c.Chain) == "" {
		return invalid("no chain selected: use --chain NAME|FILE (builtin: %s) or --dev", strings.Join(chainspec.BuiltinNames(), ", "))
	}
	spec, err := chainspec.Resolve(c.Chain)
	if err != nil {
		return fmt.Errorf("%w: chain: %w", ErrInvalidConfig, err)
	}

	// Base path.
	if !c.Tmp {
		if strings.TrimSpace(c.BasePath) == "" {
			return invalid("base_path (--base-path) is empty")
		}
		p, err := absPath(c.BasePath)
		if err != nil {
			return invalid("base_path (--base-path) %q: %v", c.BasePath, err)
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return invalid("base_path (--base-path) %q exists and is not a directory", p)
		}
		c.BasePath = p
	}

	if c.StateRetentionBlocks < 1 {
		return invalid("state_retention_blocks (--state-retention) must be at least 1")
	}
	c.TrustedCheckpoint = nil
	if c.CheckpointSync != "" {
		cp, err := ParseCheckpointSync(c.CheckpointSync)
		if err != nil {
			return invalid("checkpoint_sync (--checkpoint-sync) %q: %v", c.CheckpointSync, err)
		}
		c.TrustedCheckpoint = &cp
	}
	if c.MinFreeDiskMiB > MaxMinFreeDiskMiB {
		return invalid("min_free_disk_mib (--min-free-disk) %d MiB is above %d MiB", c.MinFreeDiskMiB, uint64(MaxMinFreeDiskMiB))
	}

	// Name.
	if len(c.Name) > MaxNameLength {
		return invalid("name (--name) is %d bytes long, at most %d", len(c.Name), MaxNameLength)
	}
	if strings.IndexFunc(c.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return invalid("name (--name) %q contains non-printable characters", c.Name)
	}

	// Validator key.
	if c.KeyName != "" && c.KeyFile != "" {
		return invalid("both a dev key (key_name %q) and a key file (key_file %q) are set; choose one", c.KeyName, c.KeyFile)
	}
	if c.KeyName != "" && !slices.Contains(chainspec.DevKeyNames(), c.KeyName) {
		return invalid("key_name %q is not a dev key (known: %s)", c.KeyName, strings.Join(chainspec.DevKeyNames(), ", "))
	}
	if c.KeyFile != "" {
		p, err := absPath(c.KeyFile)
		if err != nil {
			return invalid("key_file (--key-file) %q: %v", c.KeyFile, err)
		}
		c.KeyFile = p
	}
	if c.Validator {
		if c.KeyName == "" && c.KeyFile == "" {
			return invalid("validator mode needs a key: --alice/--bob/--charlie/--dave, --key-file FILE (or key_name / key_file in the config file)")
		}
		if _, err := c.ValidatorKey(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}

	// Network.
	if c.P2P.Port < 0 || c.P2P.Port > 65535 {
		return invalid("p2p.port (--port) %d is outside 0..65535", c.P2P.Port)
	}
	for _, a := range c.P2P.ListenAddrs {
		if err := checkMultiaddr(a); err != nil {
			return invalid("p2p.listen_addrs (--listen-addr) %q: %v", a, err)
		}
	}
	for _, a := range c.P2P.Bootnodes {
		if err := checkMultiaddr(a); err != nil {
			return invalid("p2p.bootnodes (--bootnodes) %q: %v", a, err)
		}
		if i := strings.LastIndex(a, "/p2p/"); i < 0 || i+len("/p2p/") == len(a) {
			return invalid("p2p.bootnodes (--bootnodes) %q has no /p2p/<peer id> suffix", a)
		}
	}
	if c.P2P.MaxPeers < 1 {
		return invalid("p2p.max_peers (--max-peers) %d must be at least 1", c.P2P.MaxPeers)
	}
	if c.P2P.AllowPrivateIP == nil {
		allow := DefaultAllowPrivateIP(spec.ID, c.P2P.Bootnodes, c.P2P.ListenAddrs)
		c.P2P.AllowPrivateIP = &allow
	}

	// Logging.
	if !slices.Contains(LogLevels, c.Log.Level) {
		return invalid("log.level (--log-level) %q: want one of %s", c.Log.Level, strings.Join(LogLevels, ", "))
	}
	if !slices.Contains(LogFormats, c.Log.Format) {
		return invalid("log.format (--log-format) %q: want one of %s", c.Log.Format, strings.Join(LogFormats, ", "))
	}
	if c.Log.File != "" {
		p, err := absPath(c.Log.File)
		if err != nil {
			return invalid("log.file (--log-file) %q: %v", c.Log.File, err)
		}
		c.Log.File = p
	}
	switch {
	case c.Log.MaxSizeMiB < 1 || c.Log.MaxSizeMiB > MaxLogMaxSizeMiB:
		return invalid("log.max_size_mib (--log-max-size) %d is outside 1..%d", c.Log.MaxSizeMiB, MaxLogMaxSizeMiB)
	case c.Log.MaxBackups < 0:
		return invalid("log.max_backups (--log-max-backups) %d must not be negative", c.Log.MaxBackups)
	case c.Log.MaxAgeDays < 0:
		return invalid("log.max_age_days (--log-max-age) %d must not be negative", c.Log.MaxAgeDays)
	}
	if c.PIDFile != "" {
		p, err := absPath(c.PIDFile)
		if err != nil {
			return invalid("pid_file (--pid-file) %q: %v", c.PIDFile, err)
		}
		c.PIDFile = p
	}

	// Persistence (the values are checked even when disabled, so that
	// turning it on later cannot surprise).
	p := c.Persistence
	switch {
	case p.RetentionCheckpoints < 1:
		return invalid("persistence.retention_checkpoints (--checkpoint-retention) must be at least 1")
	case p.FlushInterval < MinInterval:
		return invalid("persistence.flush_interval (--checkpoint-flush-interval) %v is below %v (TOML durations are strings such as \"10s\")", p.FlushInterval, MinInterval)
	case p.PruneInterval < MinInterval:
		return invalid("persistence.prune_interval (--checkpoint-prune-interval) %v is below %v (TOML durations are strings such as \"300s\")", p.PruneInterval, MinInterval)
	}

	// Metrics.
	if c.Metrics.Addr != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Addr); err != nil || port == "" {
			return invalid("metrics.addr (--metrics-addr) %q: want host:port", c.Metrics.Addr)
		}
	} else if c.Metrics.Pprof {
		return invalid("metrics.pprof (--pprof) needs metrics.addr (--metrics-addr): the profiles are served on the metrics listener")
	}
	if c.RPC.Addr != "" {
		host, port, err := net.SplitHostPort(c.RPC.Addr)
		if err != nil || port == "" {
			return invalid("rpc.addr (--rpc-addr) %q: want host:port or :port", c.RPC.Addr)
		}
		if host == "" {
			c.RPC.Addr = net.JoinHostPort(DefaultRPCHost, port)
		}
		if port != "0" && c.RPC.Addr == c.Metrics.Addr {
			return invalid("rpc.addr (--rpc-addr) %q is the metrics address; leave --rpc-addr out to serve the API on the metrics address", c.RPC.Addr)
		}
	}

	// A dev key validates only on a chain whose spec lists its public key
	// in its authority set or a scheduled one (the builtin dev and local
	// chains, or a custom spec derived from them); anywhere else it could
	// never author or vote.
	if c.Validator && c.KeyName != "" {
		key, err := chainspec.DevKey(c.KeyName)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		pub := key.Public().(ed25519.PublicKey)
		_, ok := spec.AuthoritySet().IndexOf(pub)
		for _, ch := range spec.Schedule().Changes {
			for _, k := range ch.Keys {
				ok = ok || k.Equal(pub)
			}
		}
		if !ok {
			names := make([]string, len(spec.Authorities))
			for i, a := range spec.Authorities {
				names[i] = a.Name
			}
			return fmt.Errorf("%w: %w: chain %q does not list --%s (key_name %q) among its authorities (%s); a dev key validates only on a chain whose spec lists it, use --key-file with a key of this chain",
				ErrInvalidConfig, ErrDevKeyNotAuthority, spec.ID, c.KeyName, c.KeyName, strings.Join(names, ", "))
		}
	}

	c.Spec = spec
	return nil
}

// Warnings returns advice about a valid configuration that is probably not
// what the operator wants: a key file readable by others, a publicly known
// dev key on a chain that is not a builtin dev chain, a validator without
// checkpoint persistence (it will not vote). Call it after Validate.
func (c *Config) Warnings() []string {
	var w []string
	if c.Validator && c.KeyFile != "" {
		if err := CheckKeyFileMode(c.KeyFile); err != nil {
			w = append(w, err.Error())
		}
	}
	if c.Validator && c.KeyName != "" && c.Spec != nil && !slices.Contains(chainspec.BuiltinNames(), c.Spec.ID) {
		w = append(w, fmt.Sprintf("validating on chain %q with the publicly known dev key %q", c.Spec.ID, c.KeyName))
	}
	if c.Validator && c.Tmp && c.KeyFile != "" {
		w = append(w, "--tmp deletes this validator's signer record at exit: running the same key again (on any base path) can double sign")
	}
	if c.Validator && c.EnableASF && !c.Persistence.Enabled {
		w = append(w, "checkpoint persistence is disabled: this validator will not vote on checkpoints")
	}
	return w
}

// checkMultiaddr is a shape check only (the p2p package parses the address
// fully): it must start with "/", have no empty component and no
// whitespace.
func checkMultiaddr(a string) error {
	if !strings.HasPrefix(a, "/") || len(a) < 2 {
		return errors.New("not a multiaddr (expected e.g. /ip4/127.0.0.1/tcp/30333)")
	}
	if strings.Contains(a, "//") || strings.ContainsAny(a, " \t\n") {
		return errors.New("not a multiaddr (empty component or whitespace)")
	}
	return nil
}

// absPath expands a leading "~/" and makes p absolute.
func absPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return filepath.Abs(p)
}

// MinFreeDiskBytes is MinFreeDiskMiB in bytes.
func (c *Config) MinFreeDiskBytes() uint64 { return c.MinFreeDiskMiB << 20 }

// ChainID is the directory name of the chain below <base>/chains: the
// resolved spec's id, or Chain when the spec is not resolved yet.
func (c *Config) ChainID() string {
	if c.Spec != nil {
		return c.Spec.ID
	}
	return c.Chain
}

// ChainDir is <base>/chains/<spec id>.
func (c *Config) ChainDir() string { return filepath.Join(c.BasePath, "chains", c.ChainID()) }

// ChainDBPath is <chaindir>/db/chain.
func (c *Config) ChainDBPath() string { return filepath.Join(c.ChainDir(), "db", "chain") }

// CheckpointDBPath is <chaindir>/db/checkpoints.
func (c *Config) CheckpointDBPath() string { return filepath.Join(c.ChainDir(), "db", "checkpoints") }

// AddressBookPath is <chaindir>/network/peers.json (peers remembered across
// restarts).
func (c *Config) AddressBookPath() string {
	return filepath.Join(c.ChainDir(), "network", "peers.json")
}

// NodeKeyPath is <chaindir>/network/secret_ed25519.
func (c *Config) NodeKeyPath() string {
	return filepath.Join(c.ChainDir(), "network", "secret_ed25519")
}

// ParseCheckpointSync parses "NUMBER:0xHASH" (a checkpoint number above 0
// and its 32-byte block hash).
func ParseCheckpointSync(s string) (checkpoint.Checkpoint, error) {
	num, hash, ok := strings.Cut(s, ":")
	if !ok {
		return checkpoint.Checkpoint{}, errors.New("use NUMBER:0xHASH, e.g. 120:0x3f…, a finalized checkpoint from a node you trust")
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return checkpoint.Checkpoint{}, errors.New("the checkpoint number must be a decimal number above 0")
	}
	h, err := checkpoint.ParseHash(hash)
	if err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("the hash: %w", err)
	}
	return checkpoint.Checkpoint{Number: n, Hash: h}, nil
}
