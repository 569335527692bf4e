package checkpointdb

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Halts are persisted safety alarms (schema version 2, prefix 0x09): a
// validator with an active halt does not vote, across restarts, until an
// operator clears it (`flare-node checkpoints clear-halt`). They are never
// pruned and survive purge-chain.

func (db *CheckpointDB) decodeHaltRecord(key, val []byte) (checkpoint.Halt, error) {
	k, err := DecodeKey(key)
	if err != nil || k.Kind != KeyHalt {
		return checkpoint.Halt{}, corruptRecord(KeyHalt, key, fmt.Errorf("bad key: %w", err))
	}
	h, err := checkpoint.DecodeHalt(val)
	if err != nil {
		return h, corruptRecord(KeyHalt, key, err)
	}
	if h.Checkpoint != k.Number || checkpoint.HashOf(val) != k.ID {
		return h, corruptRecord(KeyHalt, key, fmt.Errorf("%w: halt does not match its key", checkpoint.ErrMalformed))
	}
	return h, nil
}

func (db *CheckpointDB) readHalts(ctx context.Context, r pebble.Reader) ([]checkpoint.Halt, error) {
	var out []checkpoint.Halt
	err := scan(ctx, r, prefixStart(prefixHalt), prefixUpper(prefixHalt), func(k, v []byte) error {
		h, err := db.decodeHaltRecord(k, v)
		if err != nil {
			return err
		}
		out = append(out, h)
		return nil
	})
	return out, err
}

// StoreHalt persists h with a synced write before it returns, keyed by
// (h.Checkpoint, h.ID()): storing the same halt again is a no-op. A halt
// that does not validate is refused (checkpoint.ErrMalformed). The first
// halt of a schema-1 database raises its schema version to 2 in the same
// batch.
func (db *CheckpointDB) StoreHalt(ctx context.Context, h checkpoint.Halt) error {
	if err := db.begin(ctx, true); err != nil {
		return err
	}
	defer db.life.RUnlock()
	val, err := checkpoint.EncodeHalt(h)
	if err != nil {
		return fmt.Errorf("store halt: %w", err)
	}
	if _, err := checkpoint.DecodeHalt(val); err != nil {
		return fmt.Errorf("store halt: %w", err)
	}
	key := haltKey(h.Checkpoint, checkpoint.HashOf(val))

	db.wmu.Lock()
	defer db.wmu.Unlock()
	found, err := exists(db.db, key)
	if err != nil {
		return storageError("store halt", err)
	}
	if found {
		return nil
	}
	b := db.db.NewBatch()
	defer b.Close()
	db.ensureSchemaLocked(b, 2)
	_ = b.Set(key, val, nil)
	if err := db.commit("store halt", b, pebble.Sync); err != nil {
		return err
	}
	db.schema = max(db.schema, 2)
	db.log.Error("Stored halt: this validator stops voting until an operator clears it (flare-node checkpoints clear-halt)",
		zap.Stringer("reason", h.Reason), zap.Uint64("checkpoint", h.Checkpoint), zap.String("detail", h.Detail))
	return nil
}

// Halts returns every active halt, ordered by checkpoint number and id.
func (db *CheckpointDB) Halts(ctx context.Context) ([]checkpoint.Halt, error) {
	if err := db.begin(ctx, false); err != nil {
		return nil, err
	}
	defer db.life.RUnlock()
	return db.readHalts(ctx, db.db)
}

// ClearHalts removes every halt in one synced batch and returns how many
// there were. The evidence the halts were raised on is kept.
func (db *CheckpointDB) ClearHalts(ctx context.Context) (int, error) {
	if err := db.begin(ctx, true); err != nil {
		return 0, err
	}
	defer db.life.RUnlock()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	halts, err := db.readHalts(ctx, db.db)
	if err != nil || len(halts) == 0 {
		return 0, err
	}
	b := db.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(prefixStart(prefixHalt), prefixUpper(prefixHalt), nil)
	if err := db.commit("clear halts", b, pebble.Sync); err != nil {
		return 0, err
	}
	for _, h := range halts {
		db.log.Warn("Cleared halt", zap.Stringer("reason", h.Reason), zap.Uint64("checkpoint", h.Checkpoint), zap.String("detail", h.Detail))
	}
	return len(halts), nil
}
