package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/internal/buildinfo"
	"github.com/flarechain/flare-node/p2p"
)

// runNode is the root action: build and validate the configuration, then
// run the node until a signal or a failure.
func runNode(c *cli.Context) (err error) {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := buildConfig(c)
	if err != nil {
		return err
	}
	if c.Bool("print-config") {
		// Print what the node would use: the listen addresses derived from
		// the port when none is configured.
		printed := *cfg
		if len(printed.P2P.ListenAddrs) == 0 {
			printed.P2P.ListenAddrs = p2p.DefaultListenAddrs(printed.P2P.Port)
		}
		b, err := printed.EncodeTOML()
		if err != nil {
			return err
		}
		_, err = c.App.Writer.Write(b)
		return err
	}
	if cfg.Log.File != "" {
		if err := checkOutputFile(cfg.Log.File, "--log-file"); err != nil {
			return err
		}
	}
	if cfg.PIDFile != "" {
		if err := checkOutputFile(cfg.PIDFile, "--pid-file"); err != nil {
			return err
		}
	}
	out, outCloser := logOutput(cfg.Log, c.App.Writer)
	log, err := newLogger(cfg.Log.Level, cfg.Log.Format, out)
	if err != nil {
		return usageError(err)
	}
	defer func() {
		_ = log.Sync()
		_ = outCloser.Close()
	}()
	routeLibraryLogs(log.Named("lib"), slog.LevelWarn)

	if cfg.Tmp {
		dir, err := os.MkdirTemp("", "flare-node-")
		if err != nil {
			return fmt.Errorf("create temporary base path: %w", err)
		}
		cfg.BasePath = dir
		defer func() {
			if rmErr := os.RemoveAll(dir); rmErr != nil {
				log.Warn("could not remove the temporary base path", zap.String("path", dir), zap.Error(rmErr))
			}
		}()
	}

	cliLog := log.Named("cli")
	// Signals are handled before the first line a supervisor (or a test)
	// may wait for: a SIGINT right after "Base path:" is a clean stop.
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	var pid atomic.Pointer[pidFile]
	forcing := make(chan struct{})
	stopSignals := handleSignals(cancel, cliLog, func() {
		close(forcing)
		_ = log.Sync()
		pid.Load().Remove()
		if cfg.Tmp {
			removeUnderWriters(cfg.BasePath)
		}
		os.Exit(exitForced)
	})
	defer stopSignals()
	cliLog.Info("FlareChain node", zap.String("version", buildinfo.Version()), zap.String("commit", buildinfo.Commit()),
		zap.Int("pid", os.Getpid()), zap.String("name", cfg.Name))
	cliLog.Info("Base path: "+cfg.BasePath, zap.String("base_path", cfg.BasePath), zap.Bool("tmp", cfg.Tmp))
	cliLog.Info(fmt.Sprintf("Chain specification: %s (genesis %s)", cfg.Spec.Name, genesisOf(cfg.Spec)),
		zap.String("chain", cfg.Spec.ID), zap.Stringer("genesis", genesisOf(cfg.Spec)))
	if cfg.Validator {
		cliLog.Info("Role: validator", zap.String("key_name", cfg.KeyName), zap.String("key_file", cfg.KeyFile), zap.Bool("asf", cfg.EnableASF))
	} else {
		cliLog.Info("Role: full node", zap.Bool("asf", cfg.EnableASF))
	}
	for _, w := range cfg.Warnings() {
		cliLog.Warn(w)
	}

	err = runConfigured(ctx, cfg, log, &pid)
	select {
	case <-forcing:
		// The forced exit (130) is under way (it removes the temporary
		// base path under the closing databases); whatever the shutdown
		// returned must not race it to an exit code of its own.
		select {}
	default:
	}
	return err
}

// removeUnderWriters removes dir while the closing databases may still
// create files in it (the forced exit does not wait for them): a file
// created in a directory RemoveAll has already emptied makes it fail with
// "directory not empty", so it is retried for up to about 100 ms. Once dir
// is gone nothing recreates it (the databases create files only in their
// existing directories).
func removeUnderWriters(dir string) {
	for i := 0; i < 50 && os.RemoveAll(dir) != nil; i++ {
		time.Sleep(2 * time.Millisecond)
	}
}

// handleSignals cancels the run on the first SIGINT or SIGTERM and calls
// force on the second. The returned function stops the handling.
func handleSignals(cancel context.CancelFunc, log *zap.Logger, force func()) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			log.Info("Received signal, shutting down (send it again to force the exit)", zap.Stringer("signal", sig))
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			log.Warn("Received a second signal, exiting immediately", zap.Stringer("signal", sig))
			force()
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
