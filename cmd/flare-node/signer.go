package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
)

func signerCommand() *cli.Command {
	return &cli.Command{
		Name:   "signer",
		Usage:  "export or import the signer records (slashing protection) of a stopped node, EIP-3076 style (docs/signer.md)",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:  "export",
				Usage: "write the signer records of the chain's checkpoint database to a new interchange file",
				Description: "Writes every signer record (merged with the high-water mark) as an EIP-3076-style interchange\n" +
					"document (docs/signer.md) to a new file (mode 0600; an existing file is never overwritten).\n" +
					"Refuses when there is no record to export. The node must be stopped.",
				Flags: append(locationFlags(),
					&cli.PathFlag{Name: "out", Aliases: []string{"o"}, TakesFile: true, Usage: "interchange `FILE` to create"},
				),
				Action: signerExport,
			},
			{
				Name:      "import",
				Usage:     "merge an interchange file into the signer records (never lowers a watermark)",
				ArgsUsage: "FILE",
				Description: "Reads an interchange document (docs/signer.md) of this chain and raises, for every key in it, the\n" +
					"signer record's watermarks to the highest source and target numbers of the file (EIP-3076 \"minimal\"\n" +
					"import): the next vote of a key needs a target above every imported target and a source at or above\n" +
					"every imported source. Nothing is ever lowered; importing the same file twice changes nothing.\n" +
					"Creates the checkpoint database when it does not exist yet. The node must be stopped.",
				Flags:  locationFlags(),
				Action: signerImport,
			},
		},
	}
}

// openCheckpointDBRW opens the checkpoint database of cfg for writing
// (creating it when missing); tool names the command in messages. Every
// refusal is an operator error (exit 2).
func openCheckpointDBRW(cfg *config.Config, tool string) (*checkpointdb.CheckpointDB, error) {
	db, err := checkpointdb.Open(cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesisOf(cfg.Spec)})
	switch {
	case errors.Is(err, checkpointdb.ErrLocked):
		return nil, usageError(fmt.Errorf("%w (%s needs the node stopped)", err, tool))
	case err != nil:
		return nil, usageError(err)
	}
	return db, nil
}

// keyLabel names a public key: its hex and, when it is an authority of the
// chain, the authority's index and name.
func keyLabel(cfg *config.Config, pub ed25519.PublicKey) string {
	label := fmt.Sprintf("0x%x", []byte(pub))
	for i, k := range cfg.Spec.AuthoritySet().Keys {
		if k.Equal(pub) {
			name := cfg.Spec.Authorities[i].Name
			if name == "" {
				return fmt.Sprintf("%s (validator %d)", label, i)
			}
			return fmt.Sprintf("%s (%s, validator %d)", label, name, i)
		}
	}
	return label
}

// exportSignerRecords writes the interchange document of db's signer
// records to the new file out (mode 0600, synced; never overwrites) and
// returns how many keys it holds. Without allowEmpty, a database without
// signer records is refused and nothing is written. `signer export` and the
// purge-chain backup both use it.
func exportSignerRecords(ctx context.Context, db *checkpointdb.CheckpointDB, out string, allowEmpty bool) (int, error) {
	doc, n, err := db.ExportSignerRecords(ctx)
	if err != nil {
		return 0, fmt.Errorf("export signer records: %w", err)
	}
	if n == 0 && !allowEmpty {
		return 0, usageError(fmt.Errorf("no signer record in the checkpoint database at %s: nothing to export (%s not written)", db.Path(), out))
	}
	if err := writeNewFile(out, append(doc, '\n')); err != nil {
		if errors.Is(err, os.ErrExist) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return 0, usageError(fmt.Errorf("write %s: %w", out, err))
		}
		return 0, fmt.Errorf("write %s: %w", out, err)
	}
	return n, nil
}

func signerExport(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	out := c.Path("out")
	if out == "" {
		return usageError(fmt.Errorf("signer export needs --out FILE (see '%s --help')", helpName(c)))
	}
	if _, err := os.Lstat(out); err == nil {
		return usageError(fmt.Errorf("%s already exists: an export never overwrites a file, choose another path", out))
	}
	if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
		return usageError(fmt.Errorf("directory of %s does not exist", out))
	}
	cfg, err := locate(c)
	if err != nil {
		return err
	}
	db, err := openCheckpointDB(cfg, "signer export")
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := exportSignerRecords(c.Context, db, out, false)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if p := db.HighWaterMark().Problem; p != nil {
		fmt.Fprintf(w, "Note: %v\n", p)
	}
	fmt.Fprintf(w, "Exported %d signer record(s) of chain %s (genesis %s) to %s\n", n, cfg.Spec.ID, db.Genesis(), out)
	return nil
}

func signerImport(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(fmt.Errorf("signer import needs one FILE argument, got %d (see '%s --help')", c.NArg(), helpName(c)))
	}
	file := c.Args().First()
	cfg, err := locate(c)
	if err != nil {
		return err
	}
	// Read and validate everything before anything is opened or written.
	f, err := os.Open(file)
	if err != nil {
		return usageError(fmt.Errorf("read %s: %w", file, err))
	}
	data, err := io.ReadAll(io.LimitReader(f, checkpointdb.MaxInterchangeSize+1))
	f.Close()
	if err != nil {
		return usageError(fmt.Errorf("read %s: %w", file, err))
	}
	doc, err := checkpointdb.ParseInterchange(data)
	if err != nil {
		return usageError(fmt.Errorf("%s: %w; nothing was imported", file, err))
	}
	genesis := genesisOf(cfg.Spec)
	doc.ApplySchedule(cfg.Spec.Schedule())
	if doc.Genesis != genesis {
		return usageError(fmt.Errorf("%s is for the chain with genesis %s, not chain %s (genesis %s); nothing was imported", file, doc.Genesis, cfg.Spec.ID, genesis))
	}
	w := c.App.Writer
	if len(doc.Keys) == 0 {
		fmt.Fprintf(w, "Nothing to import: %s holds no signed votes\n", file)
		return nil
	}
	db, err := openCheckpointDBRW(cfg, "signer import")
	if err != nil {
		return err
	}
	keys, err := db.ImportSignerRecords(c.Context, doc)
	if err != nil {
		db.Close()
		return fmt.Errorf("import signer records: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close checkpoint database: %w", err)
	}
	raised := 0
	for _, k := range keys {
		if k.Changed() {
			raised++
			fmt.Fprintf(w, "%s: target %d -> %d, source %d -> %d\n", keyLabel(cfg, k.PublicKey), k.Before.Target, k.After.Target, k.Before.Source, k.After.Source)
		} else {
			fmt.Fprintf(w, "%s: unchanged (already at target %d, source %d or above)\n", keyLabel(cfg, k.PublicKey), k.After.Target, k.After.Source)
		}
	}
	fmt.Fprintf(w, "Imported %s into %s: %d key(s), %d raised, %d unchanged\n", file, cfg.CheckpointDBPath(), len(keys), raised, len(keys)-raised)
	return nil
}
