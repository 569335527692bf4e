package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func purgeChainCommand() *cli.Command {
	return &cli.Command{
		Name:  "purge-chain",
		Usage: "delete a chain's database and checkpoint history, keeping (and backing up) the validator signer records",
		Description: "Deletes <base>/chains/<id>/db/chain and, in <base>/chains/<id>/db/checkpoints, every vote, certificate and\n" +
			"finality pointer. The signer records (the slashing protection of local validator keys) are kept, after\n" +
			"being exported to <base>/chains/<id>/signer-backup-<unix time>.json. The node key is kept.\n" +
			"The node must be stopped. Exit 2 when the confirmation is declined (nothing is deleted).",
		Flags: append(locationFlags(),
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation"},
		),
		Action: purgeChain,
	}
}

// lockDir takes the Pebble directory lock of the database at dir (which
// must exist), failing when a running node holds it.
func lockDir(dir string) (io.Closer, error) {
	l, err := vfs.Default.Lock(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, usageError(fmt.Errorf("database at %s is in use by another process (%s): stop the running flare-node first", dir, strings.Join(strings.Fields(err.Error()), " ")))
	}
	return l, nil
}

func dirExists(p string) (bool, error) {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !fi.IsDir():
		return false, fmt.Errorf("%s is not a directory", p)
	}
	return true, nil
}

func purgeChain(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := locate(c)
	if err != nil {
		return err
	}
	w := c.App.Writer
	chainDB, cpDB := cfg.ChainDBPath(), cfg.CheckpointDBPath()
	haveChain, err := dirExists(chainDB)
	if err != nil {
		return usageError(err)
	}
	haveCP, err := dirExists(cpDB)
	if err != nil {
		return usageError(err)
	}
	if !haveChain && !haveCP {
		fmt.Fprintf(w, "Nothing to purge: no database of chain %s below %s\n", cfg.Spec.ID, cfg.BasePath)
		return nil
	}

	// Refuse before asking when a node is running.
	var chainLock io.Closer
	if haveChain {
		if chainLock, err = lockDir(chainDB); err != nil {
			return err
		}
		defer chainLock.Close()
	}
	if haveCP {
		l, err := lockDir(cpDB)
		if err != nil {
			return err
		}
		l.Close() // checkpointdb.Open takes it again below
	}

	backup := filepath.Join(cfg.ChainDir(), fmt.Sprintf("signer-backup-%d.json", time.Now().Unix()))
	fmt.Fprintf(w, "Chain %s (%s), base path %s\n", cfg.Spec.Name, cfg.Spec.ID, cfg.BasePath)
	if haveChain {
		fmt.Fprintf(w, "This deletes the chain database:\n  %s\n", chainDB)
	}
	if haveCP {
		fmt.Fprintf(w, "This deletes the votes, certificates and finality pointers in:\n  %s\n", cpDB)
		fmt.Fprintf(w, "The signer records in it are kept, and exported first to:\n  %s\n", backup)
	}
	fmt.Fprintln(w, "WARNING: never delete the signer records (the checkpoint database) of a validator key: without them the")
	fmt.Fprintln(w, "node may sign a vote that conflicts with one it signed before (double signing), which is slashable.")

	if !c.Bool("yes") {
		fmt.Fprint(w, "Are you sure? [y/N]: ")
		answer, err := bufio.NewReader(c.App.Reader).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read confirmation: %w", err)
		}
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(w)
			return usageError(errors.New("aborted: nothing was deleted (answer y, or pass -y)"))
		}
	}

	if haveCP {
		if err := purgeCheckpoints(c.Context, cpDB, genesisOf(cfg.Spec), backup); err != nil {
			return err
		}
		fmt.Fprintf(w, "Signer records exported to %s\n", backup)
		fmt.Fprintf(w, "Checkpoint data purged, signer records kept: %s\n", cpDB)
	}
	if haveChain {
		if err := os.RemoveAll(chainDB); err != nil {
			return fmt.Errorf("delete chain database: %w", err)
		}
		fmt.Fprintf(w, "Chain database deleted: %s\n", chainDB)
	}
	return nil
}

// purgeCheckpoints exports the signer records to backup, then purges
// everything else from the checkpoint database at path.
func purgeCheckpoints(ctx context.Context, path string, genesis checkpoint.Hash, backup string) (err error) {
	db, err := checkpointdb.Open(path, checkpointdb.Options{Genesis: genesis})
	if err != nil {
		return usageError(err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close checkpoint database: %w", cerr)
		}
	}()
	// The backup is the `signer export` document (docs/signer.md);
	// `signer import` reads it back.
	if _, err := exportSignerRecords(ctx, db, backup, true); err != nil {
		return fmt.Errorf("signer record backup: %w", err)
	}
	if err := db.PurgeKeepingSignerRecords(ctx); err != nil {
		return fmt.Errorf("purge checkpoint database: %w", err)
	}
	return nil
}

// writeNewFile durably writes data to a new file (mode 0600).
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
