package checkpoint_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// certify returns the certificate of source -> target signed by the
// validators signers (indices into privs).
func certify(t *testing.T, privs []ed25519.PrivateKey, set checkpoint.AuthoritySet, source, target checkpoint.Checkpoint, signers ...int) checkpoint.Certificate {
	t.Helper()
	v := checkpoint.Vote{Genesis: set.Genesis, SetID: set.SetID, Source: source, Target: target}
	votes := make([]checkpoint.SignedVote, len(signers))
	for i, s := range signers {
		votes[i] = sign(privs[s], s, v)
	}
	c, err := checkpoint.NewCertificate(votes)
	require.NoError(t, err)
	return c
}

func otherHash(c checkpoint.Checkpoint) checkpoint.Checkpoint {
	c.Hash[0] ^= 0xff
	return c
}

func TestVerifyFinalityProof(t *testing.T) {
	privs, set := keys(4) // quorum 3
	q := []int{0, 1, 3}
	fin := certify(t, privs, set, cp(5), cp(6), q...) // finalizes 5, justifies 6
	ptr := func(c checkpoint.Certificate) *checkpoint.Certificate { return &c }
	tests := []struct {
		name          string
		proof         func() checkpoint.FinalityProof
		fin, just     checkpoint.Checkpoint
		is            error
		wantSubstring string
	}{
		{"finalizing only", func() checkpoint.FinalityProof { return checkpoint.FinalityProof{Finalizing: fin} }, cp(5), cp(6), nil, ""},
		{"justified further on", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, cp(6), cp(9), 0, 1, 2, 3))}
		}, cp(5), cp(9), nil, ""},
		{"justified from the finalized checkpoint", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, cp(5), cp(8), 1, 2, 3))}
		}, cp(5), cp(8), nil, ""},
		{"justified is the finalizing link", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, cp(5), cp(6), 0, 2, 3))}
		}, cp(5), cp(6), nil, ""},
		{"finalizing genesis", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: certify(t, privs, set, cp(0), cp(1), q...)}
		}, cp(0), cp(1), nil, ""},

		// The finalizing certificate.
		{"finalizing skips a checkpoint", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: certify(t, privs, set, cp(5), cp(7), q...)}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadProof, "not to the next checkpoint"},
		{"finalizing below quorum", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: certify(t, privs, set, cp(5), cp(6), 0, 1)}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrNoQuorum, "finalizing"},
		{"finalizing of another chain", func() checkpoint.FinalityProof {
			f := fin
			f.Genesis[0] ^= 1
			return checkpoint.FinalityProof{Finalizing: f}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrWrongChain, "finalizing"},
		{"finalizing of another set", func() checkpoint.FinalityProof {
			f := fin
			f.SetID++
			return checkpoint.FinalityProof{Finalizing: f}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrWrongSet, "finalizing"},
		{"finalizing with a signer twice", func() checkpoint.FinalityProof {
			f := fin
			f.Signatures = append([]checkpoint.CertSignature(nil), fin.Signatures...)
			f.Signatures[1] = f.Signatures[0]
			return checkpoint.FinalityProof{Finalizing: f}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrDuplicateSigner, "finalizing"},
		{"finalizing with an unknown signer", func() checkpoint.FinalityProof {
			f := fin
			f.Signatures = append(append([]checkpoint.CertSignature(nil), fin.Signatures...), checkpoint.CertSignature{Validator: 4})
			return checkpoint.FinalityProof{Finalizing: f}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrUnknownValidator, "finalizing"},
		{"finalizing with a bad signature", func() checkpoint.FinalityProof {
			f := fin
			f.Signatures = append([]checkpoint.CertSignature(nil), fin.Signatures...)
			f.Signatures[2].Signature[7] ^= 1
			return checkpoint.FinalityProof{Finalizing: f}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadSignature, "finalizing"},
		{"finalizing target swapped after signing", func() checkpoint.FinalityProof {
			f := fin
			f.Target = otherHash(f.Target)
			return checkpoint.FinalityProof{Finalizing: f}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadSignature, "finalizing"},

		// The justified certificate.
		{"justified below quorum", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, cp(6), cp(9), 0, 1))}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrNoQuorum, "justified"},
		{"justified of another chain", func() checkpoint.FinalityProof {
			j := certify(t, privs, set, cp(6), cp(9), q...)
			j.Genesis[1] ^= 1
			return checkpoint.FinalityProof{Finalizing: fin, Justified: &j}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrWrongChain, "justified"},
		{"justified with a bad signature", func() checkpoint.FinalityProof {
			j := certify(t, privs, set, cp(6), cp(9), q...)
			j.Signatures[0].Signature[0] ^= 1
			return checkpoint.FinalityProof{Finalizing: fin, Justified: &j}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadSignature, "justified"},
		{"justified at the finalized number", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, cp(4), cp(5), q...))}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadProof, "not above finalized"},
		{"justified below the finalized number", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, cp(2), cp(3), q...))}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadProof, "not above finalized"},
		{"justified source below finalized", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, cp(4), cp(9), q...))}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadProof, "source"},
		{"justified source conflicts with finalized", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, otherHash(cp(5)), cp(9), q...))}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadProof, "conflicts with finalized"},
		{"justified next checkpoint conflicts", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: fin, Justified: ptr(certify(t, privs, set, cp(5), otherHash(cp(6)), q...))}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadProof, "conflicts with"},
		{"relation checked before any signature", func() checkpoint.FinalityProof {
			f := fin
			f.Signatures = append([]checkpoint.CertSignature(nil), fin.Signatures...)
			f.Signatures[0].Signature[0] ^= 1
			return checkpoint.FinalityProof{Finalizing: f, Justified: ptr(certify(t, privs, set, cp(4), cp(9), q...))}
		}, checkpoint.Checkpoint{}, checkpoint.Checkpoint{}, checkpoint.ErrBadProof, "source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, j, err := set.VerifyFinalityProof(tt.proof())
			if tt.is == nil {
				require.NoError(t, err)
				require.Equal(t, tt.fin, f)
				require.Equal(t, tt.just, j)
				return
			}
			require.ErrorIs(t, err, tt.is)
			require.ErrorIs(t, err, checkpoint.ErrBadProof)
			require.Contains(t, err.Error(), tt.wantSubstring)
			if tt.name == "relation checked before any signature" {
				require.NotErrorIs(t, err, checkpoint.ErrBadSignature)
			}
			require.Equal(t, checkpoint.Checkpoint{}, f)
			require.Equal(t, checkpoint.Checkpoint{}, j)
		})
	}
}

