package finality

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// handoffNet runs one Core per key over a single chain, delivering every
// message to every other core at once and signing through each key's
// signer record with the schedule's rules (like SafeSigner).
type handoffNet struct {
	t       *testing.T
	genesis checkpoint.Hash
	sched   checkpoint.Schedule
	keys    []ed25519.PrivateKey
	cores   []*Core
	recs    []checkpoint.SignerRecord
	down    map[int]bool
	now     time.Time
	// signed[i] lists the votes key i signed.
	signed [][]checkpoint.SignedVote
	certs  []checkpoint.Certificate
}

func handoffKeys(n int) []ed25519.PrivateKey {
	var keys []ed25519.PrivateKey
	for i := range n {
		var seed [ed25519.SeedSize]byte
		binary.BigEndian.PutUint32(seed[:], uint32(i+101))
		keys = append(keys, ed25519.NewKeyFromSeed(seed[:]))
	}
	return keys
}

func pubs(keys []ed25519.PrivateKey, idx ...int) []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, i := range idx {
		out = append(out, keys[i].Public().(ed25519.PublicKey))
	}
	return out
}

// newHandoffNet: genesis set {0,1,2,3}; set 1 = {0,1,2,3,4} from hand-off
// 3; set 2 = {1,2,3,4} from hand-off 6.
func newHandoffNet(t *testing.T, mut Mutations) *handoffNet {
	keys := handoffKeys(5)
	genesis := checkpoint.HashOf([]byte("hand-off genesis"))
	return newHandoffNetWith(t, mut, keys, genesis, []checkpoint.SetChange{
		{SetID: 1, HandOff: 3, Keys: pubs(keys, 0, 1, 2, 3, 4)},
		{SetID: 2, HandOff: 6, Keys: pubs(keys, 1, 2, 3, 4)},
	})
}

// newHandoffNetWith: genesis set = keys 0..3, then changes.
func newHandoffNetWith(t *testing.T, mut Mutations, keys []ed25519.PrivateKey, genesis checkpoint.Hash, changes []checkpoint.SetChange) *handoffNet {
	sched := checkpoint.Schedule{
		Genesis: checkpoint.AuthoritySet{Genesis: genesis, SetID: 0, Keys: pubs(keys, 0, 1, 2, 3)},
		Changes: changes,
	}
	require.NoError(t, sched.Validate())
	n := &handoffNet{t: t, genesis: genesis, sched: sched, keys: keys, down: map[int]bool{}, now: time.Unix(1000, 0)}
	for i := range keys {
		c, err := NewCore(CoreConfig{Authorities: sched.Genesis, Schedule: &sched, OwnKey: pubs(keys, i)[0],
			BroadcastAllFormed: true, Mutations: mut}, allDescend{}, n.now)
		require.NoError(t, err)
		rec := checkpoint.SignerRecord{PublicKey: pubs(keys, i)[0], Genesis: genesis}
		c.Restore(RestoredState{}, &rec, n.now)
		c.TakeReady()
		n.cores = append(n.cores, c)
		n.recs = append(n.recs, rec)
		n.signed = append(n.signed, nil)
	}
	return n
}

func (n *handoffNet) cp(num uint64) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Number: num, Hash: checkpoint.HashOf(n.genesis[:], []byte{byte(num)})}
}

// deliver hands a message to core j with the driver's checks.
func (n *handoffNet) deliver(j int, m Message) {
	c := n.cores[j]
	switch m.Kind {
	case MsgVote:
		if c.PrecheckVote(m.Vote) != VerdictAccept {
			return
		}
		key, ok := c.VoteKey(m.Vote)
		require.True(n.t, ok)
		if m.Vote.Verify(key) != nil {
			return
		}
		c.AddVote(m.Vote, n.now)
	case MsgCertificate:
		if _, verify := c.PrecheckCertificate(m.Cert); !verify {
			return
		}
		if c.CertVerifier().Verify(m.Cert) != nil {
			return
		}
		c.AddCertificate(m.Cert, n.now)
	}
}

