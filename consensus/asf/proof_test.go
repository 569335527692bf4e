package asf

import (
	"context"
	"crypto/ed25519"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// certificate returns the certificate of source -> target signed by the
// spec's authorities signers (default: the first quorum of them).
func certificate(t testing.TB, spec *chainspec.Spec, source, target checkpoint.Checkpoint, signers ...int) checkpoint.Certificate {
	t.Helper()
	keys := specKeys(t, spec)
	if len(signers) == 0 {
		for i := range checkpoint.Quorum(len(keys)) {
			signers = append(signers, i)
		}
	}
	v := checkpoint.Vote{Genesis: GenesisBlock(spec, checkpoint.ZeroHash).Hash(), SetID: spec.SetID, Source: source, Target: target}
	var votes []checkpoint.SignedVote
	for _, i := range signers {
		sv := checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i)}
		copy(sv.Signature[:], ed25519.Sign(keys[i], v.SigningBytes()))
		votes = append(votes, sv)
	}
	c, err := checkpoint.NewCertificate(votes)
	require.NoError(t, err)
	return c
}

// proofOf is the proof that finalizes fin (with the certificate fin ->
// next) and, when just is not nil, the certificate from -> just.
func proofOf(t testing.TB, spec *chainspec.Spec, fin, next checkpoint.Checkpoint, from, just *checkpoint.Checkpoint) checkpoint.FinalityProof {
	p := checkpoint.FinalityProof{Finalizing: certificate(t, spec, fin, next)}
	if just != nil {
		j := certificate(t, spec, *from, *just)
		p.Justified = &j
	}
	return p
}

func requireProof(t *testing.T, c *Chain, want *checkpoint.FinalityProof) {
	t.Helper()
	got, found, err := c.FinalityProof()
	require.NoError(t, err)
	if want == nil {
		require.False(t, found)
		return
	}
	require.True(t, found)
	require.Equal(t, *want, got)
}

