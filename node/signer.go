package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/node/engine"
)

// ErrSignerRecordMissing refuses to start a validator whose signer record
// is missing from a base path that was used before: without it the node
// could sign votes that conflict with the ones its key signed earlier.
var ErrSignerRecordMissing = errors.New("the validator's signer record is missing")

// signerMarkerName is the file (in the chain directory) that marks a fresh
// signer record's first use as unfinished: a restart during it resumes it
// instead of refusing.
const signerMarkerName = "signer-init.pending"

// earlierRun is what the chain directory held before this start.
type earlierRun struct {
	chainDB, checkpointDB, hwm, nodeKey, marker bool
}

func (e earlierRun) any() bool { return e.chainDB || e.checkpointDB || e.hwm || e.nodeKey }

func (e earlierRun) String() string {
	var s []string
	if e.chainDB {
		s = append(s, "a chain database")
	}
	if e.checkpointDB {
		s = append(s, "a checkpoint database")
	}
	if e.hwm {
		s = append(s, "a high-water mark")
	}
	if e.nodeKey {
		s = append(s, "a node key")
	}
	return strings.Join(s, ", ")
}

func nonEmptyDir(path string) bool {
	entries, err := os.ReadDir(path)
	return err == nil && len(entries) > 0
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// earlierRun looks at the chain directory before anything is created.
func (n *Node) earlierRun() earlierRun {
	cfg := n.cfg
	return earlierRun{
		chainDB:      nonEmptyDir(cfg.ChainDBPath()),
		checkpointDB: nonEmptyDir(cfg.CheckpointDBPath()),
		hwm:          exists(checkpointdb.HWMPath(cfg.CheckpointDBPath())),
		nodeKey:      exists(cfg.NodeKeyPath()),
		marker:       exists(filepath.Join(cfg.ChainDir(), signerMarkerName)),
	}
}

// missingRecordError is the one-line refusal of a validator whose record is
// missing.
func (n *Node) missingRecordError(pub ed25519.PublicKey, earlier earlierRun) error {
	return fmt.Errorf("%w: %w: no signer record for validator key %x in %s, although this base path was used before (%s); a validator without its record could sign votes that conflict with its earlier ones. Import the record with 'flare-node signer import FILE' (a backup, or the signer-backup-*.json that purge-chain wrote), or, only if this key never signed on this chain, start once with --init-signer-record",
		ErrStartup, ErrSignerRecordMissing, pub[:8], n.cfg.CheckpointDBPath(), earlier)
}

// refuseMissingRecordEarly refuses, before anything is created, a validator
// start whose record cannot exist: the base path was used before but holds
// neither a checkpoint database nor a high-water mark.
func (n *Node) refuseMissingRecordEarly(pub ed25519.PublicKey, earlier earlierRun) error {
	cfg := n.cfg
	if !cfg.EnableASF || !cfg.Persistence.Enabled || cfg.InitSignerRecord || earlier.marker {
		return nil
	}
	if earlier.any() && !earlier.checkpointDB && !earlier.hwm {
		return n.missingRecordError(pub, earlier)
	}
	return nil
}

// signerStart decides how the validator's signer record starts:
//
//   - a record exists (in the checkpoint database, or as watermarks in the
//     high-water mark next to it): vote as soon as the node is current;
//   - no record, and the base path is brand new, or the operator passed
//     --init-signer-record, or an earlier first use was interrupted (the
//     marker file): a fresh record through the first-use procedure (catch
//     up, listen for the key, then set the watermarks above everything
//     seen); the marker file is written first so that a restart resumes it;
//   - no record in a base path used before: refuse (ErrSignerRecordMissing).
func (n *Node) signerStart(ctx context.Context, key ed25519.PrivateKey, earlier earlierRun) (engine.SignerInit, error) {
	pub := key.Public().(ed25519.PublicKey)
	n.signerMarker = filepath.Join(n.cfg.ChainDir(), signerMarkerName)
	_, found, err := n.cpdb.LoadSignerRecord(ctx, pub)
	if err != nil {
		return 0, fmt.Errorf("%w: read signer record: %w", ErrStartup, err)
	}
	if found {
		if earlier.marker {
			// The record was initialised; the marker's removal did not
			// happen before a stop.
			n.signerInitialised()
		}
		return engine.SignerReady, nil
	}
	reason := ""
	switch {
	case earlier.marker:
		reason = "resuming an unfinished first use"
	case n.cfg.InitSignerRecord:
		reason = "--init-signer-record"
	case !earlier.any():
		reason = "new validator: brand-new base path"
	default:
		return 0, n.missingRecordError(pub, earlier)
	}
	if !earlier.marker {
		if err := writeSynced(n.signerMarker, []byte("the first use of this validator's signer record has not finished; do not delete\n")); err != nil {
			return 0, fmt.Errorf("%w: write %s: %w", ErrStartup, n.signerMarker, err)
		}
	}
	n.log.Info("Fresh signer record: the node catches up and listens for this validator key before its first vote",
		zap.String("reason", reason), zap.String("public_key", fmt.Sprintf("%x", pub)))
	return engine.SignerFresh, nil
}

// signerInitialised removes the first-use marker (called by the engine once
// the record is initialised and persisted).
func (n *Node) signerInitialised() {
	if n.signerMarker == "" {
		return
	}
	if err := os.Remove(n.signerMarker); err != nil && !errors.Is(err, os.ErrNotExist) {
		n.log.Warn("Could not remove the signer first-use marker", zap.String("path", n.signerMarker), zap.Error(err))
	}
}

// writeSynced writes a small file durably (temp file, fsync, rename, fsync
// of the directory).
func writeSynced(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// DeclareFreshSignerRecord marks the validator of cfg's base path as new:
// its first start creates a fresh signer record through the first-use
// procedure even though the base path already holds files (for tools that
// provision new validators, such as `flare-node testnet`, which writes node
// keys in advance to know the peer ids).
func DeclareFreshSignerRecord(cfg *config.Config) error {
	return writeSynced(filepath.Join(cfg.ChainDir(), signerMarkerName),
		[]byte("the first use of this validator's signer record has not finished; do not delete\n"))
}
