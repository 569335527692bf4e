package txpool_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// FuzzAdd feeds random bytes to Add: it never panics, refuses with the
// vocabulary, keeps the invariants, and whatever it admits round-trips to
// the same bytes.
func FuzzAdd(f *testing.F) {
	alice, bob := devKey(f, "alice"), devKey(f, "bob")
	f.Add(mk(alice, 0, 1, 1).Encode())
	f.Add(mk(bob, 3, 7, 1000).Encode())
	f.Add(mk(alice, 0, 1, 2_000_000).Encode())
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x20})
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg := testConfig()
		cfg.MaxTxs = 2
		e := newEnv(t, cfg, alice, bob)
		e.mustAdd(t, mk(bob, 0, 2, 1), txpool.Ready)
		h, st, err := e.pool.Add(raw)
		require.NoError(t, e.pool.CheckInvariants())
		if err != nil {
			_, ok := txpool.ReasonOf(err)
			require.True(t, ok, err)
			return
		}
		got, st2, ok := e.pool.Get(h)
		require.True(t, ok)
		require.Equal(t, st, st2)
		require.True(t, bytes.Equal(raw, got.Encode()))
		require.NoError(t, got.Verify())
		_, _, err = e.pool.Add(raw)
		require.ErrorIs(t, err, &txpool.RefusedError{Reason: txpool.ReasonAlreadyKnown})
		_ = tx.MaxEncodedSize
	})
}
