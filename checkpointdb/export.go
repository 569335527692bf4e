package checkpointdb

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

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

// InterchangeVote is one signed vote: its source and target checkpoint
// numbers (decimal strings) and hashes, and its signing root (the
// BLAKE2b-256 hash of the vote's signing bytes). The hashes and the signing
// root are omitted for a watermark entry (watermarks raised beyond the last
// vote, by an import or by the high-water mark, without a vote of their
// own). Import uses only the numbers.
type InterchangeVote struct {
	SourceNumber string `json:"source_number"`
	SourceHash   string `json:"source_hash,omitempty"`
	TargetNumber string `json:"target_number"`
	TargetHash   string `json:"target_hash,omitempty"`
	SigningRoot  string `json:"signing_root,omitempty"`
	// SetID is the authority set id of the vote (a decimal string; omitted
	// for set 0). On a watermark entry it is the lowest set id the key may
	// sign for.
	SetID string `json:"set_id,omitempty"`
}

func setIDString(id uint64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(id, 10)
}

// SigningRoot returns the interchange signing root of a vote.
func SigningRoot(v checkpoint.Vote) checkpoint.Hash { return checkpoint.HashOf(v.SigningBytes()) }

// ExportSignerRecordsJSON renders recs as EIP-3076-style interchange JSON
// for genesis: for every key its last signed vote (with hashes and signing
// root) and, when its watermarks go beyond that vote, a watermark entry
// (the highest source and target it forbids going below) without hashes.
// Keys are sorted. A record of another chain is refused (ErrWrongChain).
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
				SourceHash:   r.Last.Source.Hash.String(),
				TargetNumber: strconv.FormatUint(r.Last.Target.Number, 10),
				TargetHash:   r.Last.Target.Hash.String(),
				SigningRoot:  SigningRoot(r.Last.Vote).String(),
				SetID:        setIDString(r.Last.SetID),
			})
		}
		lastSet := uint64(0)
		if r.Last != nil {
			lastSet = r.Last.SetID
		}
		if t, s, has := effective(r); (has || r.MinSetID > lastSet) && (r.Last == nil || t > r.Last.Target.Number || s > r.Last.Source.Number || r.MinSetID > lastSet) {
			k.SignedVotes = append(k.SignedVotes, InterchangeVote{
				SourceNumber: strconv.FormatUint(s, 10),
				TargetNumber: strconv.FormatUint(max(t, s+1), 10),
				SetID:        setIDString(r.MinSetID),
			})
		}
		doc.Data = append(doc.Data, k)
	}
	return json.MarshalIndent(doc, "", "  ")
}

// ErrInterchange: an interchange document that is not well-formed (bad
// JSON, a missing or unknown field, a number or hash out of shape, a source
// not below its target, another format version).
var ErrInterchange = errors.New("malformed signer-record interchange document")

// MaxInterchangeSize bounds the size of an interchange document ParseInterchange
// accepts.
const MaxInterchangeSize = 64 << 20

// InterchangeWatermark is what an import takes from a document for one
// key: the highest source and target numbers of its entries.
type InterchangeWatermark struct {
	PublicKey ed25519.PublicKey
	Source    uint64
	Target    uint64
	// MinSetID is the lowest set id the key may sign for: the highest
	// set_id of its entries (ApplySchedule raises it past a set whose
	// hand-off link the key signed).
	MinSetID uint64
	// Votes are the key's vote entries (those with a signing root) with
	// their set ids and numbers, for ApplySchedule.
	Votes []checkpoint.Vote
}

// ApplySchedule raises each key's MinSetID to one above every set whose
// hand-off link (checkpoint.Schedule.IsHandOffLink) the key signed, so an
// imported record signs nothing more for that set.
func (p *ParsedInterchange) ApplySchedule(s checkpoint.Schedule) {
	for i := range p.Keys {
		for _, v := range p.Keys[i].Votes {
			if s.IsHandOffLink(v.SetID, v) {
				p.Keys[i].MinSetID = max(p.Keys[i].MinSetID, v.SetID+1)
			}
		}
	}
}

// ParsedInterchange is a validated interchange document.
type ParsedInterchange struct {
	Genesis checkpoint.Hash
	// Keys holds per public key (ordered, unique) the highest source and
	// target numbers; keys without entries are left out.
	Keys []InterchangeWatermark
	// Entries is the number of signed_votes entries read.
	Entries int
}