// run processes every core's Ready until nothing is left.
func (n *handoffNet) run() {
	for round := 0; round < 1000; round++ {
		busy := false
		for i, c := range n.cores {
			rd := c.TakeReady()
			if rd.Empty() {
				continue
			}
			busy = true
			if n.down[i] {
				continue
			}
			n.certs = append(n.certs, rd.HandOffs...)
			if rd.Sign != nil {
				v := *rd.Sign
				set, ok := n.sched.Set(v.SetID)
				require.True(n.t, ok)
				idx, in := set.IndexOf(pubs(n.keys, i)[0])
				require.True(n.t, in, "key %d asked to sign for set %d it is not in", i, v.SetID)
				d, err := n.recs[i].CheckInSchedule(v, n.sched)
				if err != nil {
					c.OwnVoteRefused(v, n.recs[i])
				} else {
					sv := checkpoint.SignedVote{Vote: v, Validator: idx, Signature: NewKeySigner(n.keys[i]).Sign(v.SigningBytes())}
					if d == checkpoint.ReturnStored {
						sv = *n.recs[i].Last
					}
					n.recs[i].Last = &sv
					n.signed[i] = append(n.signed[i], sv)
					c.OwnVoteSigned(sv, n.now)
				}
			}
			for _, m := range rd.Messages {
				for j := range n.cores {
					if j != i && !n.down[j] {
						n.deliver(j, m)
					}
				}
			}
		}
		if !busy {
			return
		}
	}
	n.t.Fatal("the network did not settle")
}

func (n *handoffNet) advance(to uint64) {
	for num := uint64(1); num <= to; num++ {
		n.now = n.now.Add(4 * time.Second)
		for i, c := range n.cores {
			if !n.down[i] {
				c.SetHead(n.cp(num), n.now)
			}
		}
		n.run()
	}
}

// TestHandOffsThroughTwoChanges: a fifth validator joins at the first
// hand-off, the first validator leaves at the second; finality advances
// through both with the quorum of each set (3 of 4, 4 of 5, 3 of 4), the
// joiner votes only after its hand-off, the leaver never after its own,
// and no key signs two votes for one target or a surround.
func TestHandOffsThroughTwoChanges(t *testing.T) {
	n := newHandoffNet(t, Mutations{})
	n.advance(12)
	for i, c := range n.cores {
		require.Equal(t, uint64(2), c.Authorities().SetID, "core %d", i)
		require.GreaterOrEqual(t, c.Finalized().Number, uint64(10), "core %d", i)
		require.Len(t, c.HandOffs(), 2)
	}
	h := n.cores[0].HandOffs()
	require.Equal(t, uint64(0), h[0].SetID)
	require.GreaterOrEqual(t, h[0].Source.Number, uint64(3))
	require.Equal(t, uint64(1), h[1].SetID)
	require.GreaterOrEqual(t, h[1].Source.Number, uint64(6))
	require.GreaterOrEqual(t, len(h[0].Signatures), 3)
	require.GreaterOrEqual(t, len(h[1].Signatures), 4)
	for i, votes := range n.signed {
		for k, v := range votes {
			set, _ := n.sched.Set(v.SetID)
			require.NoError(t, set.VerifyVote(v), "key %d vote %d", i, k)
			for _, w := range votes[:k] {
				require.False(t, v.Vote.Target.Number == w.Vote.Target.Number && v.Vote != w.Vote, "double vote by key %d", i)
				require.False(t, v.Vote.Surrounds(w.Vote) || w.Vote.Surrounds(v.Vote), "surround by key %d", i)
			}
			switch {
			case i == 4:
				require.NotZero(t, v.SetID, "the joiner voted before its hand-off")
			case i == 0:
				require.NotEqual(t, uint64(2), v.SetID, "the leaver voted after its hand-off")
			}
		}
	}
	require.NotEmpty(t, n.signed[4])

	// A joiner that trusts only the schedule verifies the whole chain of
	// proofs and lands in the same set.
	p, ok := n.cores[1].FinalityProof()
	require.True(t, ok)
	require.Len(t, p.HandOffs, 2)
	f, _, set, err := n.sched.VerifyFinalityProof(p)
	require.NoError(t, err)
	require.Equal(t, uint64(2), set)
	require.Equal(t, n.cores[1].Finalized(), f)
	fresh, err := NewCore(CoreConfig{Authorities: n.sched.Genesis, Schedule: &n.sched}, allDescend{}, n.now)
	require.NoError(t, err)
	require.NoError(t, fresh.VerifyProof(p))
	require.True(t, fresh.ApplyProof(p, n.now))
	require.Equal(t, uint64(2), fresh.Authorities().SetID)
	require.Equal(t, f, fresh.Finalized())
	require.Len(t, fresh.TakeReady().HandOffs, 2)

	// Restore from what a database holds: the hand-offs and the
	// certificates at and above finality.
	st := RestoredState{Finalized: &f, HandOffs: p.HandOffs, Certificates: []checkpoint.Certificate{p.Finalizing}}
	again, err := NewCore(CoreConfig{Authorities: n.sched.Genesis, Schedule: &n.sched}, allDescend{}, n.now)
	require.NoError(t, err)
	again.Restore(st, nil, n.now)
	require.Equal(t, uint64(2), again.Authorities().SetID)
	require.Equal(t, f, again.Finalized())
	require.Empty(t, again.TakeReady().HandOffs)
}

