package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
)

// Flag categories shown in --help.
const (
	catChain       = "CHAIN"
	catStorage     = "STORAGE"
	catValidator   = "VALIDATOR"
	catNetwork     = "NETWORK"
	catLogging     = "LOGGING"
	catPersistence = "CHECKPOINT PERSISTENCE"
	catMetrics     = "METRICS"
)

// devKeyFlags are the dev key shortcuts (--alice ...).
var devKeyFlags = []string{"alice", "bob", "charlie", "dave"}

// Flag constructors: every command gets fresh flag values (urfave/cli
// records "set from the environment" on the flag itself).

func chainFlag() cli.Flag {
	return &cli.StringFlag{Name: "chain", Category: catChain, EnvVars: env("chain"), Value: "",
		Usage: "chain to run: a builtin name (" + strings.Join(chainspec.BuiltinNames(), ", ") + ") or the path of a chain spec JSON file"}
}

func devFlag() cli.Flag {
	return &cli.BoolFlag{Name: "dev", Category: catChain, EnvVars: env("dev"),
		Usage: "development preset: chain dev, validator alice, testnet checkpoint persistence, default base path (add --tmp for a throw-away one); does not imply --enable-asf"}
}

func configFlag() cli.Flag {
	return &cli.PathFlag{Name: "config", Category: catChain, EnvVars: env("config"), TakesFile: true,
		Usage: "TOML configuration `FILE`; flags and FLARE_* variables override it"}
}

func basePathFlag() cli.Flag {
	return &cli.PathFlag{Name: "base-path", Aliases: []string{"d"}, Category: catStorage, EnvVars: env("base-path"),
		Value: config.DefaultBasePath(), Usage: "directory the node keeps its data in (chains/<id>/db, chains/<id>/network)"}
}

func tmpFlag() cli.Flag {
	return &cli.BoolFlag{Name: "tmp", Category: catStorage, EnvVars: env("tmp"),
		Usage: "run on a temporary base path that is removed at exit"}
}

// locationFlags are the flags that locate a chain's data: enough for the
// offline tools.
func locationFlags() []cli.Flag {
	return []cli.Flag{chainFlag(), devFlag(), configFlag(), basePathFlag()}
}

