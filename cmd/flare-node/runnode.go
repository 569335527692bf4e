package main

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/p2p"
)

// runConfigured creates and runs the node and maps its errors to exit codes.
func runConfigured(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	n, err := node.New(cfg, log)
	if err != nil {
		return startupError(cfg, err)
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

// startupError classifies an error of node.New: a base path in use by
// another process and other start-up refusals are usage errors (exit 2).
func startupError(cfg *config.Config, err error) error {
	if errors.Is(err, checkpointdb.ErrLocked) || errors.Is(err, asf.ErrLocked) {
		return usageError(fmt.Errorf("base path %s is in use by another flare-node process (database locked): %w", cfg.BasePath, err))
	}
	if errors.Is(err, p2p.ErrListen) {
		return usageError(fmt.Errorf("p2p port in use or address unavailable: %w", err))
	}
	if errors.Is(err, node.ErrStartup) {
		return usageError(err)
	}
	return &exitError{code: exitFailure, err: err}
}

// genesisOf is the chain identity every vote, certificate and database of
// the node is bound to (the genesis block hash, see node.GenesisHash).
func genesisOf(spec *chainspec.Spec) checkpoint.Hash { return node.GenesisHash(spec) }
