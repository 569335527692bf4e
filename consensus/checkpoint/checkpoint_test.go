package checkpoint_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func keys(n int) ([]ed25519.PrivateKey, checkpoint.AuthoritySet) {
	set := checkpoint.AuthoritySet{Genesis: checkpoint.HashOf([]byte("genesis")), SetID: 1}
	var privs []ed25519.PrivateKey
	for i := 0; i < n; i++ {
		seed := checkpoint.HashOf([]byte(fmt.Sprintf("key-%d", i)))
		k := ed25519.NewKeyFromSeed(seed[:])
		privs = append(privs, k)
		set.Keys = append(set.Keys, k.Public().(ed25519.PublicKey))
	}
	return privs, set
}

func cp(n uint64) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Number: n, Hash: checkpoint.HashOf([]byte(fmt.Sprintf("block-%d", n)))}
}

func sign(k ed25519.PrivateKey, i int, v checkpoint.Vote) checkpoint.SignedVote {
	sv := checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i)}
	copy(sv.Signature[:], ed25519.Sign(k, v.SigningBytes()))
	return sv
}

func TestQuorum(t *testing.T) {
	for _, tc := range []struct{ n, q int }{{1, 1}, {2, 2}, {3, 3}, {4, 3}, {7, 5}, {21, 15}, {100, 67}} {
		require.Equal(t, tc.q, checkpoint.Quorum(tc.n), "n=%d", tc.n)
	}
}

func TestVoteSigningBytesLayout(t *testing.T) {
	v := checkpoint.Vote{Genesis: checkpoint.Hash{1}, SetID: 2, Source: checkpoint.Checkpoint{Number: 3, Hash: checkpoint.Hash{4}}, Target: checkpoint.Checkpoint{Number: 5, Hash: checkpoint.Hash{6}}}
	b := v.SigningBytes()
	require.Equal(t, len(checkpoint.VoteDomain)+32+8+40+40, len(b))
	require.Equal(t, checkpoint.VoteDomain, string(b[:len(checkpoint.VoteDomain)]))
	off := len(checkpoint.VoteDomain)
	require.Equal(t, byte(1), b[off])
	require.Equal(t, byte(2), b[off+32+7])
	require.Equal(t, byte(3), b[off+40+7])
	require.Equal(t, byte(5), b[off+40+40+7])
}

func TestVerifyVote(t *testing.T) {
	privs, set := keys(4)
	good := sign(privs[1], 1, checkpoint.Vote{Genesis: set.Genesis, SetID: 1, Source: cp(0), Target: cp(1)})
	tests := []struct {
		name   string
		mutate func(*checkpoint.SignedVote)
		want   error
	}{
		{"valid", func(*checkpoint.SignedVote) {}, nil},
		{"wrong chain", func(v *checkpoint.SignedVote) { v.Genesis[0] ^= 1 }, checkpoint.ErrWrongChain},
		{"wrong set", func(v *checkpoint.SignedVote) { v.SetID = 2 }, checkpoint.ErrWrongSet},
		{"bad link", func(v *checkpoint.SignedVote) { v.Target = cp(0) }, checkpoint.ErrBadLink},
		{"unknown validator", func(v *checkpoint.SignedVote) { v.Validator = 4 }, checkpoint.ErrUnknownValidator},
		{"other signer index", func(v *checkpoint.SignedVote) { v.Validator = 2 }, checkpoint.ErrBadSignature},
		{"flipped signature", func(v *checkpoint.SignedVote) { v.Signature[10] ^= 1 }, checkpoint.ErrBadSignature},
		{"other target hash", func(v *checkpoint.SignedVote) { v.Target.Hash[0] ^= 1 }, checkpoint.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := good
			tt.mutate(&v)
			err := set.VerifyVote(v)
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.want)
			}
		})
	}
}