// runFlags are the flags of the node itself.
func runFlags() []cli.Flag {
	d := config.Default()
	flags := []cli.Flag{
		chainFlag(), devFlag(), configFlag(),
		&cli.BoolFlag{Name: "print-config", Category: catChain, EnvVars: env("print-config"),
			Usage: "validate the configuration, print the effective values as TOML and exit without starting"},
		basePathFlag(), tmpFlag(),
		&cli.Uint64Flag{Name: "min-free-disk", Category: catStorage, EnvVars: env("min-free-disk"), Value: d.MinFreeDiskMiB,
			Usage: "free space in `MiB` the base path's file system must keep: the node refuses to start below it and stops (exit 1) when it falls below it while running; 0 disables the check"},
		&cli.Uint64Flag{Name: "state-retention", Category: catStorage, EnvVars: env("state-retention"), Value: d.StateRetentionBlocks,
			Usage: "`BLOCKS` below the finalized one that keep their complete account state (older states are pruned)"},
		&cli.StringFlag{Name: "checkpoint-sync", Category: catChain, EnvVars: env("checkpoint-sync"),
			Usage: "trusted checkpoint `NUMBER:0xHASH` (weak subjectivity, for a node joining long after genesis): finality proofs that do not contain it are refused, and the node stops if its finalized chain does not hold it"},
		&cli.StringFlag{Name: "name", Category: catStorage, EnvVars: env("name"), Usage: "human readable node name (logs only)"},
		&cli.PathFlag{Name: "pid-file", Category: catStorage, EnvVars: env("pid-file"), TakesFile: true,
			Usage: "write the process id to `FILE` once the node holds its databases; removed at exit (its directory must exist)"},

		&cli.BoolFlag{Name: "validator", Category: catValidator, EnvVars: env("validator"),
			Usage: "author blocks and vote on checkpoints (needs a key: --alice... or --key-file)"},
		&cli.PathFlag{Name: "key-file", Category: catValidator, EnvVars: env("key-file"), TakesFile: true,
			Usage: "validator key `FILE` (hex ed25519 seed, mode 0600, see 'key generate'); implies --validator"},
		&cli.BoolFlag{Name: "enable-asf", Category: catValidator, EnvVars: env("enable-asf"),
			Usage: "run the ASF checkpoint finality gadget"},
		&cli.BoolFlag{Name: "init-signer-record", Category: catValidator,
			Usage: "this validator key has no signer record on this chain yet although the base path was used before (a new key): create one through the safe first use (catch up, listen two checkpoint intervals for the key, then vote above everything seen) instead of refusing to start. Never use it to get around a lost record: import it (flare-node signer import). Command line only (no environment variable or config key)"},
		&cli.BoolFlag{Name: "doppelganger-listen", Category: catValidator, EnvVars: env("doppelganger-listen"),
			Usage: "at every start, listen two checkpoint intervals for votes of this validator key before the first vote (catches a second instance of the validator still running elsewhere; costs those intervals' votes)"},
	}
	for _, n := range devKeyFlags {
		flags = append(flags, &cli.BoolFlag{Name: n, Category: catValidator, EnvVars: env(n),
			Usage: "validate with the publicly known dev key " + n + " (dev and local chains only); implies --validator"})
	}
	flags = append(flags,
		&cli.IntFlag{Name: "port", Category: catNetwork, EnvVars: env("port"), Value: d.P2P.Port,
			Usage: "libp2p TCP port when no --listen-addr is given (0 picks a free port)"},
		&cli.StringSliceFlag{Name: "listen-addr", Category: catNetwork, EnvVars: env("listen-addr"),
			Usage: "multiaddr to listen on, e.g. /ip4/127.0.0.1/tcp/30333 (repeatable)"},
		&cli.StringSliceFlag{Name: "bootnodes", Category: catNetwork, EnvVars: env("bootnodes"),
			Usage: "multiaddr with /p2p/<peer id> to connect to at start (repeatable or comma separated)"},
		&cli.IntFlag{Name: "max-peers", Category: catNetwork, EnvVars: env("max-peers"), Value: d.P2P.MaxPeers,
			Usage: "maximum number of connected peers (discovery keeps 4/5 of it, dialling half of those itself)"},
		&cli.BoolFlag{Name: "allow-private-ip", Category: catNetwork, EnvVars: env("allow-private-ip"),
			Usage: "dial private, loopback and link-local addresses learned from peers (default: yes on dev/local chains, on chains with a non-public bootnode, and on nodes without bootnodes listening on non-public addresses only)"},
		&cli.BoolFlag{Name: "no-private-ip", Category: catNetwork, EnvVars: env("no-private-ip"),
			Usage: "dial only public addresses learned from peers (bootnode addresses are always dialled)"},
		&cli.BoolFlag{Name: "no-mdns", Category: catNetwork, EnvVars: env("no-mdns"),
			Usage: "do not discover peers on the local network with mDNS (on by default for the dev and local chains)"},

		&cli.StringFlag{Name: "log-level", Aliases: []string{"l"}, Category: catLogging, EnvVars: env("log-level"), Value: d.Log.Level,
			Usage: "log level: " + strings.Join(config.LogLevels, ", ")},
		&cli.StringFlag{Name: "log-format", Category: catLogging, EnvVars: env("log-format"), Value: d.Log.Format,
			Usage: "log format: text (human friendly) or json"},
		&cli.PathFlag{Name: "log-file", Category: catLogging, EnvVars: env("log-file"), TakesFile: true,
			Usage: "write the log to `FILE` instead of standard output, rotated by size (its directory must exist; under systemd prefer the journal)"},
		&cli.IntFlag{Name: "log-max-size", Category: catLogging, EnvVars: env("log-max-size"), Value: d.Log.MaxSizeMiB,
			Usage: "rotate --log-file when it reaches `MiB`"},
		&cli.IntFlag{Name: "log-max-backups", Category: catLogging, EnvVars: env("log-max-backups"), Value: d.Log.MaxBackups,
			Usage: "rotated log files to keep (0: all)"},
		&cli.IntFlag{Name: "log-max-age", Category: catLogging, EnvVars: env("log-max-age"), Value: d.Log.MaxAgeDays,
			Usage: "delete rotated log files older than `DAYS` (0: no age limit)"},

		&cli.BoolFlag{Name: "checkpoint-persistence", Category: catPersistence, EnvVars: env("checkpoint-persistence"), Value: d.Persistence.Enabled,
			Usage: "persist checkpoint votes, certificates and signer records (a validator never votes without it); --checkpoint-persistence=false turns it off"},
		&cli.Uint64Flag{Name: "checkpoint-retention", Category: catPersistence, EnvVars: env("checkpoint-retention"), Value: d.Persistence.RetentionCheckpoints,
			Usage: "checkpoints kept at and below the finalized one (--dev: 100)"},
		&cli.DurationFlag{Name: "checkpoint-flush-interval", Category: catPersistence, EnvVars: env("checkpoint-flush-interval"), Value: d.Persistence.FlushInterval,
			Usage: "longest time an unsynced peer vote may stay non-durable (--dev: 5s)"},
		&cli.DurationFlag{Name: "checkpoint-prune-interval", Category: catPersistence, EnvVars: env("checkpoint-prune-interval"), Value: d.Persistence.PruneInterval,
			Usage: "how often old checkpoints are pruned (--dev: 1m0s)"},

		&cli.StringFlag{Name: "metrics-addr", Category: catMetrics, EnvVars: env("metrics-addr"),
			Usage: "host:port of the Prometheus metrics listener, which also serves the JSON API unless --rpc-addr is set (off when empty)"},
		&cli.BoolFlag{Name: "pprof", Category: catMetrics, EnvVars: env("pprof"),
			Usage: "also serve Go runtime profiles at /debug/pprof/ on the metrics listener (needs --metrics-addr; for profiling, do not expose)"},
		&cli.StringFlag{Name: "rpc-addr", Category: catMetrics, EnvVars: env("rpc-addr"),
			Usage: "host:port (or :port = 127.0.0.1:port) of a separate listener for the read-only JSON API (/status, /readyz, /checkpoints, ...; docs/api/openapi.yaml)"},
	)
	return flags
}

