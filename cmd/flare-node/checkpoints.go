package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// defaultListLimit is how many checkpoints `checkpoints list` shows.
const defaultListLimit = 20

func checkpointsCommand() *cli.Command {
	listFlags := append(locationFlags(),
		&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: defaultListLimit, Usage: "show the latest `N` checkpoints (0: all retained)"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
	)
	showFlags := append(locationFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"})
	return &cli.Command{
		Name:   "checkpoints",
		Usage:  "look into the checkpoint database of a stopped node (read-only)",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "show the justified and finalized checkpoints and the latest retained checkpoints",
				Flags:  listFlags,
				Action: checkpointsList,
			},
			{
				Name:      "show",
				Usage:     "show one checkpoint: level, weight, hash, certificate and every vote",
				ArgsUsage: "NUMBER",
				Flags:     showFlags,
				Action:    checkpointsShow,
			},
		},
	}
}

// locate builds the configuration of an offline tool: the location flags
// layered like the node's, validated (the validator key is not needed and
// not checked).
func locate(c *cli.Context) (*config.Config, error) {
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
	cfg.Validator, cfg.KeyName, cfg.KeyFile, cfg.Tmp = false, "", "", false
	if err := cfg.Validate(); err != nil {
		return nil, usageError(err)
	}
	return &cfg, nil
}

// openCheckpointDB opens the checkpoint database of cfg read-only.
func openCheckpointDB(cfg *config.Config) (*checkpointdb.CheckpointDB, error) {
	path := cfg.CheckpointDBPath()
	db, err := checkpointdb.Open(path, checkpointdb.Options{Genesis: genesisOf(cfg.Spec), ReadOnly: true})
	switch {
	case errors.Is(err, checkpointdb.ErrNotExist):
		return nil, usageError(fmt.Errorf("no checkpoint database at %s (has a node with --enable-asf run on chain %s with this base path?)", path, cfg.Spec.ID))
	case errors.Is(err, checkpointdb.ErrLocked):
		return nil, usageError(fmt.Errorf("%w (the checkpoints commands read a stopped node's database)", err))
	case err != nil:
		return nil, usageError(err)
	}
	return db, nil
}

// checkpointJSON is one checkpoint in the JSON output.
type checkpointJSON struct {
	Number      uint64           `json:"number"`
	Block       uint64           `json:"block"`
	Level       string           `json:"level"`
	Justified   bool             `json:"justified"`
	Finalized   bool             `json:"finalized"`
	Weight      int              `json:"weight"`
	Hash        string           `json:"hash,omitempty"`
	Certificate *certificateJSON `json:"certificate,omitempty"`
	Signers     []uint32         `json:"signers"`
	Votes       []voteJSON       `json:"votes,omitempty"`
}

type pointJSON struct {
	Number uint64 `json:"number"`
	Hash   string `json:"hash"`
}

type certificateJSON struct {
	Source  pointJSON `json:"source"`
	Target  pointJSON `json:"target"`
	Signers []uint32  `json:"signers"`
}

type voteJSON struct {
	Validator uint32    `json:"validator"`
	Name      string    `json:"name,omitempty"`
	Source    pointJSON `json:"source"`
	Target    pointJSON `json:"target"`
	Signature string    `json:"signature"`
}

// summaryJSON is the JSON output of `checkpoints list`.
type summaryJSON struct {
	Chain          string           `json:"chain"`
	Genesis        string           `json:"genesis"`
	Database       string           `json:"database"`
	Authorities    int              `json:"authorities"`
	Quorum         int              `json:"quorum"`
	Justified      *pointJSON       `json:"justified"`
	Finalized      *pointJSON       `json:"finalized"`
	OldestRetained uint64           `json:"oldest_retained"`
	Checkpoints    []checkpointJSON `json:"checkpoints"`
}

func point(cp checkpoint.Checkpoint) pointJSON {
	return pointJSON{Number: cp.Number, Hash: cp.Hash.String()}
}

func pointPtr(cp *checkpoint.Checkpoint) *pointJSON {
	if cp == nil {
		return nil
	}
	p := point(*cp)
	return &p
}

// levelName is the operator's word for a finality level.
func levelName(l checkpointdb.Level) string {
	switch l {
	case checkpointdb.LevelFinality:
		return "finalized"
	case checkpointdb.LevelCommitment:
		return "justified"
	case checkpointdb.LevelPreCommitment:
		return "voting"
	default:
		return "unknown"
	}
}

// inspector reads one checkpoint database for the checkpoints commands.
type inspector struct {
	cfg                  *config.Config
	db                   *checkpointdb.CheckpointDB
	quorum               int
	justified, finalized *checkpoint.Checkpoint
}

