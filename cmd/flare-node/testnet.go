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
	"slices"
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
			"every node but node0 uses node0 as its only bootnode and finds the others through peer discovery.\n" +
			"--join-at H writes one more validator, node<N> (not in the genesis set), and schedules its addition\n" +
			"at hand-off checkpoint H (the next set id); --leave-at H2 schedules the removal of node0 at hand-off\n" +
			"checkpoint H2 (after the join when both are given). The spec's authority_changes hold the schedule.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "validators", Aliases: []string{"n"}, Value: 4, Usage: "number of validators"},
			&cli.PathFlag{Name: "out", Aliases: []string{"o"}, Usage: "output `DIR` (must not exist or be empty)"},
			&cli.IntFlag{Name: "base-port", Value: config.DefaultPort, Usage: "p2p port of node0; node i uses base-port + i"},
			&cli.IntFlag{Name: "metrics-base-port", Value: defaultTestnetMetricsPort, Usage: "metrics/status port of node0 on 127.0.0.1 (node i: + i; scripts/testnet.sh status reads it); 0 leaves metrics off"},
			&cli.DurationFlag{Name: "slot-duration", Value: time.Second, Usage: "block production slot length"},
			&cli.Uint64Flag{Name: "checkpoint-interval", Value: 4, Usage: "blocks between checkpoints"},
			&cli.PathFlag{Name: "binary", Usage: "flare-node binary used in the command lines (default: this executable)"},
			&cli.IntFlag{Name: "bench-accounts", Value: 0, Usage: "also endow the first `N` well-known bench keys (chainspec.BenchKey; for flare-node bench tx-load)"},
			&cli.Uint64Flag{Name: "join-at", Usage: "write one more validator, not in the genesis set, and schedule its addition at hand-off checkpoint `H` (set id + 1)"},
			&cli.Uint64Flag{Name: "leave-at", Usage: "schedule the removal of node0 at hand-off checkpoint `H2` (above --join-at when both are given)"},
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
	join, leave := c.IsSet("join-at"), c.IsSet("leave-at")
	joinAt, leaveAt := c.Uint64("join-at"), c.Uint64("leave-at")
	// total counts the nodes written: the genesis validators and the
	// joiner of --join-at.
	total := n
	if join {
		total++
	}
	switch {
	case out == "":
		return usageError(errors.New("testnet needs --out DIR"))
	case n < 1 || n > chainspec.MaxAuthorities:
		return usageError(fmt.Errorf("--validators %d is outside 1..%d", n, chainspec.MaxAuthorities))
	case join && n >= chainspec.MaxAuthorities:
		return usageError(fmt.Errorf("--join-at with --validators %d: the joined set would exceed %d validators", n, chainspec.MaxAuthorities))
	case join && joinAt < 1:
		return usageError(errors.New("--join-at must be a checkpoint number of at least 1"))
	case leave && leaveAt < 1:
		return usageError(errors.New("--leave-at must be a checkpoint number of at least 1"))
	case join && leave && leaveAt <= joinAt:
		return usageError(fmt.Errorf("--leave-at %d must be above --join-at %d (the removal follows the addition)", leaveAt, joinAt))
	case basePort < 1 || basePort+total-1 > 65535:
		return usageError(fmt.Errorf("--base-port %d: ports %d..%d must lie within 1..65535", basePort, basePort, basePort+total-1))
	case metricsPort < 0 || (metricsPort > 0 && metricsPort+total-1 > 65535):
		return usageError(fmt.Errorf("--metrics-base-port %d: ports must lie within 1..65535", metricsPort))
	case metricsPort > 0 && metricsPort < basePort+total && basePort < metricsPort+total:
		return usageError(fmt.Errorf("--metrics-base-port %d overlaps the p2p ports %d..%d", metricsPort, basePort, basePort+total-1))
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

	// Keys and spec first (in memory), then files. keys[n] is the joiner's.
	keys := make([]ed25519.PrivateKey, total)
	spec := &chainspec.Spec{
		Name:               fmt.Sprintf("Flare Testnet (%d validators)", n),
		ID:                 testnetChainID,
		NetworkID:          "flare-testnet",
		GenesisTimestampMs: uint64(time.Now().UnixMilli()),
		SlotDurationMs:     slotMs,
		CheckpointInterval: c.Uint64("checkpoint-interval"),
		MinFee:             chainspec.DevMinFee,
	}
	pubs := make([]string, total)
	for i := range keys {
		if _, keys[i], err = ed25519.GenerateKey(rand.Reader); err != nil {
			return fmt.Errorf("generate validator key: %w", err)
		}
		pubs[i] = hex.EncodeToString(keys[i].Public().(ed25519.PublicKey))
		if i < n {
			spec.Authorities = append(spec.Authorities, chainspec.Authority{Name: nodeName(i), PublicKey: pubs[i]})
		}
		// Every validator key (the joiner's too) can send at once.
		spec.Balances = append(spec.Balances, chainspec.Balance{
			Address: "0x" + pubs[i],
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
	// The schedule: the joiner is added (set id + 1), then node0 leaves
	// (the next set id), each at its hand-off checkpoint.
	set := slices.Clone(pubs[:n])
	if join {
		set = append(set, pubs[n])
		spec.AuthorityChanges = append(spec.AuthorityChanges, chainspec.AuthorityChange{
			SetID: spec.SetID + uint64(len(spec.AuthorityChanges)) + 1, HandOff: joinAt, Authorities: set,
		})
	}
	if leave {
		set = slices.Clone(set[1:])
		spec.AuthorityChanges = append(spec.AuthorityChanges, chainspec.AuthorityChange{
			SetID: spec.SetID + uint64(len(spec.AuthorityChanges)) + 1, HandOff: leaveAt, Authorities: set,
		})
	}
	if err := spec.Schedule().Validate(); err != nil {
		return usageError(fmt.Errorf("--join-at/--leave-at with %d validators: %w", n, err))
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
	nodes := make([]testnetNode, total)
	for i := range nodes {
		nd := &nodes[i]
		nd.Name = nodeName(i)
		nd.Port = basePort + i
		nd.BasePath = filepath.Join(dir, nd.Name, "data")
		nd.KeyFile = filepath.Join(dir, nd.Name, "validator.key")
		nd.PublicKey = pubs[i]
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
	for _, ch := range spec.AuthorityChanges {
		fmt.Fprintf(&cmds, "# set %d takes over at hand-off checkpoint %d: %d validators\n", ch.SetID, ch.HandOff, len(ch.Authorities))
	}
	fmt.Fprintf(&envs, "# FlareChain testnet written by 'flare-node testnet'; read by scripts/testnet.sh\n")
	// FLARE_TESTNET_NODES counts every node written, the joiner included
	// (scripts/testnet.sh starts, stops and reports NODE0..NODE<NODES-1>).
	fmt.Fprintf(&envs, "FLARE_TESTNET_DIR=%s\nFLARE_TESTNET_BIN=%s\nFLARE_TESTNET_CHAIN=%s\nFLARE_TESTNET_GENESIS=%s\nFLARE_TESTNET_NODES=%d\n",
		shellQuote(dir), shellQuote(bin), shellQuote(specPath), genesisOf(spec), total)
	// The schedule, for scripts: the genesis validators are NODE0..NODE<n-1>;
	// empty when the flag was not given.
	fmt.Fprintf(&envs, "FLARE_TESTNET_GENESIS_VALIDATORS=%d\nFLARE_TESTNET_JOIN_AT=%s\nFLARE_TESTNET_LEAVE_AT=%s\n",
		n, optUint(join, joinAt), optUint(leave, leaveAt))
	for i, nd := range nodes {
		cmdline := shellJoin(nd.Args)
		role := fmt.Sprintf("validator %d", i)
		switch {
		case i == n:
			role = fmt.Sprintf("joins the authority set at hand-off checkpoint %d (set %d)", joinAt, spec.AuthorityChanges[0].SetID)
		case i == 0 && leave:
			role = fmt.Sprintf("validator 0, leaves the authority set at hand-off checkpoint %d (set %d)", leaveAt, spec.AuthorityChanges[len(spec.AuthorityChanges)-1].SetID)
		}
		fmt.Fprintf(&cmds, "# %s: %s, p2p port %d, peer id %s\n%s\n", nd.Name, role, nd.Port, nd.PeerID, cmdline)
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
	if join {
		fmt.Fprintf(w, "Joins:       %s at hand-off checkpoint %d (set %d)\n", nodeName(n), joinAt, spec.AuthorityChanges[0].SetID)
	}
	if leave {
		fmt.Fprintf(w, "Leaves:      %s at hand-off checkpoint %d (set %d)\n", nodeName(0), leaveAt, spec.AuthorityChanges[len(spec.AuthorityChanges)-1].SetID)
	}
	fmt.Fprintf(w, "Bootnode:    %s\n", boot)
	fmt.Fprintf(w, "Commands:    %s\n", filepath.Join(dir, testnetCommandsFile))
	fmt.Fprintf(w, "Start all:   scripts/testnet.sh start %s\n", shellQuote(dir))
	return nil
}

func nodeName(i int) string { return "node" + strconv.Itoa(i) }

// optUint is v in decimal when set, else "".
func optUint(set bool, v uint64) string {
	if !set {
		return ""
	}
	return strconv.FormatUint(v, 10)
}

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