func TestFinalityProofStore(t *testing.T) {
	e := newEnv(t, localSpec(t)) // interval 4
	ctx := context.Background()
	g := e.chain.Genesis()
	a := e.extend(g.Header, 1, 16, "a")
	c0, c1, c2, c3, c4 := cp(0, g), cp(1, a[3]), cp(2, a[7]), cp(3, a[11]), cp(4, a[15])
	requireProof(t, e.chain, nil)

	// Finality of checkpoint 0 (genesis) before the chain finalized
	// anything, then the chain finalizes checkpoint 1 and its proof follows.
	p0 := proofOf(t, e.spec, c0, c1, nil, nil)
	require.NoError(t, e.chain.StoreFinalityProof(ctx, p0))
	requireProof(t, e.chain, &p0)
	require.NoError(t, e.chain.SetFinalized(ctx, c1))
	p1 := proofOf(t, e.spec, c1, c2, &c2, &c3)
	require.NoError(t, e.chain.StoreFinalityProof(ctx, p1))
	requireProof(t, e.chain, &p1)
	require.Equal(t, c1, e.chain.Finalized(), "storing a proof does not move the chain's finality")
	e.reopen()
	requireProof(t, e.chain, &p1)

	// The returned proof is a copy.
	got, _, err := e.chain.FinalityProof()
	require.NoError(t, err)
	got.Finalizing.Signatures[0].Signature[0] ^= 1
	requireProof(t, e.chain, &p1)

	other := func(c checkpoint.Checkpoint) checkpoint.Checkpoint { c.Hash[0] ^= 1; return c }
	badSig := proofOf(t, e.spec, c2, c3, nil, nil)
	badSig.Finalizing.Signatures[1].Signature[5] ^= 1
	wrongSet := proofOf(t, e.spec, c2, c3, nil, nil)
	wrongSet.Finalizing.SetID = 7
	tests := []struct {
		name  string
		proof checkpoint.FinalityProof
		is    []error
	}{
		{"below the chain's finality", proofOf(t, e.spec, c0, c1, nil, nil), []error{ErrStaleProof}},
		{"conflicts with the chain's finality", proofOf(t, e.spec, other(c1), c2, nil, nil), []error{ErrConflictsFinalized}},
		{"same finalized, lower justified", proofOf(t, e.spec, c1, c2, nil, nil), []error{ErrStaleProof}},
		{"same finalized, conflicting justified", proofOf(t, e.spec, c1, c2, &c2, func() *checkpoint.Checkpoint { o := other(c3); return &o }()), []error{ErrInvalidCheckpoint}},
		{"finalized block at the wrong height", proofOf(t, e.spec, checkpoint.Checkpoint{Number: 2, Hash: a[6].Hash()}, c3, nil, nil), []error{ErrInvalidCheckpoint}},
		{"bad signature", badSig, []error{checkpoint.ErrBadProof, checkpoint.ErrBadSignature}},
		{"other authority set", wrongSet, []error{checkpoint.ErrBadProof, checkpoint.ErrWrongSet}},
		{"not finalizing", checkpoint.FinalityProof{Finalizing: certificate(t, e.spec, c1, c3)}, []error{checkpoint.ErrBadProof}},
		{"below quorum", checkpoint.FinalityProof{Finalizing: certificate(t, e.spec, c2, c3, 0, 1)}, []error{checkpoint.ErrBadProof, checkpoint.ErrNoQuorum}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.chain.StoreFinalityProof(ctx, tc.proof)
			for _, is := range tc.is {
				require.ErrorIs(t, err, is)
			}
			requireProof(t, e.chain, &p1)
		})
	}
	e.reopen()
	requireProof(t, e.chain, &p1)

	// Storing the same proof again is fine; a higher one replaces it, also
	// when its finalized block is not stored (catch-up by proof).
	require.NoError(t, e.chain.StoreFinalityProof(ctx, p1))
	p2 := proofOf(t, e.spec, c2, c3, &c3, &c4)
	require.NoError(t, e.chain.StoreFinalityProof(ctx, p2))
	requireProof(t, e.chain, &p2)
	unknown5 := checkpoint.Checkpoint{Number: 5, Hash: checkpoint.Hash{5}}
	unknown6 := checkpoint.Checkpoint{Number: 6, Hash: checkpoint.Hash{6}}
	p5 := proofOf(t, e.spec, unknown5, unknown6, nil, nil)
	require.NoError(t, e.chain.StoreFinalityProof(ctx, p5))
	requireProof(t, e.chain, &p5)
	require.ErrorIs(t, e.chain.StoreFinalityProof(ctx, p2), ErrStaleProof)
	e.reopen()
	requireProof(t, e.chain, &p5)

	// Read-only handles and closed chains store nothing.
	require.NoError(t, e.chain.Close())
	ro, err := OpenChain(e.dir, e.spec, ChainOptions{ReadOnly: true, Clock: e.clock})
	require.NoError(t, err)
	requireProof(t, ro, &p5)
	require.ErrorIs(t, ro.StoreFinalityProof(ctx, p5), ErrReadOnly)
	require.NoError(t, ro.Close())
	_, _, err = ro.FinalityProof()
	require.ErrorIs(t, err, ErrClosed)
	e.chain = nil
	e.open()
}