// buildConfig layers the configuration: config.Default, the --dev preset,
// the TOML file of --config, then every flag given on the command line or
// through its FLARE_* variable, and validates it. Nothing is written. All
// errors are usage errors.
func buildConfig(c *cli.Context) (*config.Config, error) {
	cfg := config.Default()
	if boolSet(c, "dev") {
		cfg.Dev()
	}
	if cc := lookupSet(c, "config"); cc != nil {
		if err := config.LoadTOML(cc.Path("config"), &cfg); err != nil {
			return nil, usageError(err)
		}
	}
	if err := applyFlags(c, &cfg); err != nil {
		return nil, usageError(err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, usageError(err)
	}
	return &cfg, nil
}

// boolSet reports whether bool flag name was given and is true.
func boolSet(c *cli.Context, name string) bool {
	cc := lookupSet(c, name)
	return cc != nil && cc.Bool(name)
}

var errConflict = errors.New("conflicting flags")

// applyFlags copies every flag that was given into cfg.
func applyFlags(c *cli.Context, cfg *config.Config) error {
	str := func(name string, dst *string) {
		if cc := lookupSet(c, name); cc != nil {
			*dst = cc.String(name)
		}
	}
	boolean := func(name string, dst *bool) {
		if cc := lookupSet(c, name); cc != nil {
			*dst = cc.Bool(name)
		}
	}

	str("chain", &cfg.Chain)
	if cc := lookupSet(c, "base-path"); cc != nil {
		if boolSet(c, "tmp") {
			return fmt.Errorf("%w: --tmp and --base-path exclude each other", errConflict)
		}
		cfg.BasePath = cc.Path("base-path")
	}
	boolean("tmp", &cfg.Tmp)
	if cc := lookupSet(c, "min-free-disk"); cc != nil {
		cfg.MinFreeDiskMiB = cc.Uint64("min-free-disk")
	}
	if cc := lookupSet(c, "state-retention"); cc != nil {
		cfg.StateRetentionBlocks = cc.Uint64("state-retention")
	}
	str("name", &cfg.Name)
	str("checkpoint-sync", &cfg.CheckpointSync)

	// Validator key: a dev key flag or --key-file selects the key and
	// implies --validator; an explicit --validator (=false) wins.
	var keyFlags []string
	for _, n := range devKeyFlags {
		if boolSet(c, n) {
			keyFlags = append(keyFlags, "--"+n)
			cfg.KeyName, cfg.KeyFile, cfg.Validator = n, "", true
		}
	}
	if cc := lookupSet(c, "key-file"); cc != nil {
		keyFlags = append(keyFlags, "--key-file")
		cfg.KeyName, cfg.KeyFile, cfg.Validator = "", cc.Path("key-file"), true
	}
	if len(keyFlags) > 1 {
		return fmt.Errorf("%w: %s select different validator keys; give one", errConflict, strings.Join(keyFlags, " and "))
	}
	boolean("validator", &cfg.Validator)
	boolean("enable-asf", &cfg.EnableASF)
	boolean("init-signer-record", &cfg.InitSignerRecord)
	boolean("doppelganger-listen", &cfg.DoppelgangerListen)

	if cc := lookupSet(c, "port"); cc != nil {
		cfg.P2P.Port = cc.Int("port")
	}
	if cc := lookupSet(c, "listen-addr"); cc != nil {
		cfg.P2P.ListenAddrs = splitList(cc.StringSlice("listen-addr"))
	}
	if cc := lookupSet(c, "bootnodes"); cc != nil {
		cfg.P2P.Bootnodes = splitList(cc.StringSlice("bootnodes"))
	}
	if cc := lookupSet(c, "max-peers"); cc != nil {
		cfg.P2P.MaxPeers = cc.Int("max-peers")
	}
	switch allow, deny := boolSet(c, "allow-private-ip"), boolSet(c, "no-private-ip"); {
	case allow && deny:
		return fmt.Errorf("%w: --allow-private-ip and --no-private-ip exclude each other", errConflict)
	case allow || deny:
		cfg.P2P.AllowPrivateIP = &allow
	}
	boolean("no-mdns", &cfg.P2P.NoMDNS)

	str("log-level", &cfg.Log.Level)
	str("log-format", &cfg.Log.Format)
	if cc := lookupSet(c, "log-file"); cc != nil {
		cfg.Log.File = cc.Path("log-file")
	}
	integer := func(name string, dst *int) {
		if cc := lookupSet(c, name); cc != nil {
			*dst = cc.Int(name)
		}
	}
	integer("log-max-size", &cfg.Log.MaxSizeMiB)
	integer("log-max-backups", &cfg.Log.MaxBackups)
	integer("log-max-age", &cfg.Log.MaxAgeDays)
	if cc := lookupSet(c, "pid-file"); cc != nil {
		cfg.PIDFile = cc.Path("pid-file")
	}

	boolean("checkpoint-persistence", &cfg.Persistence.Enabled)
	if cc := lookupSet(c, "checkpoint-retention"); cc != nil {
		cfg.Persistence.RetentionCheckpoints = cc.Uint64("checkpoint-retention")
	}
	if cc := lookupSet(c, "checkpoint-flush-interval"); cc != nil {
		cfg.Persistence.FlushInterval = cc.Duration("checkpoint-flush-interval")
	}
	if cc := lookupSet(c, "checkpoint-prune-interval"); cc != nil {
		cfg.Persistence.PruneInterval = cc.Duration("checkpoint-prune-interval")
	}
	str("metrics-addr", &cfg.Metrics.Addr)
	boolean("pprof", &cfg.Metrics.Pprof)
	str("rpc-addr", &cfg.RPC.Addr)
	return nil
}

// splitList trims the entries of a list flag and drops empty ones.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