func newInspector(ctx context.Context, cfg *config.Config) (*inspector, error) {
	db, err := openCheckpointDB(cfg)
	if err != nil {
		return nil, err
	}
	in := &inspector{cfg: cfg, db: db, quorum: cfg.Spec.AuthoritySet().Quorum()}
	if in.justified, in.finalized, err = db.Pointers(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("read finality pointers: %w", err)
	}
	return in, nil
}

func (in *inspector) Close() error { return in.db.Close() }

// numbers returns every checkpoint number the database knows something
// about (certificates, votes, pointers), ascending.
func (in *inspector) numbers(ctx context.Context) ([]uint64, error) {
	certs, err := in.db.Certificates(ctx, 0, math.MaxUint64, 0)
	if err != nil {
		return nil, fmt.Errorf("read certificates: %w", err)
	}
	state, err := in.db.Restore(ctx)
	if err != nil {
		return nil, fmt.Errorf("read votes: %w", err)
	}
	var nums []uint64
	for _, c := range certs {
		nums = append(nums, c.Target.Number)
	}
	for _, v := range state.Votes {
		nums = append(nums, v.Target.Number)
	}
	for _, p := range []*checkpoint.Checkpoint{in.justified, in.finalized} {
		if p != nil {
			nums = append(nums, p.Number)
		}
	}
	slices.Sort(nums)
	return slices.Compact(nums), nil
}

// checkpoint describes number; with votes it includes every vote.
func (in *inspector) checkpoint(ctx context.Context, number uint64, withVotes bool) (checkpointJSON, error) {
	st, err := in.db.Status(ctx, number, in.quorum)
	if err != nil {
		return checkpointJSON{}, fmt.Errorf("checkpoint %d: %w", number, err)
	}
	votes, err := in.db.Votes(ctx, number)
	if err != nil {
		return checkpointJSON{}, fmt.Errorf("checkpoint %d votes: %w", number, err)
	}
	out := checkpointJSON{
		Number:    number,
		Block:     number * in.cfg.Spec.CheckpointInterval,
		Level:     levelName(st.Level),
		Justified: st.Level >= checkpointdb.LevelCommitment,
		Finalized: st.Level == checkpointdb.LevelFinality,
		Weight:    st.Weight,
		Signers:   []uint32{},
	}
	if !st.Hash.IsZero() {
		out.Hash = st.Hash.String()
	}
	for _, v := range votes {
		if v.Target.Hash == st.Hash && !slices.Contains(out.Signers, uint32(v.Validator)) {
			out.Signers = append(out.Signers, uint32(v.Validator))
		}
	}
	slices.Sort(out.Signers)
	if st.HasCertificate {
		cert, found, err := in.db.Certificate(ctx, number)
		if err != nil {
			return checkpointJSON{}, fmt.Errorf("checkpoint %d certificate: %w", number, err)
		}
		if found {
			cj := &certificateJSON{Source: point(cert.Source), Target: point(cert.Target), Signers: []uint32{}}
			for _, s := range cert.Signatures {
				cj.Signers = append(cj.Signers, uint32(s.Validator))
			}
			out.Certificate = cj
		}
	}
	if withVotes {
		for _, v := range votes {
			out.Votes = append(out.Votes, voteJSON{
				Validator: uint32(v.Validator),
				Name:      in.authorityName(v.Validator),
				Source:    point(v.Source),
				Target:    point(v.Target),
				Signature: fmt.Sprintf("0x%x", v.Signature[:]),
			})
		}
	}
	return out, nil
}

func (in *inspector) authorityName(i checkpoint.ValidatorIndex) string {
	if int(i) < len(in.cfg.Spec.Authorities) {
		return in.cfg.Spec.Authorities[i].Name
	}
	return ""
}

