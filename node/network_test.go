package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/p2p"
	"github.com/flarechain/flare-node/txpool"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// TestBlocksByHashChecks: the node checks the hashes of a blocks-by-hash
// answer (package p2p checks only the numbers): the first block is the one
// asked for, each next one the parent of the one before.
func TestBlocksByHashChecks(t *testing.T) {
	parent := checkpoint.HashOf([]byte("genesis"))
	var chain []asf.Block // blocks 1..5
	for num := uint64(1); num <= 5; num++ {
		b := asf.Block{Header: asf.Header{ParentHash: parent, Number: num, Slot: num, BodyRoot: asf.BodyRoot(nil)}}
		chain = append(chain, b)
		parent = b.Hash()
	}
	pbs := func(blocks ...asf.Block) []*flarepb.Block {
		var out []*flarepb.Block
		for _, b := range blocks {
			out = append(out, asf.BlockToPB(b))
		}
		return out
	}
	p := peer.ID("peer")
	got, err := blocksByHashFromPB(p, chain[4].Hash(), pbs(chain[4], chain[3], chain[2]))
	require.NoError(t, err)
	require.Equal(t, []asf.Block{chain[4], chain[3], chain[2]}, got)
	got, err = blocksByHashFromPB(p, chain[4].Hash(), nil)
	require.NoError(t, err)
	require.Empty(t, got)

	_, err = blocksByHashFromPB(p, chain[3].Hash(), pbs(chain[4], chain[3]))
	require.ErrorIs(t, err, p2p.ErrBadResponse, "not the requested block")
	forged := chain[3]
	forged.Header.Slot++ // same number, another hash
	_, err = blocksByHashFromPB(p, chain[4].Hash(), pbs(chain[4], forged))
	require.ErrorIs(t, err, p2p.ErrBadResponse, "not the parent")
	_, err = blocksByHashFromPB(p, chain[4].Hash(), []*flarepb.Block{{}})
	require.ErrorIs(t, err, p2p.ErrBadResponse, "undecodable")
}

// TestTxVerdict: the gossip verdict of every pool answer (docs/wire.md,
// "Transactions topic").
func TestTxVerdict(t *testing.T) {
	require.Equal(t, p2p.Accept, txVerdict(txpool.Ready, nil))
	require.Equal(t, p2p.Ignore, txVerdict(txpool.Future, nil), "future: kept, not relayed")
	require.Equal(t, p2p.Ignore, txVerdict(txpool.Unknown, errors.New("state read failed")))
	want := map[txpool.Reason]p2p.Verdict{
		txpool.ReasonMalformed:              p2p.Reject,
		txpool.ReasonTooLarge:               p2p.Reject,
		txpool.ReasonWrongChain:             p2p.Reject,
		txpool.ReasonFeeTooLow:              p2p.Reject,
		txpool.ReasonBadSignature:           p2p.Reject,
		txpool.ReasonNonceTooLow:            p2p.Ignore,
		txpool.ReasonNonceTooHigh:           p2p.Ignore,
		txpool.ReasonAlreadyKnown:           p2p.Ignore,
		txpool.ReasonInsufficientBalance:    p2p.Ignore,
		txpool.ReasonReplacementUnderpriced: p2p.Ignore,
		txpool.ReasonPoolFull:               p2p.Ignore,
	}
	require.Len(t, want, len(txpool.Reasons()), "every refusal reason has a verdict")
	for _, r := range txpool.Reasons() {
		err := fmt.Errorf("wrapped: %w", &txpool.RefusedError{Reason: r})
		require.Equal(t, want[r], txVerdict(txpool.Unknown, err), "reason %q", r)
	}
}
