package checkpointdb

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
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
	lastEntry := InterchangeVote{SourceNumber: "41", SourceHash: cp(41).Hash.String(), TargetNumber: "42", TargetHash: cp(42).Hash.String(), SigningRoot: root}
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
