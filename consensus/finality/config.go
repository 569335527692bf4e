package finality

import (
	"errors"
	"fmt"
	"time"
)

// CheckpointPersistenceConfig configures the checkpoint database the gadget
// persists into, with the original system's names and defaults.
type CheckpointPersistenceConfig struct {
	// Enabled turns persistence on. A validator refuses to vote without it.
	Enabled bool
	// RetentionCheckpoints is how many checkpoints at and below the finalized
	// one are kept.
	RetentionCheckpoints uint64
	// FlushInterval bounds how long an unsynced peer vote may stay non-durable.
	FlushInterval time.Duration
	// PruneInterval is how often old checkpoints are pruned.
	PruneInterval time.Duration
}

// DefaultPersistenceConfig is the mainnet preset: 1000 checkpoints, flush
// every 10 s, prune every 300 s.
func DefaultPersistenceConfig() CheckpointPersistenceConfig {
	return CheckpointPersistenceConfig{Enabled: true, RetentionCheckpoints: 1000, FlushInterval: 10 * time.Second, PruneInterval: 300 * time.Second}
}

// TestnetPersistenceConfig is the testnet preset: 100 / 5 s / 60 s.
func TestnetPersistenceConfig() CheckpointPersistenceConfig {
	return CheckpointPersistenceConfig{Enabled: true, RetentionCheckpoints: 100, FlushInterval: 5 * time.Second, PruneInterval: 60 * time.Second}
}

// ErrInvalidConfig is returned by Validate.
var ErrInvalidConfig = errors.New("invalid checkpoint persistence config")

// Validate checks the values.
func (c CheckpointPersistenceConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	switch {
	case c.RetentionCheckpoints < 1:
		return fmt.Errorf("%w: retention must be at least 1 checkpoint", ErrInvalidConfig)
	case c.FlushInterval <= 0:
		return fmt.Errorf("%w: flush interval must be positive", ErrInvalidConfig)
	case c.PruneInterval <= 0:
		return fmt.Errorf("%w: prune interval must be positive", ErrInvalidConfig)
	}
	return nil
}
