package checkpointdb

import (
	"context"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// TEMPORARY until the signer-records branch lands: halts are kept as their
// evidence only.
func (db *CheckpointDB) StoreHalt(ctx context.Context, h checkpoint.Halt) error {
	if e := h.Evidence; e == nil || (e.Certificate == nil && (e.First == nil || e.Second == nil)) {
		return nil
	}
	return db.StoreEvidence(ctx, *h.Evidence)
}
