package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/internal/storagefault"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/p2p"
)

// runConfigured creates and runs the node and maps its errors to exit codes.
// A start interrupted by the first signal (ctx cancelled) exits 0 when
// everything it had opened was closed, and 1 when a database open had to be
// abandoned.
//
// With cfg.PIDFile the process id is written once the node holds its
// databases (so a refused second start on the same base path never touches
// the pid file of the running node) and removed at exit; pid receives it
// for the forced exit.
func runConfigured(ctx context.Context, cfg *config.Config, log *zap.Logger, pid *atomic.Pointer[pidFile]) error {
	n, err := node.New(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) && !errors.Is(err, storagefault.ErrAbandoned) {
			log.Named("cli").Info("Start-up interrupted; stopped", zap.Error(err))
			return nil
		}
		return startupError(cfg, err)
	}
	if cfg.PIDFile != "" {
		pf, err := writePIDFile(cfg.PIDFile)
		if err != nil {
			// Close what New opened: Run returns at once on a done context.
			stopped, cancel := context.WithCancel(ctx)
			cancel()
			return startupError(cfg, errors.Join(err, n.Run(stopped)))
		}
		pid.Store(pf)
		defer pf.Remove()
		log.Named("cli").Info("PID file written", zap.String("path", pf.path), zap.Int("pid", pf.pid))
	}
	if err := n.Run(ctx); err != nil {
		log.Named("cli").Error("node stopped with an error", zap.Error(err))
		return runError(err)
	}
	log.Named("cli").Info("Node stopped")
	return nil
}

// runError is the exit of a node that failed while running: exit code 1.
func runError(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitFailure, err: err}
}

// startupError classifies an error of node.New:
//   - a base path in use by another process: exit 2, said so;
//   - a full disk, an I/O error, too little free space, a stalled disk: a
//     runtime fault, exit 1;
//   - permissions and a read-only file system: an operator error, exit 2;
//   - corruption and the other start-up refusals (node.ErrStartup): exit 2;
//   - any other fatal storage error, an abandoned open: exit 1.
func startupError(cfg *config.Config, err error) error {
	switch {
	case errors.Is(err, checkpointdb.ErrLocked) || errors.Is(err, asf.ErrLocked):
		return usageError(fmt.Errorf("base path %s is in use by another flare-node process (database locked): %w", cfg.BasePath, err))
	case errors.Is(err, p2p.ErrListen):
		return usageError(fmt.Errorf("p2p port in use or address unavailable: %w", err))
	case storagefault.IsRuntimeFault(err) || errors.Is(err, node.ErrLowDiskSpace) || errors.Is(err, storagefault.ErrStalled):
		return &exitError{code: exitFailure, err: err}
	case storagefault.IsOperatorError(err):
		return usageError(err)
	case errors.Is(err, checkpointdb.ErrCorrupted) || errors.Is(err, asf.ErrCorrupted):
		return usageError(err)
	case errors.Is(err, checkpointdb.ErrFatal) || errors.Is(err, asf.ErrFatal) || errors.Is(err, storagefault.ErrAbandoned):
		return &exitError{code: exitFailure, err: err}
	case errors.Is(err, node.ErrStartup):
		return usageError(err)
	}
	return &exitError{code: exitFailure, err: err}
}

// genesisOf is the chain identity every vote, certificate and database of
// the node is bound to (the genesis block hash, see node.GenesisHash).
func genesisOf(spec *chainspec.Spec) checkpoint.Hash { return node.GenesisHash(spec) }