// TestHandOffProofsRejected: a proof that skips a set, names a wrong set
// id, carries a forged fragment, or ends with a certificate of a set that
// lost its place fails, each with ErrBadProof.
func TestHandOffProofsRejected(t *testing.T) {
	n := newHandoffNet(t, Mutations{})
	n.advance(12)
	good, ok := n.cores[1].FinalityProof()
	require.True(t, ok)
	clone := func() checkpoint.FinalityProof {
		p := good
		p.HandOffs = append([]checkpoint.Certificate(nil), good.HandOffs...)
		for i := range p.HandOffs {
			p.HandOffs[i] = cloneCert(p.HandOffs[i])
		}
		p.Finalizing = cloneCert(good.Finalizing)
		return p
	}
	// An old-set certificate above its hand-off: key 0..3 sign set 0 at a
	// later link (they would not; a byzantine old set could).
	var late checkpoint.Certificate
	{
		var votes []checkpoint.SignedVote
		v := checkpoint.Vote{Genesis: n.genesis, SetID: 0, Source: n.cp(9), Target: n.cp(10)}
		for i := range 4 {
			votes = append(votes, checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i), Signature: NewKeySigner(n.keys[i]).Sign(v.SigningBytes())})
		}
		var err error
		late, err = checkpoint.NewCertificate(votes)
		require.NoError(t, err)
	}
	tests := []struct {
		name   string
		mangle func(p *checkpoint.FinalityProof)
	}{
		{"skipped set", func(p *checkpoint.FinalityProof) { p.HandOffs = p.HandOffs[1:] }},
		{"no hand-offs", func(p *checkpoint.FinalityProof) { p.HandOffs = nil }},
		{"wrong set id", func(p *checkpoint.FinalityProof) { p.HandOffs[1].SetID = 5 }},
		{"forged fragment", func(p *checkpoint.FinalityProof) { p.HandOffs[0].Signatures[0].Signature[0] ^= 1 }},
		{"set that lost its place", func(p *checkpoint.FinalityProof) {
			p.HandOffs = p.HandOffs[:0]
			p.Finalizing = late
			p.Justified = nil
		}},
		{"repeated hand-off", func(p *checkpoint.FinalityProof) { p.HandOffs = append(p.HandOffs[:1], p.HandOffs[0]) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := clone()
			tc.mangle(&p)
			_, _, _, err := n.sched.VerifyFinalityProof(p)
			require.Error(t, err)
			require.True(t, errors.Is(err, checkpoint.ErrBadProof), "%v", err)
		})
	}
	// The old set's late certificate counts for nothing at a core that
	// handed off.
	c := n.cores[1]
	v, _ := c.PrecheckCertificate(late)
	require.Equal(t, VerdictIgnore, v)
}

// TestHandOffCrashBetweenWrites: the finalizing certificate of the hand-off
// was stored (with the pointer) but the hand-off record was not; Restore
// hands off again and asks for the record.
func TestHandOffCrashBetweenWrites(t *testing.T) {
	n := newHandoffNet(t, Mutations{})
	n.advance(12)
	h := n.cores[1].HandOffs()
	f := h[0].Source
	j := h[0].Target
	st := RestoredState{Finalized: &f, Justified: &j, Certificates: []checkpoint.Certificate{h[0]}}
	c, err := NewCore(CoreConfig{Authorities: n.sched.Genesis, Schedule: &n.sched}, allDescend{}, n.now)
	require.NoError(t, err)
	c.Restore(st, nil, n.now)
	require.Equal(t, uint64(1), c.Authorities().SetID)
	rd := c.TakeReady()
	require.Len(t, rd.HandOffs, 1)
	require.Equal(t, h[0].Vote(), rd.HandOffs[0].Vote())
}