// ParseInterchange parses and validates an interchange document strictly:
// exactly the documented fields, format version "5", a 0x-prefixed 32-byte
// genesis hash and public keys, canonical decimal numbers with source below
// target, 0x-prefixed 32-byte hashes when present. A key listed twice is
// merged. Every error wraps ErrInterchange and names the offending entry.
func ParseInterchange(data []byte) (ParsedInterchange, error) {
	var out ParsedInterchange
	bad := func(format string, args ...any) (ParsedInterchange, error) {
		return ParsedInterchange{}, fmt.Errorf("%w: %s", ErrInterchange, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxInterchangeSize {
		return bad("document of %d bytes (at most %d)", len(data), MaxInterchangeSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc struct {
		Metadata *struct {
			InterchangeFormatVersion *string `json:"interchange_format_version"`
			GenesisHash              *string `json:"genesis_hash"`
		} `json:"metadata"`
		Data *[]struct {
			Pubkey      *string            `json:"pubkey"`
			SignedVotes *[]InterchangeVote `json:"signed_votes"`
		} `json:"data"`
	}
	if err := dec.Decode(&doc); err != nil {
		return bad("%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("data after the JSON document")
	}
	switch {
	case doc.Metadata == nil:
		return bad("missing \"metadata\"")
	case doc.Metadata.InterchangeFormatVersion == nil:
		return bad("missing \"metadata.interchange_format_version\"")
	case *doc.Metadata.InterchangeFormatVersion != InterchangeFormatVersion:
		return bad("interchange_format_version %q, this build reads %q", *doc.Metadata.InterchangeFormatVersion, InterchangeFormatVersion)
	case doc.Metadata.GenesisHash == nil:
		return bad("missing \"metadata.genesis_hash\"")
	case doc.Data == nil:
		return bad("missing \"data\"")
	}
	g, err := parseHex32(*doc.Metadata.GenesisHash)
	if err != nil {
		return bad("metadata.genesis_hash: %v", err)
	}
	out.Genesis = checkpoint.Hash(g)
	byKey := map[string]*InterchangeWatermark{}
	for i, k := range *doc.Data {
		if k.Pubkey == nil {
			return bad("data[%d]: missing \"pubkey\"", i)
		}
		pub, err := parseHex32(*k.Pubkey)
		if err != nil {
			return bad("data[%d].pubkey: %v", i, err)
		}
		if k.SignedVotes == nil {
			return bad("data[%d]: missing \"signed_votes\"", i)
		}
		for j, v := range *k.SignedVotes {
			where := fmt.Sprintf("data[%d].signed_votes[%d]", i, j)
			src, err := parseDecimal(v.SourceNumber)
			if err != nil {
				return bad("%s.source_number: %v", where, err)
			}
			tgt, err := parseDecimal(v.TargetNumber)
			if err != nil {
				return bad("%s.target_number: %v", where, err)
			}
			if src >= tgt {
				return bad("%s: source %d not below target %d", where, src, tgt)
			}
			var setID uint64
			if v.SetID != "" {
				if setID, err = parseDecimal(v.SetID); err != nil {
					return bad("%s.set_id: %v", where, err)
				}
			}
			for name, h := range map[string]string{"source_hash": v.SourceHash, "target_hash": v.TargetHash, "signing_root": v.SigningRoot} {
				if h == "" {
					continue
				}
				if _, err := parseHex32(h); err != nil {
					return bad("%s.%s: %v", where, name, err)
				}
			}
			out.Entries++
			w := byKey[string(pub[:])]
			if w == nil {
				w = &InterchangeWatermark{PublicKey: ed25519.PublicKey(bytes.Clone(pub[:]))}
				byKey[string(pub[:])] = w
			}
			w.Source, w.Target = max(w.Source, src), max(w.Target, tgt)
			w.MinSetID = max(w.MinSetID, setID)
			if v.SigningRoot != "" {
				w.Votes = append(w.Votes, checkpoint.Vote{SetID: setID, Source: checkpoint.Checkpoint{Number: src}, Target: checkpoint.Checkpoint{Number: tgt}})
			}
		}
	}
	for _, w := range byKey {
		out.Keys = append(out.Keys, *w)
	}
	slices.SortFunc(out.Keys, func(a, b InterchangeWatermark) int { return bytes.Compare(a.PublicKey, b.PublicKey) })
	return out, nil
}

// parseHex32 parses "0x" followed by 64 hex digits (either case).
func parseHex32(s string) ([32]byte, error) {
	var out [32]byte
	if len(s) != 66 || (s[:2] != "0x" && s[:2] != "0X") {
		return out, fmt.Errorf("%q is not 0x followed by 64 hex digits", s)
	}
	if _, err := hex.Decode(out[:], []byte(s[2:])); err != nil {
		return out, fmt.Errorf("%q is not 0x followed by 64 hex digits", s)
	}
	return out, nil
}

// parseDecimal parses a canonical decimal uint64 string (no sign, no
// leading zeros, no spaces).
func parseDecimal(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("missing or empty")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q does not fit 64 bits", s)
	}
	return n, nil
}

// ExportSignerRecords returns the interchange document of every signer
// record (merged with the high-water mark) and the number of keys in it.
func (db *CheckpointDB) ExportSignerRecords(ctx context.Context) ([]byte, int, error) {
	recs, err := db.SignerRecords(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read signer records: %w", err)
	}
	doc, err := ExportSignerRecordsJSON(recs, db.genesis)
	if err != nil {
		return nil, 0, err
	}
	return doc, len(recs), nil
}

// ImportedKey is the outcome of an import for one key.
type ImportedKey struct {
	PublicKey ed25519.PublicKey
	// Existed reports whether the database (or its high-water mark) had a
	// record of the key before.
	Existed bool
	// Before and After are the watermarks (highest target and source a new
	// vote must respect) before and after the import; equal when the
	// document raised nothing.
	Before, After SignerWatermark
}

// Changed reports whether the import raised the key's watermarks.
func (k ImportedKey) Changed() bool {
	return k.Before.Target != k.After.Target || k.Before.Source != k.After.Source
}

// ImportSignerRecords merges an interchange document into the signer
// records, EIP-3076 "minimal" style: for every key the new MinTarget and
// MinSource are the maximum of the stored watermarks and the document's
// highest target and source; nothing is ever lowered and the stored last
// vote is kept. The records that change are written in one synced batch,
// then the high-water mark is raised. Importing the same document twice
// changes nothing the second time. A document of another chain is refused
// (ErrWrongChain) before anything is written.
func (db *CheckpointDB) ImportSignerRecords(ctx context.Context, doc ParsedInterchange) ([]ImportedKey, error) {
	if err := db.begin(ctx, true); err != nil {
		return nil, err
	}
	defer db.life.RUnlock()
	if doc.Genesis != db.genesis {
		return nil, fmt.Errorf("import signer records: the document is of the chain with genesis %s, this database of %s: %w", doc.Genesis, db.genesis, ErrWrongChain)
	}
	db.wmu.Lock()
	defer db.wmu.Unlock()
	b := db.db.NewBatch()
	defer b.Close()
	var (
		out     []ImportedKey
		changed []checkpoint.SignerRecord
	)
	for _, w := range doc.Keys {
		stored, found, err := db.readSignerRecord(db.db, w.PublicKey)
		if err != nil {
			return nil, err
		}
		rec, existed := db.mergeHWM(w.PublicKey, stored, found)
		if !existed {
			rec = checkpoint.SignerRecord{PublicKey: bytes.Clone(w.PublicKey), Genesis: db.genesis}
		}
		t, s, _ := effective(rec)
		k := ImportedKey{PublicKey: w.PublicKey, Existed: existed,
			Before: SignerWatermark{PublicKey: w.PublicKey, Target: t, Source: s}}
		if w.Target > t {
			rec.MinTarget = w.Target
		}
		if w.Source > s {
			rec.MinSource = w.Source
		}
		rec.MinSetID = max(rec.MinSetID, w.MinSetID)
		t, s, _ = effective(rec)
		k.After = SignerWatermark{PublicKey: w.PublicKey, Target: t, Source: s}
		out = append(out, k)
		if found && rec.MinTarget == stored.MinTarget && rec.MinSource == stored.MinSource && rec.MinSetID == stored.MinSetID {
			continue // the stored record already holds everything
		}
		val, err := checkpoint.EncodeSignerRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("import signer records: %w", err)
		}
		_ = b.Set(signerKey(rec.PublicKey), val, nil)
		changed = append(changed, rec)
	}
	if len(changed) == 0 {
		return out, nil
	}
	if err := db.commit("import signer records", b, pebble.Sync); err != nil {
		return nil, err
	}
	if err := db.raiseSignerHWM(changed...); err != nil {
		return nil, fmt.Errorf("import signer records: %w", err)
	}
	for _, k := range out {
		if k.Changed() {
			db.log.Info("Imported signer record", zap.String("public_key", fmt.Sprintf("0x%x", []byte(k.PublicKey))),
				zap.Uint64("target_before", k.Before.Target), zap.Uint64("target", k.After.Target),
				zap.Uint64("source_before", k.Before.Source), zap.Uint64("source", k.After.Source))
		}
	}
	return out, nil
}