func checkpointsList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	limit := c.Int("limit")
	if limit < 0 {
		return usageError(fmt.Errorf("--limit %d must not be negative", limit))
	}
	cfg, err := locate(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	in, err := newInspector(ctx, cfg)
	if err != nil {
		return err
	}
	defer in.Close()
	nums, err := in.numbers(ctx)
	if err != nil {
		return err
	}
	if limit > 0 && len(nums) > limit {
		nums = nums[len(nums)-limit:]
	}
	sum := summaryJSON{
		Chain:          cfg.Spec.ID,
		Genesis:        genesisOf(cfg.Spec).String(),
		Database:       cfg.CheckpointDBPath(),
		Authorities:    len(cfg.Spec.Authorities),
		Quorum:         in.quorum,
		Justified:      pointPtr(in.justified),
		Finalized:      pointPtr(in.finalized),
		OldestRetained: in.db.Stats().OldestRetained,
		Checkpoints:    []checkpointJSON{},
	}
	for _, n := range nums {
		cj, err := in.checkpoint(ctx, n, false)
		if err != nil {
			return err
		}
		sum.Checkpoints = append(sum.Checkpoints, cj)
	}
	w := c.App.Writer
	if c.Bool("json") {
		return writeJSON(w, sum)
	}
	fmt.Fprintf(w, "Chain:        %s (%s), genesis %s\n", cfg.Spec.Name, cfg.Spec.ID, sum.Genesis)
	fmt.Fprintf(w, "Database:     %s\n", sum.Database)
	fmt.Fprintf(w, "Justified:    %s\n", describePointer(in.justified))
	fmt.Fprintf(w, "Finalized:    %s\n", describePointer(in.finalized))
	fmt.Fprintf(w, "Authorities:  %d (quorum %d)\n", sum.Authorities, sum.Quorum)
	fmt.Fprintf(w, "Retained:     checkpoints from %d\n", sum.OldestRetained)
	if len(sum.Checkpoints) == 0 {
		fmt.Fprintln(w, "\nNo checkpoints stored yet.")
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECKPOINT\tBLOCK\tLEVEL\tWEIGHT\tCERT\tHASH\tSIGNERS")
	for _, cj := range sum.Checkpoints {
		cert := "-"
		if cj.Certificate != nil {
			cert = "yes"
		}
		hash := cj.Hash
		if hash == "" {
			hash = "-"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d/%d\t%s\t%s\t%s\n", cj.Number, cj.Block, cj.Level, cj.Weight, sum.Authorities, cert, hash, joinIndexes(cj.Signers))
	}
	return tw.Flush()
}

func checkpointsShow(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(fmt.Errorf("checkpoints show needs one checkpoint number, got %d arguments", c.NArg()))
	}
	number, err := strconv.ParseUint(c.Args().First(), 10, 64)
	if err != nil {
		return usageError(fmt.Errorf("checkpoint number %q is not a non-negative integer", c.Args().First()))
	}
	cfg, err := locate(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	in, err := newInspector(ctx, cfg)
	if err != nil {
		return err
	}
	defer in.Close()
	cj, err := in.checkpoint(ctx, number, true)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		return writeJSON(w, cj)
	}
	n := len(cfg.Spec.Authorities)
	fmt.Fprintf(w, "Checkpoint:   %d (block %d)\n", cj.Number, cj.Block)
	fmt.Fprintf(w, "Level:        %s\n", cj.Level)
	if cj.Hash != "" {
		fmt.Fprintf(w, "Hash:         %s\n", cj.Hash)
	} else {
		fmt.Fprintf(w, "Hash:         unknown (not reached yet, or its votes were pruned)\n")
	}
	fmt.Fprintf(w, "Weight:       %d of %d validators (quorum %d)\n", cj.Weight, n, in.quorum)
	fmt.Fprintf(w, "Signers:      %s\n", in.describeSigners(cj.Signers))
	if cj.Certificate != nil {
		fmt.Fprintf(w, "Certificate:  %d/%s -> %d/%s\n", cj.Certificate.Source.Number, cj.Certificate.Source.Hash,
			cj.Certificate.Target.Number, cj.Certificate.Target.Hash)
		fmt.Fprintf(w, "              signed by %s\n", in.describeSigners(cj.Certificate.Signers))
	} else {
		fmt.Fprintln(w, "Certificate:  none")
	}
	if len(cj.Votes) == 0 {
		fmt.Fprintln(w, "Votes:        none")
		return nil
	}
	fmt.Fprintf(w, "Votes:        %d\n", len(cj.Votes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VALIDATOR\tNAME\tSOURCE\tTARGET")
	for _, v := range cj.Votes {
		fmt.Fprintf(tw, "  %d\t%s\t%d/%s\t%d/%s\n", v.Validator, v.Name, v.Source.Number, v.Source.Hash, v.Target.Number, v.Target.Hash)
	}
	return tw.Flush()
}

func (in *inspector) describeSigners(idx []uint32) string {
	if len(idx) == 0 {
		return "none"
	}
	parts := make([]string, len(idx))
	for i, v := range idx {
		parts[i] = strconv.FormatUint(uint64(v), 10)
		if name := in.authorityName(checkpoint.ValidatorIndex(v)); name != "" {
			parts[i] += " (" + name + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func describePointer(cp *checkpoint.Checkpoint) string {
	if cp == nil {
		return "none beyond genesis"
	}
	return fmt.Sprintf("%d (%s)", cp.Number, cp.Hash)
}

func joinIndexes(idx []uint32) string {
	if len(idx) == 0 {
		return "-"
	}
	parts := make([]string, len(idx))
	for i, v := range idx {
		parts[i] = strconv.FormatUint(uint64(v), 10)
	}
	return strings.Join(parts, ",")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	return nil
}
