package main

import (
	"bufio"
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
		Usage:  "look into (read-only) or clear the halts of the checkpoint database of a stopped node",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "show the justified and finalized checkpoints, active halts and the latest retained checkpoints",
				Flags:  listFlags,
				Action: checkpointsList,
			},
			{
				Name:      "show",
				Usage:     "show one checkpoint (level, weight, hash, certificate, every vote), the signer records and active halts",
				ArgsUsage: "NUMBER",
				Flags:     showFlags,
				Action:    checkpointsShow,
			},
			{
				Name:  "clear-halt",
				Usage: "remove the persisted safety halts (conflicting finality, doppelganger) after investigation",
				Description: "Prints every active halt with its evidence and, after confirmation, removes them all: the validator\n" +
					"votes again at its next start, unless the evidence that raised a halt (kept stored) raises it again;\n" +
					"the command prints a Note for each halt that will. A halt never lifts by itself; clear it only once you know why it was\n" +
					"raised (docs/storage.md, Halts). The node must be stopped. Exit 2 when there is nothing to clear or\n" +
					"the confirmation is declined.",
				Flags: append(locationFlags(),
					&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation"},
				),
				Action: checkpointsClearHalt,
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

// openCheckpointDB opens the checkpoint database of cfg read-only; tool
// names the command in messages.
func openCheckpointDB(cfg *config.Config, tool string) (*checkpointdb.CheckpointDB, error) {
	path := cfg.CheckpointDBPath()
	db, err := checkpointdb.Open(path, checkpointdb.Options{Genesis: genesisOf(cfg.Spec), ReadOnly: true})
	switch {
	case errors.Is(err, checkpointdb.ErrNotExist):
		return nil, usageError(fmt.Errorf("no checkpoint database at %s (has a node with --enable-asf run on chain %s with this base path?)", path, cfg.Spec.ID))
	case errors.Is(err, checkpointdb.ErrLocked):
		return nil, usageError(fmt.Errorf("%w (%s reads a stopped node's database)", err, tool))
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
	HighWaterMark  hwmJSON          `json:"high_water_mark"`
	Halts          []haltJSON       `json:"halts"`
	Checkpoints    []checkpointJSON `json:"checkpoints"`
}

// showJSON is the JSON output of `checkpoints show`: the checkpoint, the
// signer records and the active halts.
type showJSON struct {
	checkpointJSON
	SignerRecords []signerRecordJSON `json:"signer_records"`
	HighWaterMark hwmJSON            `json:"high_water_mark"`
	Halts         []haltJSON         `json:"halts"`
}

// signerRecordJSON is one signer record: its last signed vote and the
// watermarks the next vote must respect (target above, source at or above).
type signerRecordJSON struct {
	PublicKey  string    `json:"public_key"`
	Validator  *uint32   `json:"validator,omitempty"`
	Name       string    `json:"name,omitempty"`
	LastVote   *voteJSON `json:"last_vote"`
	MinTarget  uint64    `json:"min_target"`
	MinSource  uint64    `json:"min_source"`
	NextTarget uint64    `json:"next_vote_target_above"`
	NextSource uint64    `json:"next_vote_source_at_least"`
}

// hwmJSON is the high-water mark.
type hwmJSON struct {
	Path      string     `json:"path"`
	Finalized *pointJSON `json:"finalized"`
	Problem   string     `json:"problem,omitempty"`
}

// haltJSON is one active halt.
type haltJSON struct {
	Reason     string `json:"reason"`
	Checkpoint uint64 `json:"checkpoint"`
	Detail     string `json:"detail,omitempty"`
	Evidence   string `json:"evidence,omitempty"`
	Vote       string `json:"vote,omitempty"`
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

// inspector reads one checkpoint database for the checkpoints commands.
type inspector struct {
	cfg                  *config.Config
	db                   *checkpointdb.CheckpointDB
	quorum               int
	justified, finalized *checkpoint.Checkpoint
}

func newInspector(ctx context.Context, cfg *config.Config, tool string) (*inspector, error) {
	db, err := openCheckpointDB(cfg, tool)
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
		Level:     st.Level.String(),
		Justified: st.Level >= checkpointdb.LevelCommitment,
		Finalized: st.Level == checkpointdb.LevelFinality,
		Weight:    st.Weight,
		Signers:   []uint32{},
	}
	if number == 0 {
		// Genesis is final by definition.
		out.Level, out.Justified, out.Finalized = checkpointdb.LevelFinality.String(), true, true
		st.Hash = in.db.Genesis()
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
	in, err := newInspector(ctx, cfg, "checkpoints list")
	if err != nil {
		return err
	}
	defer in.Close()
	nums, err := in.numbers(ctx)
	if err != nil {
		return err
	}
	halts, err := in.halts(ctx)
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
		HighWaterMark:  in.hwm(),
		Halts:          halts,
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
	writeHWM(w, sum.HighWaterMark)
	writeHalts(w, sum.Halts)
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
	in, err := newInspector(ctx, cfg, "checkpoints show")
	if err != nil {
		return err
	}
	defer in.Close()
	if err := in.checkKnown(ctx, number); err != nil {
		return err
	}
	cj, err := in.checkpoint(ctx, number, true)
	if err != nil {
		return err
	}
	out := showJSON{checkpointJSON: cj, HighWaterMark: in.hwm()}
	if out.SignerRecords, err = in.signerRecords(ctx); err != nil {
		return err
	}
	if out.Halts, err = in.halts(ctx); err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		return writeJSON(w, out)
	}
	n := len(cfg.Spec.Authorities)
	fmt.Fprintf(w, "Checkpoint:   %d (block %d)\n", cj.Number, cj.Block)
	fmt.Fprintf(w, "Level:        %s\n", cj.Level)
	if cj.Hash != "" {
		fmt.Fprintf(w, "Hash:         %s\n", cj.Hash)
	} else {
		fmt.Fprintf(w, "Hash:         not stored (no vote or certificate for this checkpoint reached this node)\n")
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
	} else {
		fmt.Fprintf(w, "Votes:        %d\n", len(cj.Votes))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VALIDATOR\tNAME\tSOURCE\tTARGET")
		for _, v := range cj.Votes {
			fmt.Fprintf(tw, "  %d\t%s\t%d/%s\t%d/%s\n", v.Validator, v.Name, v.Source.Number, v.Source.Hash, v.Target.Number, v.Target.Hash)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	writeSignerRecords(w, out.SignerRecords)
	writeHWM(w, out.HighWaterMark)
	writeHalts(w, out.Halts)
	return nil
}

// checkKnown refuses (exit 2) a checkpoint number the database cannot say
// anything about: above every checkpoint it knows, or pruned.
func (in *inspector) checkKnown(ctx context.Context, number uint64) error {
	if number == 0 {
		return nil // genesis
	}
	nums, err := in.numbers(ctx)
	if err != nil {
		return err
	}
	path := in.cfg.CheckpointDBPath()
	fin := "none"
	if in.finalized != nil {
		fin = strconv.FormatUint(in.finalized.Number, 10)
	}
	if len(nums) == 0 || number > nums[len(nums)-1] {
		highest := "none yet"
		if len(nums) > 0 {
			highest = strconv.FormatUint(nums[len(nums)-1], 10)
		}
		return usageError(fmt.Errorf("checkpoint %d is above every checkpoint the database at %s knows (highest: %s, finalized: %s)", number, path, highest, fin))
	}
	if base := in.db.Stats().OldestRetained; number < base {
		return usageError(fmt.Errorf("checkpoint %d was pruned: the database at %s keeps checkpoints from %d (finalized: %s); its block is in the chain database", number, path, base, fin))
	}
	return nil
}

// signerRecords describes every signer record (merged with the high-water
// mark).
func (in *inspector) signerRecords(ctx context.Context) ([]signerRecordJSON, error) {
	recs, err := in.db.SignerRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("read signer records: %w", err)
	}
	out := []signerRecordJSON{}
	keys := in.cfg.Spec.AuthoritySet().Keys
	for _, r := range recs {
		sj := signerRecordJSON{PublicKey: fmt.Sprintf("0x%x", []byte(r.PublicKey)), MinTarget: r.MinTarget, MinSource: r.MinSource}
		for i, k := range keys {
			if k.Equal(r.PublicKey) {
				idx := uint32(i)
				sj.Validator, sj.Name = &idx, in.cfg.Spec.Authorities[i].Name
			}
		}
		sj.NextTarget, sj.NextSource = r.MinTarget, r.MinSource
		if r.Last != nil {
			sj.LastVote = &voteJSON{Validator: uint32(r.Last.Validator), Name: in.authorityName(r.Last.Validator),
				Source: point(r.Last.Source), Target: point(r.Last.Target), Signature: fmt.Sprintf("0x%x", r.Last.Signature[:])}
			sj.NextTarget, sj.NextSource = max(sj.NextTarget, r.Last.Target.Number), max(sj.NextSource, r.Last.Source.Number)
		}
		out = append(out, sj)
	}
	return out, nil
}

// hwm describes the high-water mark.
func (in *inspector) hwm() hwmJSON {
	hw := in.db.HighWaterMark()
	out := hwmJSON{Path: hw.Path, Finalized: pointPtr(hw.Finalized)}
	if hw.Problem != nil {
		out.Problem = hw.Problem.Error()
	}
	return out
}

// halts describes every active halt.
func (in *inspector) halts(ctx context.Context) ([]haltJSON, error) {
	hs, err := in.db.Halts(ctx)
	if err != nil {
		return nil, fmt.Errorf("read halts: %w", err)
	}
	out := []haltJSON{}
	for _, h := range hs {
		hj := haltJSON{Reason: h.Reason.String(), Checkpoint: h.Checkpoint, Detail: h.Detail}
		if h.Evidence != nil {
			hj.Evidence = describeEvidence(*h.Evidence)
		}
		if h.Vote != nil {
			hj.Vote = fmt.Sprintf("%s -> %s signed as validator %d", h.Vote.Source, h.Vote.Target, h.Vote.Validator)
		}
		out = append(out, hj)
	}
	return out, nil
}

// describeEvidence summarizes evidence on one line.
func describeEvidence(e checkpoint.Evidence) string {
	switch {
	case e.Kind == checkpoint.EvidenceConflictingFinality && e.Certificate != nil:
		signers := make([]uint32, len(e.Certificate.Signatures))
		for i, s := range e.Certificate.Signatures {
			signers[i] = uint32(s.Validator)
		}
		return fmt.Sprintf("conflicting-finality: certificate %d/%s -> %d/%s signed by validators %s",
			e.Certificate.Source.Number, e.Certificate.Source.Hash, e.Certificate.Target.Number, e.Certificate.Target.Hash, joinIndexes(signers))
	case e.First != nil && e.Second != nil:
		return fmt.Sprintf("%s by validator %d: %s -> %s and %s -> %s", e.Kind, e.Validator,
			e.First.Source, e.First.Target, e.Second.Source, e.Second.Target)
	default:
		return fmt.Sprintf("%s about checkpoint %d", e.Kind, e.Checkpoint)
	}
}

func writeSignerRecords(w io.Writer, recs []signerRecordJSON) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "Signer records: none")
		return
	}
	fmt.Fprintf(w, "Signer records: %d\n", len(recs))
	for _, r := range recs {
		who := r.PublicKey
		if r.Validator != nil {
			who = fmt.Sprintf("%s (validator %d %s)", r.PublicKey, *r.Validator, r.Name)
		}
		fmt.Fprintf(w, "  %s\n", who)
		if r.LastVote != nil {
			fmt.Fprintf(w, "    last vote:  %d/%s -> %d/%s\n", r.LastVote.Source.Number, r.LastVote.Source.Hash, r.LastVote.Target.Number, r.LastVote.Target.Hash)
		} else {
			fmt.Fprintln(w, "    last vote:  none stored")
		}
		fmt.Fprintf(w, "    next vote:  target above %d, source at least %d\n", r.NextTarget, r.NextSource)
	}
}

