package checkpointdb

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

func TestExportSignerRecordsJSON(t *testing.T) {
	pub := func(i int) ed25519.PublicKey { return testKeys[i].Public().(ed25519.PublicKey) }
	last := signed(checkpoint.Vote{Genesis: testGenesis, SetID: 1, Source: cp(41), Target: cp(42)}, 0)
	recs := []checkpoint.SignerRecord{
		{PublicKey: pub(0), Genesis: testGenesis, Last: &last},
		{PublicKey: pub(1), Genesis: testGenesis},                                            // never signed
		{PublicKey: pub(2), Genesis: testGenesis, Last: &last, MinSource: 50, MinTarget: 60}, // watermark beyond the vote
	}
	doc, err := ExportSignerRecordsJSON(recs, testGenesis)
	require.NoError(t, err)

	// The document uses the interchange field names, integers as strings.
	var raw map[string]any
	require.NoError(t, json.Unmarshal(doc, &raw))
	require.Equal(t, map[string]any{"interchange_format_version": "5", "genesis_hash": testGenesis.String()}, raw["metadata"])

	var got Interchange
	require.NoError(t, json.Unmarshal(doc, &got))
	byKey := map[string]InterchangeKey{}
	for _, k := range got.Data {
		byKey[k.Pubkey] = k
	}
	require.Len(t, byKey, 3)
	hexKey := func(i int) string { return "0x" + hexOf(pub(i)) }
	root := SigningRoot(last.Vote).String()
	lastEntry := InterchangeVote{SourceNumber: "41", SourceHash: cp(41).Hash.String(), TargetNumber: "42", TargetHash: cp(42).Hash.String(), SigningRoot: root, SetID: setIDString(last.SetID)}
	require.Equal(t, []InterchangeVote{lastEntry}, byKey[hexKey(0)].SignedVotes)
	require.Equal(t, []InterchangeVote{}, byKey[hexKey(1)].SignedVotes)
	require.Equal(t, []InterchangeVote{lastEntry, {SourceNumber: "50", TargetNumber: "60"}}, byKey[hexKey(2)].SignedVotes)
	require.Equal(t, checkpoint.HashOf(last.SigningBytes()).String(), root)

	// Keys are sorted, so the export is deterministic.
	again, err := ExportSignerRecordsJSON([]checkpoint.SignerRecord{recs[2], recs[0], recs[1]}, testGenesis)
	require.NoError(t, err)
	require.Equal(t, doc, again)
}

func TestExportSignerRecordsJSONRejects(t *testing.T) {
	pub := testKeys[0].Public().(ed25519.PublicKey)
	other := checkpoint.HashOf([]byte("other"))
	tests := []struct {
		name string
		recs []checkpoint.SignerRecord
		want error
	}{
		{"other chain", []checkpoint.SignerRecord{{PublicKey: pub, Genesis: other}}, ErrWrongChain},
		{"short key", []checkpoint.SignerRecord{{PublicKey: pub[:5], Genesis: testGenesis}}, checkpoint.ErrMalformed},
		{"duplicate key", []checkpoint.SignerRecord{{PublicKey: pub, Genesis: testGenesis}, {PublicKey: pub, Genesis: testGenesis}}, checkpoint.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ExportSignerRecordsJSON(tc.recs, testGenesis)
			require.ErrorIs(t, err, tc.want)
		})
	}
	doc, err := ExportSignerRecordsJSON(nil, testGenesis)
	require.NoError(t, err)
	require.JSONEq(t, `{"metadata":{"interchange_format_version":"5","genesis_hash":"`+testGenesis.String()+`"},"data":[]}`, string(doc))
}

func TestExportFromDatabase(t *testing.T) {
	db := openMem(t)
	last := signed(linkVote(9, 0), 0)
	require.NoError(t, db.StoreSignerRecord(bg, checkpoint.SignerRecord{PublicKey: testKeys[0].Public().(ed25519.PublicKey), Genesis: testGenesis, Last: &last}))
	recs, err := db.SignerRecords(bg)
	require.NoError(t, err)
	doc, err := ExportSignerRecordsJSON(recs, db.Genesis())
	require.NoError(t, err)
	var got Interchange
	require.NoError(t, json.Unmarshal(doc, &got))
	require.Len(t, got.Data, 1)
	require.Equal(t, "9", got.Data[0].SignedVotes[0].TargetNumber)
}