func TestCertificate(t *testing.T) {
	for _, n := range []int{1, 4, 21, 100} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			privs, set := keys(n)
			v := checkpoint.Vote{Genesis: set.Genesis, SetID: 1, Source: cp(0), Target: cp(1)}
			var votes []checkpoint.SignedVote
			for i := n - 1; i >= 0; i-- { // reverse order: NewCertificate sorts
				votes = append(votes, sign(privs[i], i, v))
			}
			q := set.Quorum()
			cert, err := checkpoint.NewCertificate(votes[:q])
			require.NoError(t, err)
			require.NoError(t, set.VerifyCertificate(cert))
			require.True(t, cert.Finalizes())
			if q > 1 {
				short, err := checkpoint.NewCertificate(votes[:q-1])
				require.NoError(t, err)
				require.ErrorIs(t, set.VerifyCertificate(short), checkpoint.ErrNoQuorum)
				dup := cert
				dup.Signatures = append([]checkpoint.CertSignature(nil), cert.Signatures...)
				dup.Signatures[1] = dup.Signatures[0]
				require.ErrorIs(t, set.VerifyCertificate(dup), checkpoint.ErrDuplicateSigner)
			}
			bad := cert
			bad.Signatures = append([]checkpoint.CertSignature(nil), cert.Signatures...)
			bad.Signatures[len(bad.Signatures)-1].Signature[0] ^= 1
			require.ErrorIs(t, set.VerifyCertificate(bad), checkpoint.ErrBadSignature)
			// Duplicate votes by one validator count once.
			again, err := checkpoint.NewCertificate(append(votes[:1:1], votes[0]))
			require.NoError(t, err)
			require.Len(t, again.Signatures, 1)
		})
	}
}

func TestNewCertificateRejectsMixedLinks(t *testing.T) {
	privs, set := keys(2)
	a := sign(privs[0], 0, checkpoint.Vote{Genesis: set.Genesis, SetID: 1, Source: cp(0), Target: cp(1)})
	b := sign(privs[1], 1, checkpoint.Vote{Genesis: set.Genesis, SetID: 1, Source: cp(0), Target: cp(2)})
	_, err := checkpoint.NewCertificate([]checkpoint.SignedVote{a, b})
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
}

func TestSignerRecordRules(t *testing.T) {
	g := checkpoint.HashOf([]byte("genesis"))
	vote := func(s, tg uint64, tag string) checkpoint.Vote {
		return checkpoint.Vote{Genesis: g, SetID: 1, Source: cp(s), Target: checkpoint.Checkpoint{Number: tg, Hash: checkpoint.HashOf([]byte(tag))}}
	}
	last := checkpoint.SignedVote{Vote: vote(2, 5, "a")}
	tests := []struct {
		name string
		rec  checkpoint.SignerRecord
		v    checkpoint.Vote
		want checkpoint.Decision
		err  error
	}{
		{"fresh record signs", checkpoint.SignerRecord{Genesis: g}, vote(0, 1, "a"), checkpoint.SignNew, nil},
		{"identical returns stored", checkpoint.SignerRecord{Genesis: g, Last: &last}, vote(2, 5, "a"), checkpoint.ReturnStored, nil},
		{"double vote refused", checkpoint.SignerRecord{Genesis: g, Last: &last}, vote(2, 5, "b"), 0, checkpoint.ErrSlashable},
		{"same target other source refused", checkpoint.SignerRecord{Genesis: g, Last: &last}, vote(3, 5, "a"), 0, checkpoint.ErrSlashable},
		{"lower target refused", checkpoint.SignerRecord{Genesis: g, Last: &last}, vote(2, 4, "a"), 0, checkpoint.ErrSlashable},
		{"surrounding vote refused", checkpoint.SignerRecord{Genesis: g, Last: &last}, vote(1, 6, "a"), 0, checkpoint.ErrSlashable},
		{"surrounded vote refused", checkpoint.SignerRecord{Genesis: g, Last: &last}, vote(3, 4, "a"), 0, checkpoint.ErrSlashable},
		{"next vote allowed", checkpoint.SignerRecord{Genesis: g, Last: &last}, vote(5, 6, "a"), checkpoint.SignNew, nil},
		{"same source higher target allowed", checkpoint.SignerRecord{Genesis: g, Last: &last}, vote(2, 9, "a"), checkpoint.SignNew, nil},
		{"watermark target", checkpoint.SignerRecord{Genesis: g, MinTarget: 10}, vote(0, 10, "a"), 0, checkpoint.ErrSlashable},
		{"watermark source", checkpoint.SignerRecord{Genesis: g, MinSource: 3}, vote(2, 11, "a"), 0, checkpoint.ErrSlashable},
		{"wrong chain", checkpoint.SignerRecord{Genesis: g}, checkpoint.Vote{Genesis: checkpoint.Hash{9}, Source: cp(0), Target: cp(1)}, 0, checkpoint.ErrWrongChain},
		{"bad link", checkpoint.SignerRecord{Genesis: g}, vote(3, 3, "a"), 0, checkpoint.ErrBadLink},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.rec.Check(tt.v)
			if tt.err != nil {
				require.True(t, errors.Is(err, tt.err), "got %v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, d)
		})
	}
}

