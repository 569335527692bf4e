package node

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// TestTxRemovals: dropped, invalid and replaced transactions are
// remembered with their reason, other events are not, and only the last
// maxRemovals are kept.
func TestTxRemovals(t *testing.T) {
	r := newTxRemovals()
	r.note([]txpool.Event{
		{Hash: tx.Hash{1}, Kind: txpool.Dropped, Reason: txpool.ReasonExpired},
		{Hash: tx.Hash{2}, Kind: txpool.Invalid, Reason: txpool.ReasonNonceTooLow},
		{Hash: tx.Hash{3}, Kind: txpool.Replaced},
		{Hash: tx.Hash{4}, Kind: txpool.Promoted},
	})
	for h, want := range map[tx.Hash][2]string{
		{1}: {api.TxDropped, "expired"},
		{2}: {api.TxInvalid, "nonce too low"},
		{3}: {api.TxDropped, "replaced"},
	} {
		st, reason, ok := r.Removed(h)
		require.True(t, ok)
		require.Equal(t, want, [2]string{st, reason})
	}
	_, _, ok := r.Removed(tx.Hash{4})
	require.False(t, ok)
	for i := range maxRemovals {
		r.note([]txpool.Event{{Hash: tx.Hash{9, byte(i), byte(i >> 8)}, Kind: txpool.Dropped, Reason: txpool.ReasonPoolFull}})
	}
	_, _, ok = r.Removed(tx.Hash{1})
	require.False(t, ok, "the oldest are forgotten")
	_, _, ok = r.Removed(tx.Hash{9, 0, 0})
	require.True(t, ok)
	require.Len(t, r.byTx, maxRemovals)
}