// handWritten is an interchange document written by hand in the format of
// docs/signer.md (mixed-case hex, a watermark entry, a key listed twice).
func handWritten(genesis checkpoint.Hash, pubA, pubB ed25519.PublicKey) string {
	return `{
  "metadata": {"interchange_format_version": "5", "genesis_hash": "` + genesis.String() + `"},
  "data": [
    {"pubkey": "0x` + strings.ToUpper(hexOf(pubA)) + `", "signed_votes": [
      {"source_number": "41", "source_hash": "` + cp(41).Hash.String() + `",
       "target_number": "42", "target_hash": "` + cp(42).Hash.String() + `",
       "signing_root": "0x` + strings.Repeat("ab", 32) + `"},
      {"source_number": "40", "target_number": "45"}
    ]},
    {"pubkey": "0x` + hexOf(pubB) + `", "signed_votes": []},
    {"pubkey": "0x` + hexOf(pubA) + `", "signed_votes": [{"source_number": "43", "target_number": "44"}]}
  ]
}`
}

// TestInterchangeSetIDs: exported votes carry their set id; an import
// keeps the highest, and past a set whose hand-off link the key signed
// (per the chain's schedule) the record refuses that set.
func TestInterchangeSetIDs(t *testing.T) {
	sched := checkpoint.Schedule{Genesis: checkpoint.AuthoritySet{Genesis: testGenesis, SetID: 0, Keys: []ed25519.PublicKey{pubOf(0), pubOf(1), pubOf(2), pubOf(3)}},
		Changes: []checkpoint.SetChange{{SetID: 1, HandOff: 5, Keys: []ed25519.PublicKey{pubOf(0), pubOf(1), pubOf(2), pubOf(3), pubOf(4)}}}}
	tests := []struct {
		name     string
		last     checkpoint.Vote
		minSetID uint64
	}{
		{"set 0 below the hand-off", checkpoint.Vote{Genesis: testGenesis, SetID: 0, Source: cp(3), Target: cp(4)}, 0},
		{"set 0 hand-off link", checkpoint.Vote{Genesis: testGenesis, SetID: 0, Source: cp(6), Target: cp(7)}, 1},
		{"set 1 vote", checkpoint.Vote{Genesis: testGenesis, SetID: 1, Source: cp(7), Target: cp(8)}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := checkpoint.SignerRecord{PublicKey: pubOf(0), Genesis: testGenesis, Last: &checkpoint.SignedVote{Vote: tc.last}}
			raw, err := ExportSignerRecordsJSON([]checkpoint.SignerRecord{rec}, testGenesis)
			require.NoError(t, err)
			doc, err := ParseInterchange(raw)
			require.NoError(t, err)
			doc.ApplySchedule(sched)
			require.Equal(t, tc.minSetID, doc.Keys[0].MinSetID)
			imported := checkpoint.SignerRecord{PublicKey: pubOf(0), Genesis: testGenesis, MinSource: doc.Keys[0].Source,
				MinTarget: doc.Keys[0].Target, MinSetID: doc.Keys[0].MinSetID}
			// The imported record never signs a second hand-off link of
			// the set, nor for an earlier set.
			next := checkpoint.Vote{Genesis: testGenesis, SetID: tc.last.SetID, Source: cp(tc.last.Target.Number), Target: cp(tc.last.Target.Number + 1)}
			_, err = imported.CheckInSchedule(next, sched)
			if tc.minSetID > tc.last.SetID {
				require.ErrorIs(t, err, checkpoint.ErrSlashable)
			} else {
				require.NoError(t, err)
			}
			// A record with a raised set id survives a re-export.
			raw, err = ExportSignerRecordsJSON([]checkpoint.SignerRecord{imported}, testGenesis)
			require.NoError(t, err)
			again, err := ParseInterchange(raw)
			require.NoError(t, err)
			require.Equal(t, tc.minSetID, again.Keys[0].MinSetID)
		})
	}
}