func TestConflicts(t *testing.T) {
	g := checkpoint.Hash{1}
	mk := func(s, tg uint64, h byte) checkpoint.SignedVote {
		return checkpoint.SignedVote{Vote: checkpoint.Vote{Genesis: g, Source: checkpoint.Checkpoint{Number: s}, Target: checkpoint.Checkpoint{Number: tg, Hash: checkpoint.Hash{h}}}}
	}
	tests := []struct {
		name string
		a, b checkpoint.SignedVote
		kind checkpoint.EvidenceKind
		ok   bool
	}{
		{"identical", mk(1, 2, 1), mk(1, 2, 1), 0, false},
		{"double", mk(1, 2, 1), mk(1, 2, 2), checkpoint.EvidenceDoubleVote, true},
		{"surround", mk(1, 5, 1), mk(2, 3, 1), checkpoint.EvidenceSurroundVote, true},
		{"surrounded", mk(2, 3, 1), mk(1, 5, 1), checkpoint.EvidenceSurroundVote, true},
		{"sequential", mk(1, 2, 1), mk(2, 3, 1), 0, false},
		{"other validator", mk(1, 2, 1), func() checkpoint.SignedVote { v := mk(1, 2, 2); v.Validator = 1; return v }(), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := checkpoint.Conflicts(tt.a, tt.b)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.kind, k)
		})
	}
}

func TestCodecRoundTrip(t *testing.T) {
	privs, set := keys(4)
	v := sign(privs[2], 2, checkpoint.Vote{Genesis: set.Genesis, SetID: 1, Source: cp(3), Target: cp(4)})
	b, err := checkpoint.EncodeVote(v)
	require.NoError(t, err)
	got, err := checkpoint.DecodeVote(b)
	require.NoError(t, err)
	require.Equal(t, v, got)

	votes := []checkpoint.SignedVote{v, sign(privs[0], 0, v.Vote), sign(privs[1], 1, v.Vote)}
	cert, err := checkpoint.NewCertificate(votes)
	require.NoError(t, err)
	b, err = checkpoint.EncodeCertificate(cert)
	require.NoError(t, err)
	gotCert, err := checkpoint.DecodeCertificate(b)
	require.NoError(t, err)
	require.Equal(t, cert, gotCert)
	require.NoError(t, set.VerifyCertificate(gotCert))

	other := sign(privs[2], 2, checkpoint.Vote{Genesis: set.Genesis, SetID: 1, Source: cp(3), Target: checkpoint.Checkpoint{Number: 4}})
	ev := checkpoint.Evidence{Kind: checkpoint.EvidenceDoubleVote, Validator: 2, First: &v, Second: &other, Checkpoint: 4}
	b, err = checkpoint.EncodeEvidence(ev)
	require.NoError(t, err)
	gotEv, err := checkpoint.DecodeEvidence(b)
	require.NoError(t, err)
	require.Equal(t, ev, gotEv)
	require.Equal(t, ev.ID(), gotEv.ID())

	rec := checkpoint.SignerRecord{PublicKey: set.Keys[2], Genesis: set.Genesis, Last: &v, MinTarget: 1}
	b, err = checkpoint.EncodeSignerRecord(rec)
	require.NoError(t, err)
	gotRec, err := checkpoint.DecodeSignerRecord(b)
	require.NoError(t, err)
	require.Equal(t, rec, gotRec)

	for name, dec := range map[string]func([]byte) error{
		"vote":        func(b []byte) error { _, err := checkpoint.DecodeVote(b); return err },
		"certificate": func(b []byte) error { _, err := checkpoint.DecodeCertificate(b); return err },
		"evidence":    func(b []byte) error { _, err := checkpoint.DecodeEvidence(b); return err },
		"signer":      func(b []byte) error { _, err := checkpoint.DecodeSignerRecord(b); return err },
		"checkpoint":  func(b []byte) error { _, err := checkpoint.DecodeCheckpoint(b); return err },
	} {
		t.Run("garbage "+name, func(t *testing.T) {
			require.ErrorIs(t, dec([]byte{0xff, 0xff, 0xff}), checkpoint.ErrMalformed)
			require.ErrorIs(t, dec(nil), checkpoint.ErrMalformed)
		})
	}
}

