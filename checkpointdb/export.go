package checkpointdb

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// InterchangeFormatVersion is the EIP-3076 interchange format version the
// signer-record export follows.
const InterchangeFormatVersion = "5"

// Interchange is the EIP-3076-style slashing-protection interchange
// document of flare-node (votes instead of attestations; all integers are
// decimal strings, hashes and keys 0x-prefixed hex).
type Interchange struct {
	Metadata InterchangeMetadata `json:"metadata"`
	Data     []InterchangeKey    `json:"data"`
}

// InterchangeMetadata identifies the format and the chain.
type InterchangeMetadata struct {
	InterchangeFormatVersion string `json:"interchange_format_version"`
	GenesisHash              string `json:"genesis_hash"`
}

// InterchangeKey is the history of one validator key.
type InterchangeKey struct {
	Pubkey      string            `json:"pubkey"`
	SignedVotes []InterchangeVote `json:"signed_votes"`
}

// InterchangeVote is one signed vote. SigningRoot is the BLAKE2b-256 hash of
// the vote's signing bytes; it is omitted for a watermark entry (raised
// MinSource/MinTarget without a vote).
type InterchangeVote struct {
	SourceNumber string `json:"source_number"`
	TargetNumber string `json:"target_number"`
	SigningRoot  string `json:"signing_root,omitempty"`
}

// SigningRoot returns the interchange signing root of a vote.
func SigningRoot(v checkpoint.Vote) checkpoint.Hash { return checkpoint.HashOf(v.SigningBytes()) }

// ExportSignerRecordsJSON renders recs as EIP-3076-style interchange JSON
// for genesis: for every key its last signed vote (with signing root) and,
// when its watermarks go beyond that vote, a watermark entry without a
// signing root. Keys are sorted. A record of another chain is refused
// (ErrWrongChain).
func ExportSignerRecordsJSON(recs []checkpoint.SignerRecord, genesis checkpoint.Hash) ([]byte, error) {
	doc := Interchange{
		Metadata: InterchangeMetadata{InterchangeFormatVersion: InterchangeFormatVersion, GenesisHash: genesis.String()},
		Data:     make([]InterchangeKey, 0, len(recs)),
	}
	sorted := slices.Clone(recs)
	slices.SortFunc(sorted, func(a, b checkpoint.SignerRecord) int { return bytes.Compare(a.PublicKey, b.PublicKey) })
	for i, r := range sorted {
		if len(r.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("export signer records: %w: public key is %d bytes", checkpoint.ErrMalformed, len(r.PublicKey))
		}
		if i > 0 && bytes.Equal(r.PublicKey, sorted[i-1].PublicKey) {
			return nil, fmt.Errorf("export signer records: %w: key 0x%x listed twice", checkpoint.ErrMalformed, []byte(r.PublicKey))
		}
		if r.Genesis != genesis {
			return nil, fmt.Errorf("export signer records: key 0x%x: %w", []byte(r.PublicKey), ErrWrongChain)
		}
		k := InterchangeKey{Pubkey: "0x" + hex.EncodeToString(r.PublicKey), SignedVotes: []InterchangeVote{}}
		if r.Last != nil {
			k.SignedVotes = append(k.SignedVotes, InterchangeVote{
				SourceNumber: strconv.FormatUint(r.Last.Source.Number, 10),
				TargetNumber: strconv.FormatUint(r.Last.Target.Number, 10),
				SigningRoot:  SigningRoot(r.Last.Vote).String(),
			})
		}
		if r.MinTarget > 0 || r.MinSource > 0 {
			if r.Last == nil || r.MinTarget > r.Last.Target.Number || r.MinSource > r.Last.Source.Number {
				k.SignedVotes = append(k.SignedVotes, InterchangeVote{
					SourceNumber: strconv.FormatUint(r.MinSource, 10),
					TargetNumber: strconv.FormatUint(r.MinTarget, 10),
				})
			}
		}
		doc.Data = append(doc.Data, k)
	}
	return json.MarshalIndent(doc, "", "  ")
}
