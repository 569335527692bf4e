package engine_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/tx"
)

type oneTxSource struct{ t *tx.Tx }

func (s oneTxSource) Pending(int, int) []*tx.Tx { return []*tx.Tx{s.t} }
func (oneTxSource) Refused(*tx.Tx, error)       {}

// TestBuildBodyUsesTheNodeClock: the producer's deadline comes from the
// node's clock; the builder must read the same clock (SetClock), or a node
// whose clock is not the wall clock (the simulator's) builds empty blocks.
func TestBuildBodyUsesTheNodeClock(t *testing.T) {
	spec, err := chainspec.Builtin("local")
	require.NoError(t, err)
	key, err := chainspec.DevKey(chainspec.DevKeyNames()[0])
	require.NoError(t, err)
	genesis, err := engine.GenesisHash(spec)
	require.NoError(t, err)
	// A clock ten years before the wall clock.
	now := time.Now().AddDate(-10, 0, 0)
	var exec *engine.StateExecutor
	c, err := asf.OpenChain("/chain", spec, asf.ChainOptions{FS: vfs.NewMem(), Clock: &clockAt{t: now}, Logger: zap.NewNop(),
		Executor: engine.NewStateExecutorFactory(spec, nil, zap.NewNop(), &exec)})
	require.NoError(t, err)
	defer c.Close()
	x := &tx.Tx{Genesis: genesis, To: tx.AddressOf(key.Public().(ed25519.PublicKey)), Amount: 1, Fee: spec.MinFee}
	x.Sign(key)
	exec.SetSource(oneTxSource{x})
	parent := c.Genesis().Header
	h := asf.Header{ParentHash: parent.Hash(), Number: 1, Slot: 1, Proposer: 0}
	deadline := now.Add(time.Second)

	body, _, err := exec.BuildBody(context.Background(), parent, h, deadline)
	require.NoError(t, err)
	require.Empty(t, body, "without SetClock the wall clock is past the deadline")

	exec.SetClock(func() time.Time { return now })
	body, root, err := exec.BuildBody(context.Background(), parent, h, deadline)
	require.NoError(t, err)
	require.Len(t, body, 1)
	require.NotEqual(t, parent.StateRoot, root)
}