func writeHWM(w io.Writer, h hwmJSON) {
	fin := "none"
	if h.Finalized != nil {
		fin = fmt.Sprintf("%d (%s)", h.Finalized.Number, h.Finalized.Hash)
	}
	fmt.Fprintf(w, "High-water:   finalized %s, %s\n", fin, h.Path)
	if h.Problem != "" {
		fmt.Fprintf(w, "              PROBLEM (a node would refuse to start): %s\n", h.Problem)
	}
}

func writeHalts(w io.Writer, hs []haltJSON) {
	if len(hs) == 0 {
		fmt.Fprintln(w, "Halts:        none")
		return
	}
	fmt.Fprintf(w, "Halts:        %d active: this validator does not vote until 'flare-node checkpoints clear-halt'\n", len(hs))
	for _, h := range hs {
		fmt.Fprintf(w, "  %s at checkpoint %d", h.Reason, h.Checkpoint)
		if h.Detail != "" {
			fmt.Fprintf(w, ": %s", h.Detail)
		}
		fmt.Fprintln(w)
		if h.Evidence != "" {
			fmt.Fprintf(w, "    evidence: %s\n", h.Evidence)
		}
		if h.Vote != "" {
			fmt.Fprintf(w, "    vote:     %s\n", h.Vote)
		}
	}
}

