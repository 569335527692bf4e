package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/p2p"
)

// Names of the files the testnet command writes into --out.
const (
	testnetSpecFile     = "chainspec.json"
	testnetCommandsFile = "commands.txt"
	testnetEnvFile      = "nodes.env"
	testnetChainID      = "testnet"
	// defaultTestnetMetricsPort is node0's metrics port (Substrate's
	// Prometheus port).
	defaultTestnetMetricsPort = 9615
)

// maxBenchAccounts bounds --bench-accounts (the spec file stays below
// chainspec.MaxSpecFileSize).
const maxBenchAccounts = 5000

func testnetCommand() *cli.Command {
	return &cli.Command{
		Name:  "testnet",
		Usage: "write a chain spec with N fresh validator keys, their node keys and base paths, and each node's command line",
		Description: "The output directory gets " + testnetSpecFile + ", node<i>/validator.key, node<i>/data (base path with the node key),\n" +
			testnetCommandsFile + " (one command line per node) and " + testnetEnvFile + " (the same as shell variables, for scripts/testnet.sh).\n" +
			"Nodes listen on 127.0.0.1 at --base-port + i and serve metrics and status at --metrics-base-port + i;\n" +
			"every node but node0 uses node0 as its only bootnode and finds the others through peer discovery.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "validators", Aliases: []string{"n"}, Value: 4, Usage: "number of validators"},
			&cli.PathFlag{Name: "out", Aliases: []string{"o"}, Usage: "output `DIR` (must not exist or be empty)"},
			&cli.IntFlag{Name: "base-port", Value: config.DefaultPort, Usage: "p2p port of node0; node i uses base-port + i"},
			&cli.IntFlag{Name: "metrics-base-port", Value: defaultTestnetMetricsPort, Usage: "metrics/status port of node0 on 127.0.0.1 (node i: + i; scripts/testnet.sh status reads it); 0 leaves metrics off"},
			&cli.DurationFlag{Name: "slot-duration", Value: time.Second, Usage: "block production slot length"},
			&cli.Uint64Flag{Name: "checkpoint-interval", Value: 4, Usage: "blocks between checkpoints"},
			&cli.PathFlag{Name: "binary", Usage: "flare-node binary used in the command lines (default: this executable)"},
			&cli.IntFlag{Name: "bench-accounts", Value: 0, Usage: "also endow the first `N` well-known bench keys (chainspec.BenchKey; for flare-node bench tx-load)"},
		},
		Action: testnetAction,
	}
}

// testnetNode is one generated node.
type testnetNode struct {
	Name      string
	Port      int
	Metrics   string
	BasePath  string
	KeyFile   string
	PublicKey string
	PeerID    string
	Args      []string
}

