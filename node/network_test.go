package node

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/p2p"
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