func checkpointsClearHalt(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := locate(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	// Read the halts without writing anything; reopen for writing only
	// after the confirmation.
	in, err := newInspector(ctx, cfg, "checkpoints clear-halt")
	if err != nil {
		return err
	}
	halts, err := in.halts(ctx)
	in.Close()
	if err != nil {
		return err
	}
	path := cfg.CheckpointDBPath()
	if len(halts) == 0 {
		return usageError(fmt.Errorf("no active halt in the checkpoint database at %s: nothing to clear", path))
	}
	w := c.App.Writer
	writeHalts(w, halts)
	writeRehalts(w, halts)
	if !c.Bool("yes") {
		fmt.Fprintf(w, "Clear %d halt(s)? The validator votes again at its next start unless stored evidence noted above raises the alarm again. [y/N]: ", len(halts))
		answer, err := bufio.NewReader(c.App.Reader).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read confirmation: %w", err)
		}
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(w)
			return usageError(errors.New("aborted: no halt was cleared"))
		}
	}
	db, err := openCheckpointDBRW(cfg, "checkpoints clear-halt")
	if err != nil {
		return err
	}
	n, err := db.ClearHalts(ctx)
	if err != nil {
		db.Close()
		return fmt.Errorf("clear halts: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close checkpoint database: %w", err)
	}
	fmt.Fprintf(w, "Cleared %d halt(s) in %s\n", n, path)
	return nil
}

// writeRehalts says which cleared halts the next start raises again: the
// evidence that raised them stays in the database (it is kept as
// evidence), and the restored state judges it again.
func writeRehalts(w io.Writer, halts []haltJSON) {
	for _, h := range halts {
		switch {
		case h.Reason == checkpoint.HaltDoppelganger.String() && h.Vote != "":
			fmt.Fprintf(w, "Note: the foreign vote %s of the doppelganger halt at checkpoint %d stays stored: the next start halts again unless this validator's signer record has watermarks at or above its source and target and its last vote does not conflict with it; stop the other instance first, and if an earlier life of this key signed it, raise the record with 'flare-node signer import' of an export that covers it.\n",
				h.Vote, h.Checkpoint)
		case h.Reason == checkpoint.HaltConflictingFinality.String():
			fmt.Fprintf(w, "Note: the conflicting-finality halt at checkpoint %d halts again at the next start while the conflicting certificates or proof that raised it are still stored.\n", h.Checkpoint)
		}
	}
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