func TestParseInterchange(t *testing.T) {
	doc, err := ParseInterchange([]byte(handWritten(testGenesis, pubOf(0), pubOf(1))))
	require.NoError(t, err)
	require.Equal(t, testGenesis, doc.Genesis)
	require.Equal(t, 3, doc.Entries)
	require.Equal(t, []InterchangeWatermark{{PublicKey: pubOf(0), Source: 43, Target: 45,
		Votes: []checkpoint.Vote{{Source: checkpoint.Checkpoint{Number: 41}, Target: checkpoint.Checkpoint{Number: 42}}}}}, doc.Keys,
		"maximum source and target over all entries of a key; a key without entries imports nothing")

	valid := `{"metadata":{"interchange_format_version":"5","genesis_hash":"` + testGenesis.String() + `"},"data":[{"pubkey":"0x` + hexOf(pubOf(0)) + `","signed_votes":[{"source_number":"1","target_number":"2"}]}]}`
	_, err = ParseInterchange([]byte(valid))
	require.NoError(t, err)
	bad := map[string]string{
		"not JSON":                `{"metadata":`,
		"trailing data":           valid + `{}`,
		"unknown field":           strings.Replace(valid, `"data"`, `"extra":1,"data"`, 1),
		"unknown vote field":      strings.Replace(valid, `"source_number"`, `"source_epoch":"1","source_number"`, 1),
		"missing metadata":        `{"data":[]}`,
		"missing version":         `{"metadata":{"genesis_hash":"` + testGenesis.String() + `"},"data":[]}`,
		"other version":           strings.Replace(valid, `"5"`, `"4"`, 1),
		"missing genesis":         `{"metadata":{"interchange_format_version":"5"},"data":[]}`,
		"short genesis":           strings.Replace(valid, testGenesis.String(), "0x1234", 1),
		"genesis without 0x":      strings.Replace(valid, testGenesis.String(), hexOf(testGenesis[:])+"00", 1),
		"missing data":            `{"metadata":{"interchange_format_version":"5","genesis_hash":"` + testGenesis.String() + `"}}`,
		"null data":               `{"metadata":{"interchange_format_version":"5","genesis_hash":"` + testGenesis.String() + `"},"data":null}`,
		"missing pubkey":          strings.Replace(valid, `"pubkey":"0x`+hexOf(pubOf(0))+`",`, ``, 1),
		"bad pubkey":              strings.Replace(valid, hexOf(pubOf(0)), "zz"+hexOf(pubOf(0))[2:], 1),
		"missing signed_votes":    strings.Replace(valid, `,"signed_votes":[{"source_number":"1","target_number":"2"}]`, ``, 1),
		"number as JSON number":   strings.Replace(valid, `"source_number":"1"`, `"source_number":1`, 1),
		"negative number":         strings.Replace(valid, `"source_number":"1"`, `"source_number":"-1"`, 1),
		"leading zero":            strings.Replace(valid, `"target_number":"2"`, `"target_number":"02"`, 1),
		"empty number":            strings.Replace(valid, `"target_number":"2"`, `"target_number":""`, 1),
		"missing target":          strings.Replace(valid, `,"target_number":"2"`, ``, 1),
		"overflow":                strings.Replace(valid, `"target_number":"2"`, `"target_number":"18446744073709551616"`, 1),
		"source not below target": strings.Replace(valid, `"source_number":"1"`, `"source_number":"2"`, 1),
		"bad signing root":        strings.Replace(valid, `"target_number":"2"`, `"target_number":"2","signing_root":"0x12"`, 1),
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseInterchange([]byte(in))
			require.ErrorIs(t, err, ErrInterchange)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestImportSignerRecords(t *testing.T) {
	fs := vfs.NewMem()
	core, logs := observer.New(zapcore.InfoLevel)
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	last := signed(linkVote(9, 0), 0)
	require.NoError(t, db.StoreSignerRecord(bg, checkpoint.SignerRecord{PublicKey: pubOf(0), Genesis: testGenesis, Last: &last}))
	parse := func(s string) ParsedInterchange {
		doc, err := ParseInterchange([]byte(s))
		require.NoError(t, err)
		return doc
	}
	entry := func(pub ed25519.PublicKey, src, tgt uint64) string {
		return fmt.Sprintf(`{"pubkey":"0x%s","signed_votes":[{"source_number":"%d","target_number":"%d"}]}`, hexOf(pub), src, tgt)
	}
	file := func(entries ...string) string {
		return `{"metadata":{"interchange_format_version":"5","genesis_hash":"` + testGenesis.String() + `"},"data":[` + strings.Join(entries, ",") + `]}`
	}

	// Merge of two files: the maximum of each.
	byKey := func(ks []ImportedKey) map[string]ImportedKey {
		m := map[string]ImportedKey{}
		for _, k := range ks {
			m[string(k.PublicKey)] = k
		}
		return m
	}
	got, err := db.ImportSignerRecords(bg, parse(file(entry(pubOf(0), 20, 25), entry(pubOf(1), 3, 4))))
	require.NoError(t, err)
	require.Len(t, got, 2)
	k0, k1 := byKey(got)[string(pubOf(0))], byKey(got)[string(pubOf(1))]
	require.True(t, k0.Existed)
	require.Equal(t, uint64(9), k0.Before.Target)
	require.Equal(t, uint64(25), k0.After.Target)
	require.False(t, k1.Existed)
	got, err = db.ImportSignerRecords(bg, parse(file(entry(pubOf(0), 22, 23), entry(pubOf(1), 5, 9))))
	require.NoError(t, err)
	k0, k1 = byKey(got)[string(pubOf(0))], byKey(got)[string(pubOf(1))]
	require.Len(t, logs.FilterMessage("Imported signer record").All(), 4, "one line per raised key and import")
	require.Equal(t, SignerWatermark{PublicKey: pubOf(0), Target: 25, Source: 22}, k0.After)
	require.Equal(t, SignerWatermark{PublicKey: pubOf(1), Target: 9, Source: 5}, k1.After)
	rec, found, err := db.LoadSignerRecord(bg, pubOf(0))
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, &last, rec.Last, "the last vote is kept")
	require.Equal(t, uint64(25), rec.MinTarget)
	require.Equal(t, uint64(22), rec.MinSource)

	// Idempotent and never lowering: nothing is written.
	_, seq, _ := readHWMFile(t, fs)
	for _, doc := range []string{file(entry(pubOf(0), 22, 23), entry(pubOf(1), 5, 9)), file(entry(pubOf(0), 1, 2))} {
		got, err = db.ImportSignerRecords(bg, parse(doc))
		require.NoError(t, err)
		for _, k := range got {
			require.False(t, k.Changed())
		}
	}
	_, seq2, _ := readHWMFile(t, fs)
	require.Equal(t, seq, seq2, "a no-op import writes nothing")
	st, _, _ := readHWMFile(t, fs)
	require.Equal(t, sortedWatermarks([]SignerWatermark{{PublicKey: pubOf(0), Target: 25, Source: 22}, {PublicKey: pubOf(1), Target: 9, Source: 5}}),
		st.signers, "the import raised the high-water mark")

	// Another chain: refused, nothing written.
	other := parse(strings.Replace(file(entry(pubOf(2), 50, 60)), testGenesis.String(), checkpoint.HashOf([]byte("x")).String(), 1))
	_, err = db.ImportSignerRecords(bg, other)
	require.ErrorIs(t, err, ErrWrongChain)
	_, found, err = db.LoadSignerRecord(bg, pubOf(2))
	require.NoError(t, err)
	require.False(t, found)

	// Round trip: export, import into a fresh database, export again.
	doc, _, err := db.ExportSignerRecords(bg)
	require.NoError(t, err)
	fresh := openAt(t, vfs.NewMem(), "db")
	_, err = fresh.ImportSignerRecords(bg, parse(string(doc)))
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		a, _, err := db.LoadSignerRecord(bg, pubOf(i))
		require.NoError(t, err)
		b, found, err := fresh.LoadSignerRecord(bg, pubOf(i))
		require.NoError(t, err)
		require.True(t, found)
		at, as, _ := effective(a)
		bt, bs, _ := effective(b)
		require.Equal(t, [2]uint64{at, as}, [2]uint64{bt, bs})
		s := finality.NewSafeSigner(fresh, finality.NewKeySigner(testKeys[i]), checkpoint.ValidatorIndex(i), testGenesis)
		_, err = s.SignVote(bg, checkpoint.Vote{Genesis: testGenesis, SetID: 1, Source: cp(0), Target: cp(at)})
		require.ErrorIs(t, err, checkpoint.ErrSlashable)
		_, err = s.SignVote(bg, checkpoint.Vote{Genesis: testGenesis, SetID: 1, Source: cp(as), Target: cp(at + 1)})
		require.NoError(t, err)
	}
}

func sortedWatermarks(ws []SignerWatermark) []SignerWatermark {
	out := slices.Clone(ws)
	slices.SortFunc(out, func(a, b SignerWatermark) int { return bytes.Compare(a.PublicKey, b.PublicKey) })
	return out
}