func TestFinalityProofCodec(t *testing.T) {
	privs, set := keys(4)
	fin := certify(t, privs, set, cp(5), cp(6), 0, 1, 2)
	just := certify(t, privs, set, cp(6), cp(8), 1, 2, 3)
	for name, p := range map[string]checkpoint.FinalityProof{
		"finalizing only": {Finalizing: fin},
		"with justified":  {Finalizing: fin, Justified: &just},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := checkpoint.EncodeFinalityProof(p)
			require.NoError(t, err)
			got, err := checkpoint.DecodeFinalityProof(b)
			require.NoError(t, err)
			require.Equal(t, p, got)
			_, _, err = set.VerifyFinalityProof(got)
			require.NoError(t, err)
		})
	}
	// A proof needs its finalizing certificate; each certificate is shape
	// checked like a lone one.
	onlyJustified, err := proto.Marshal(&flarepb.FinalityProof{Justified: checkpoint.CertificateToPB(just)})
	require.NoError(t, err)
	pb := checkpoint.FinalityProofToPB(checkpoint.FinalityProof{Finalizing: fin, Justified: &just})
	pb.Justified.Signatures[1].Signature = pb.Justified.Signatures[1].Signature[:63]
	short, err := proto.Marshal(pb)
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"empty":               nil,
		"garbage":             {0xff, 0xff, 0xff},
		"justified only":      onlyJustified,
		"truncated signature": short,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := checkpoint.DecodeFinalityProof(b)
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			if name == "justified only" {
				require.Contains(t, err.Error(), "without finalizing certificate")
			}
			if name == "truncated signature" {
				require.Contains(t, err.Error(), "justified certificate: malformed: signature is 63 bytes")
			}
		})
	}
}