func testnetAction(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	n := c.Int("validators")
	out := c.Path("out")
	basePort := c.Int("base-port")
	metricsPort := c.Int("metrics-base-port")
	switch {
	case out == "":
		return usageError(errors.New("testnet needs --out DIR"))
	case n < 1 || n > chainspec.MaxAuthorities:
		return usageError(fmt.Errorf("--validators %d is outside 1..%d", n, chainspec.MaxAuthorities))
	case basePort < 1 || basePort+n-1 > 65535:
		return usageError(fmt.Errorf("--base-port %d: ports %d..%d must lie within 1..65535", basePort, basePort, basePort+n-1))
	case metricsPort < 0 || (metricsPort > 0 && metricsPort+n-1 > 65535):
		return usageError(fmt.Errorf("--metrics-base-port %d: ports must lie within 1..65535", metricsPort))
	case metricsPort > 0 && metricsPort < basePort+n && basePort < metricsPort+n:
		return usageError(fmt.Errorf("--metrics-base-port %d overlaps the p2p ports %d..%d", metricsPort, basePort, basePort+n-1))
	}
	slotMs := uint64(c.Duration("slot-duration") / time.Millisecond)
	if slotMs < chainspec.MinSlotDurationMs || slotMs > chainspec.MaxSlotDurationMs {
		return usageError(fmt.Errorf("--slot-duration %v is outside %dms..%dms", c.Duration("slot-duration"), chainspec.MinSlotDurationMs, chainspec.MaxSlotDurationMs))
	}
	if c.Uint64("checkpoint-interval") < 1 {
		return usageError(errors.New("--checkpoint-interval must be at least 1"))
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return usageError(fmt.Errorf("--out %s: %w", out, err))
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return usageError(fmt.Errorf("--out %s exists and is not empty; refusing to overwrite", dir))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return usageError(fmt.Errorf("--out %s: %w", dir, err))
	}
	bin := c.Path("binary")
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("locate flare-node binary (pass --binary): %w", err)
		}
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return usageError(fmt.Errorf("--binary: %w", err))
	}

	// Keys and spec first (in memory), then files.
	keys := make([]ed25519.PrivateKey, n)
	spec := &chainspec.Spec{
		Name:               fmt.Sprintf("Flare Testnet (%d validators)", n),
		ID:                 testnetChainID,
		NetworkID:          "flare-testnet",
		GenesisTimestampMs: uint64(time.Now().UnixMilli()),
		SlotDurationMs:     slotMs,
		CheckpointInterval: c.Uint64("checkpoint-interval"),
		MinFee:             chainspec.DevMinFee,
	}
	for i := range keys {
		if _, keys[i], err = ed25519.GenerateKey(rand.Reader); err != nil {
			return fmt.Errorf("generate validator key: %w", err)
		}
		spec.Authorities = append(spec.Authorities, chainspec.Authority{
			Name:      nodeName(i),
			PublicKey: hex.EncodeToString(keys[i].Public().(ed25519.PublicKey)),
		})
		// Every validator key can send at once.
		spec.Balances = append(spec.Balances, chainspec.Balance{
			Address: "0x" + hex.EncodeToString(keys[i].Public().(ed25519.PublicKey)),
			Balance: chainspec.DevBalance,
		})
	}
	nb := c.Int("bench-accounts")
	if nb < 0 || nb > maxBenchAccounts {
		return usageError(fmt.Errorf("--bench-accounts %d is outside 0..%d", nb, maxBenchAccounts))
	}
	for i := range nb {
		spec.Balances = append(spec.Balances, chainspec.Balance{
			Address: "0x" + hex.EncodeToString(chainspec.BenchKey(i).Public().(ed25519.PublicKey)),
			Balance: chainspec.DevBalance,
		})
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("generated chain spec: %w", err)
	}
	specJSON, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode chain spec: %w", err)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	specPath := filepath.Join(dir, testnetSpecFile)
	if err := os.WriteFile(specPath, append(specJSON, '\n'), 0o644); err != nil {
		return fmt.Errorf("write chain spec: %w", err)
	}
	persistence := config.TestnetPersistence()
	nodes := make([]testnetNode, n)
	for i := range nodes {
		nd := &nodes[i]
		nd.Name = nodeName(i)
		nd.Port = basePort + i
		nd.BasePath = filepath.Join(dir, nd.Name, "data")
		nd.KeyFile = filepath.Join(dir, nd.Name, "validator.key")
		nd.PublicKey = spec.Authorities[i].PublicKey
		if metricsPort > 0 {
			nd.Metrics = "127.0.0.1:" + strconv.Itoa(metricsPort+i)
		}
		if err := os.MkdirAll(filepath.Join(dir, nd.Name), 0o700); err != nil {
			return fmt.Errorf("create node directory: %w", err)
		}
		if err := config.WriteKeyFile(nd.KeyFile, keys[i]); err != nil {
			return err
		}
		cfg := config.Config{BasePath: nd.BasePath, Spec: spec}
		if _, err := p2p.LoadOrCreateNodeKey(cfg.NodeKeyPath()); err != nil {
			return fmt.Errorf("create node key of %s: %w", nd.Name, err)
		}
		id, err := p2p.PeerIDFromKeyFile(cfg.NodeKeyPath())
		if err != nil {
			return fmt.Errorf("node key of %s: %w", nd.Name, err)
		}
		nd.PeerID = id.String()
		// A brand-new validator: its first start creates the signer record
		// (the node key written above would otherwise look like an
		// earlier run).
		if err := node.DeclareFreshSignerRecord(&cfg); err != nil {
			return fmt.Errorf("declare the new validator %s: %w", nd.Name, err)
		}
	}
	boot := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", nodes[0].Port, nodes[0].PeerID)
	for i := range nodes {
		nd := &nodes[i]
		nd.Args = []string{bin,
			"--chain", specPath,
			"--base-path", nd.BasePath,
			"--name", nd.Name,
			"--validator", "--key-file", nd.KeyFile,
			"--enable-asf",
			"--port", strconv.Itoa(nd.Port),
			"--listen-addr", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", nd.Port),
		}
		if i > 0 {
			nd.Args = append(nd.Args, "--bootnodes", boot)
		}
		nd.Args = append(nd.Args,
			"--checkpoint-retention", strconv.FormatUint(persistence.RetentionCheckpoints, 10),
			"--checkpoint-flush-interval", persistence.FlushInterval.String(),
			"--checkpoint-prune-interval", persistence.PruneInterval.String(),
		)
		if nd.Metrics != "" {
			nd.Args = append(nd.Args, "--metrics-addr", nd.Metrics)
		}
	}

	var cmds, envs strings.Builder
	fmt.Fprintf(&cmds, "# FlareChain testnet of %d validators (chain %s, genesis %s)\n", n, spec.ID, genesisOf(spec))
	fmt.Fprintf(&envs, "# FlareChain testnet written by 'flare-node testnet'; read by scripts/testnet.sh\n")
	fmt.Fprintf(&envs, "FLARE_TESTNET_DIR=%s\nFLARE_TESTNET_BIN=%s\nFLARE_TESTNET_CHAIN=%s\nFLARE_TESTNET_GENESIS=%s\nFLARE_TESTNET_NODES=%d\n",
		shellQuote(dir), shellQuote(bin), shellQuote(specPath), genesisOf(spec), n)
	for i, nd := range nodes {
		cmdline := shellJoin(nd.Args)
		fmt.Fprintf(&cmds, "# %s: validator %d, p2p port %d, peer id %s\n%s\n", nd.Name, i, nd.Port, nd.PeerID, cmdline)
		p := fmt.Sprintf("NODE%d_", i)
		fmt.Fprintf(&envs, "%sNAME=%s\n%sPORT=%d\n%sPEER_ID=%s\n%sPUBLIC_KEY=%s\n%sBASE_PATH=%s\n%sKEY_FILE=%s\n%sMETRICS_ADDR=%s\n%sCMD=%s\n",
			p, nd.Name, p, nd.Port, p, nd.PeerID, p, nd.PublicKey, p, shellQuote(nd.BasePath), p, shellQuote(nd.KeyFile),
			p, shellQuote(nd.Metrics), p, shellQuote(cmdline))
	}
	if err := os.WriteFile(filepath.Join(dir, testnetCommandsFile), []byte(cmds.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", testnetCommandsFile, err)
	}
	if err := os.WriteFile(filepath.Join(dir, testnetEnvFile), []byte(envs.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", testnetEnvFile, err)
	}

	w := c.App.Writer
	fmt.Fprintf(w, "Testnet of %d validators written to %s\n", n, dir)
	fmt.Fprintf(w, "Chain spec:  %s (genesis %s)\n", specPath, genesisOf(spec))
	fmt.Fprintf(w, "Bootnode:    %s\n", boot)
	fmt.Fprintf(w, "Commands:    %s\n", filepath.Join(dir, testnetCommandsFile))
	fmt.Fprintf(w, "Start all:   scripts/testnet.sh start %s\n", shellQuote(dir))
	return nil
}

func nodeName(i int) string { return "node" + strconv.Itoa(i) }

// shellQuote quotes s for a POSIX shell (unchanged when it needs no quotes).
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellJoin quotes and joins args into one command line.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