func TestFinalityProofCorruptionRefusesOpen(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis()
	a := e.extend(g.Header, 1, 4, "a")
	good := proofOf(t, e.spec, cp(0, g), cp(1, a[3]), nil, nil)
	require.NoError(t, e.chain.StoreFinalityProof(context.Background(), good))
	require.NoError(t, e.chain.Close())
	e.chain = nil
	forged := good
	forged.Finalizing.Signatures = append([]checkpoint.CertSignature(nil), good.Finalizing.Signatures...)
	forged.Finalizing.Signatures[0].Signature[0] ^= 1
	forgedBytes, err := checkpoint.EncodeFinalityProof(forged)
	require.NoError(t, err)
	for name, v := range map[string][]byte{"garbage": {0xff, 0x01}, "bad signature": forgedBytes} {
		t.Run(name, func(t *testing.T) {
			rawDB(t, e.dir, func(db *pebble.DB) { require.NoError(t, db.Set(keyFinalProof, v, pebble.Sync)) })
			_, err := OpenChain(e.dir, e.spec, ChainOptions{Clock: e.clock})
			require.ErrorIs(t, err, ErrCorrupted)
			require.Contains(t, err.Error(), "finality proof")
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

// TestCrashKeepsFinalityProof crashes a MemFS after each stored proof: the
// last acknowledged proof is what a restart finds.
func TestCrashKeepsFinalityProof(t *testing.T) {
	spec := localSpec(t)
	keys := specKeys(t, spec)
	clock := &fakeClock{now: SlotStart(spec, 1_000_000)}
	fs := vfs.NewCrashableMem()
	const dir = "/data/chain"
	c, err := OpenChain(dir, spec, ChainOptions{FS: fs, Clock: clock, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	g := c.Genesis()
	var blocks []Block
	parent := g.Header
	for i := range 12 {
		b := makeBlock(spec, keys, parent, uint64(i+1))
		_, err := c.Import(ctx, b)
		require.NoError(t, err)
		blocks = append(blocks, b)
		parent = b.Header
	}
	cps := []checkpoint.Checkpoint{cp(0, g), cp(1, blocks[3]), cp(2, blocks[7]), cp(3, blocks[11])}
	rng := rand.New(rand.NewPCG(3, 4))
	var want *checkpoint.FinalityProof
	check := func(crashed *vfs.MemFS) {
		t.Helper()
		r, err := OpenChain(dir, spec, ChainOptions{FS: crashed, Clock: clock, Logger: zap.NewNop()})
		require.NoError(t, err)
		defer r.Close()
		requireProof(t, r, want)
	}
	check(fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}))
	for i := range 3 {
		// Finality of 0, then of 1, then of 1 with a higher justified 3.
		p := proofOf(t, spec, cps[i], cps[i+1], nil, nil)
		if i == 2 {
			p = proofOf(t, spec, cps[1], cps[2], &cps[2], &cps[3])
		}
		require.NoError(t, c.StoreFinalityProof(ctx, p))
		want = &p
		check(fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}))
		for j := range 4 {
			check(fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 25 * (j + 1), RNG: rng}))
		}
	}
}

// TestSetFinalizedWithProofVerifies: SetFinalizedWithProof verifies the
// proof with the verifier StoreFinalityProof and Open use, so the chain
// never stores a proof its own Open refuses (with at least a third of the
// validators equivocating, a finality gadget can hold certificates that
// pass looser checks). A refused proof changes nothing; a good one is stored
// with the finalization and survives a restart.
func TestSetFinalizedWithProofVerifies(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// proof of c1 built from the checkpoints (x2 conflicts with c2).
		proof func(spec *chainspec.Spec, c1, c2, c3, x1, x2 checkpoint.Checkpoint) checkpoint.FinalityProof
		ok    bool
		is    []error
	}{
		{"good", func(spec *chainspec.Spec, c1, c2, c3, x1, x2 checkpoint.Checkpoint) checkpoint.FinalityProof {
			return proofOf(t, spec, c1, c2, &c2, &c3)
		}, true, nil},
		{"justified source at the finalized number is another block", func(spec *chainspec.Spec, c1, c2, c3, x1, x2 checkpoint.Checkpoint) checkpoint.FinalityProof {
			return proofOf(t, spec, c1, c2, &x1, &c3)
		}, false, []error{checkpoint.ErrBadProof}},
		{"justified target at F+1 is another block", func(spec *chainspec.Spec, c1, c2, c3, x1, x2 checkpoint.Checkpoint) checkpoint.FinalityProof {
			return proofOf(t, spec, c1, c2, &c1, &x2)
		}, false, []error{checkpoint.ErrBadProof}},
		{"bad signature", func(spec *chainspec.Spec, c1, c2, c3, x1, x2 checkpoint.Checkpoint) checkpoint.FinalityProof {
			p := proofOf(t, spec, c1, c2, nil, nil)
			p.Finalizing.Signatures[0].Signature[7] ^= 1
			return p
		}, false, []error{checkpoint.ErrBadProof, checkpoint.ErrBadSignature}},
		{"below quorum", func(spec *chainspec.Spec, c1, c2, c3, x1, x2 checkpoint.Checkpoint) checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: certificate(t, spec, c1, c2, 0, 1)}
		}, false, []error{checkpoint.ErrBadProof, checkpoint.ErrNoQuorum}},
		{"finalizes another checkpoint", func(spec *chainspec.Spec, c1, c2, c3, x1, x2 checkpoint.Checkpoint) checkpoint.FinalityProof {
			return proofOf(t, spec, c2, c3, nil, nil)
		}, false, []error{checkpoint.ErrBadProof}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, localSpec(t)) // interval 4, on disk
			g := e.chain.Genesis()
			a := e.extend(g.Header, 1, 12, "a")
			x := e.extend(a[2].Header, 100, 6, "x") // #4..#9 on another branch
			c1, c2, c3 := cp(1, a[3]), cp(2, a[7]), cp(3, a[11])
			x1, x2 := cp(1, x[0]), cp(2, x[4])
			p := tc.proof(e.spec, c1, c2, c3, x1, x2)
			err := e.chain.SetFinalizedWithProof(ctx, c1, p)
			if !tc.ok {
				for _, is := range tc.is {
					require.ErrorIs(t, err, is)
				}
				require.Equal(t, cp(0, g), e.chain.Finalized(), "nothing changes")
				requireProof(t, e.chain, nil)
				e.reopen()
				requireProof(t, e.chain, nil)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c1, e.chain.Finalized())
			requireProof(t, e.chain, &p)
			e.reopen()
			require.Equal(t, c1, e.chain.Finalized())
			requireProof(t, e.chain, &p)
		})
	}
}