func TestBestChain(t *testing.T) {
	j := checkpoint.Hash{0xaa}
	low, high, mid := checkpoint.Hash{0x01}, checkpoint.Hash{0x02}, checkpoint.Hash{0x03}
	containsAll := func(checkpoint.Tip, checkpoint.Hash) bool { return true }
	tip := func(h checkpoint.Hash, number, slot uint64) checkpoint.Tip {
		return checkpoint.Tip{Hash: h, Number: number, Slot: slot}
	}
	tests := []struct {
		name     string
		tips     []checkpoint.Tip
		contains func(checkpoint.Tip, checkpoint.Hash) bool
		want     checkpoint.Tip
		ok       bool
	}{
		{"longest wins", []checkpoint.Tip{tip(low, 3, 3), tip(high, 5, 9)}, containsAll, tip(high, 5, 9), true},
		{"longest wins over lower slot", []checkpoint.Tip{tip(low, 5, 20), tip(high, 4, 4)}, containsAll, tip(low, 5, 20), true},
		{"equal height lower slot wins", []checkpoint.Tip{tip(low, 5, 8), tip(high, 5, 7)}, containsAll, tip(high, 5, 7), true},
		{"equal height lower slot wins in any order", []checkpoint.Tip{tip(high, 5, 7), tip(low, 5, 8)}, containsAll, tip(high, 5, 7), true},
		{"equal height and slot lowest hash", []checkpoint.Tip{tip(high, 5, 7), tip(low, 5, 7)}, containsAll, tip(low, 5, 7), true},
		{"three way: slot before hash", []checkpoint.Tip{tip(low, 6, 12), tip(mid, 6, 10), tip(high, 6, 11)}, containsAll, tip(mid, 6, 10), true},
		{"must contain justified", []checkpoint.Tip{tip(low, 3, 3), tip(high, 9, 9)},
			func(tp checkpoint.Tip, b checkpoint.Hash) bool { return tp.Hash == low && b == j }, tip(low, 3, 3), true},
		{"lower slot does not help without justified", []checkpoint.Tip{tip(low, 5, 9), tip(high, 5, 1)},
			func(tp checkpoint.Tip, _ checkpoint.Hash) bool { return tp.Hash == low }, tip(low, 5, 9), true},
		{"none", []checkpoint.Tip{tip(low, 3, 3)}, func(checkpoint.Tip, checkpoint.Hash) bool { return false }, checkpoint.Tip{}, false},
		{"no tips", nil, containsAll, checkpoint.Tip{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := checkpoint.BestChain(tt.tips, j, tt.contains)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestTipBeats(t *testing.T) {
	a := checkpoint.Tip{Hash: checkpoint.Hash{1}, Number: 5, Slot: 7}
	tests := []struct {
		name string
		o    checkpoint.Tip
		want bool // a beats o
	}{
		{"identical", a, false},
		{"o longer", checkpoint.Tip{Hash: checkpoint.Hash{9}, Number: 6, Slot: 1}, false},
		{"o shorter", checkpoint.Tip{Hash: checkpoint.Hash{0}, Number: 4, Slot: 1}, true},
		{"o later slot", checkpoint.Tip{Hash: checkpoint.Hash{0}, Number: 5, Slot: 8}, true},
		{"o earlier slot", checkpoint.Tip{Hash: checkpoint.Hash{9}, Number: 5, Slot: 6}, false},
		{"o same slot higher hash", checkpoint.Tip{Hash: checkpoint.Hash{2}, Number: 5, Slot: 7}, true},
		{"o same slot lower hash", checkpoint.Tip{Hash: checkpoint.Hash{0}, Number: 5, Slot: 7}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, a.Beats(tt.o))
			if tt.o != a {
				require.Equal(t, !tt.want, tt.o.Beats(a), "Beats is a strict total order")
			}
		})
	}
}