// TestRemovedKeyCountsForNothing: after the second hand-off the removed
// key's votes (set 1, or set 2 with its old index) are ignored or
// rejected, never counted.
func TestRemovedKeyCountsForNothing(t *testing.T) {
	n := newHandoffNet(t, Mutations{})
	n.advance(12)
	c := n.cores[1]
	v := checkpoint.Vote{Genesis: n.genesis, SetID: 1, Source: c.Justified(), Target: n.cp(c.Justified().Number + 1)}
	sv := checkpoint.SignedVote{Vote: v, Validator: 0, Signature: NewKeySigner(n.keys[0]).Sign(v.SigningBytes())}
	require.Equal(t, VerdictIgnore, c.PrecheckVote(sv))
	v.SetID = 2
	sv = checkpoint.SignedVote{Vote: v, Validator: 0, Signature: NewKeySigner(n.keys[0]).Sign(v.SigningBytes())}
	// Index 0 of set 2 is key 1: the signature does not verify.
	require.Equal(t, VerdictAccept, c.PrecheckVote(sv))
	key, ok := c.VoteKey(sv)
	require.True(t, ok)
	require.Error(t, sv.Verify(key))
}

// TestHandOffMutantsDiverge: each hand-off mutant breaks what the rule
// keeps (checked here on the core; the simulator catches them by its
// invariants).
func TestHandOffMutantsDiverge(t *testing.T) {
	n := newHandoffNet(t, Mutations{SkipHandOffProofs: true})
	n.advance(12)
	p, ok := n.cores[1].FinalityProof()
	require.True(t, ok)
	p.HandOffs = nil
	require.NoError(t, n.cores[1].VerifyProof(p), "the mutant accepts a proof that skips every set")
	_, _, _, err := n.sched.VerifyFinalityProof(p)
	require.ErrorIs(t, err, checkpoint.ErrBadProof)
}

// TestKeyRotation: validator 3 rotates its key (key 3 leaves, key 4 joins
// in the same hand-off): finality goes on, the old key never signs for
// the new set, the new key signs only for it and from the checkpoint after
// the hand-off, and neither key signs two votes for one target.
func TestKeyRotation(t *testing.T) {
	keys := handoffKeys(5)
	genesis := checkpoint.HashOf([]byte("rotation genesis"))
	n := newHandoffNetWith(t, Mutations{}, keys, genesis, []checkpoint.SetChange{{SetID: 1, HandOff: 4, Keys: pubs(keys, 0, 1, 2, 4)}})
	n.advance(10)
	h := n.cores[0].HandOffs()
	require.Len(t, h, 1)
	for i, c := range n.cores {
		require.Equal(t, uint64(1), c.Authorities().SetID, "core %d", i)
		require.GreaterOrEqual(t, c.Finalized().Number, uint64(8))
	}
	require.NotEmpty(t, n.signed[3])
	for _, v := range n.signed[3] {
		require.Zero(t, v.SetID, "the rotated-out key signed for the new set")
	}
	require.True(t, n.sched.IsHandOffLink(0, n.signed[3][len(n.signed[3])-1].Vote), "its last vote is its hand-off vote")
	require.NotEmpty(t, n.signed[4])
	first := n.signed[4][0]
	require.Equal(t, uint64(1), first.SetID)
	require.Equal(t, h[0].Target, first.Source, "the new key's first vote starts from the hand-off")
	require.Equal(t, h[0].Target.Number+1, first.Target.Number, "no checkpoint missed")
	for i, votes := range n.signed {
		for k, v := range votes {
			for _, w := range votes[:k] {
				require.False(t, v.Vote.Target.Number == w.Vote.Target.Number && v.Vote != w.Vote, "double vote by key %d", i)
			}
		}
	}
}