// TestFinalityProofThroughHandOff: with ChainOptions.AuthorityChanges the
// chain stores (and reopens with) a proof that crosses a hand-off; without
// them the same proof is refused, and changes that break the schedule
// rules refuse the open.
func TestFinalityProofThroughHandOff(t *testing.T) {
	spec := localSpec(t) // alice, bob, charlie, dave; interval 4
	eve, err := chainspec.DevKey("eve")
	require.NoError(t, err)
	keys := specKeys(t, spec)
	genesisPubs := make([]ed25519.PublicKey, len(keys))
	for i, k := range keys {
		genesisPubs[i] = k.Public().(ed25519.PublicKey)
	}
	next := append(slices.Clone(genesisPubs), eve.Public().(ed25519.PublicKey))
	changes := []checkpoint.SetChange{{SetID: spec.SetID + 1, HandOff: 2, Keys: next}}

	e := newEnv(t, spec)
	ctx := context.Background()
	g := e.chain.Genesis()
	a := e.extend(g.Header, 1, 16, "a")
	c2, c3, c4 := cp(2, a[7]), cp(3, a[11]), cp(4, a[15])
	handOff := certificate(t, spec, c2, c3) // set 0's hand-off link (2 -> 3)
	// Set 1 (five keys: alice .. dave and eve) finalizes 3 with 3 -> 4.
	v := checkpoint.Vote{Genesis: handOff.Genesis, SetID: spec.SetID + 1, Source: c3, Target: c4}
	var votes []checkpoint.SignedVote
	for i, k := range append(slices.Clone(keys), eve)[1:] {
		sv := checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i + 1)}
		copy(sv.Signature[:], ed25519.Sign(k, v.SigningBytes()))
		votes = append(votes, sv)
	}
	fin, err := checkpoint.NewCertificate(votes)
	require.NoError(t, err)
	p := checkpoint.FinalityProof{Finalizing: fin, HandOffs: []checkpoint.Certificate{handOff}}
	require.ErrorIs(t, e.chain.StoreFinalityProof(ctx, p), checkpoint.ErrBadProof, "the genesis set alone")

	e.opts.AuthorityChanges = changes
	e.reopen()
	require.NoError(t, e.chain.StoreFinalityProof(ctx, p))
	require.NoError(t, e.chain.SetFinalizedWithProof(ctx, c3, p))
	e.reopen()
	requireProof(t, e.chain, &p)
	require.Equal(t, c3, e.chain.Finalized())

	require.NoError(t, e.chain.Close())
	e.chain = nil
	bad := []checkpoint.SetChange{{SetID: spec.SetID + 1, HandOff: 2, Keys: genesisPubs[:2]}} // two of four keys removed
	_, err = OpenChain(e.dir, e.spec, ChainOptions{Clock: e.clock, AuthorityChanges: bad})
	require.ErrorIs(t, err, checkpoint.ErrBadSchedule)
	e.open()
}
