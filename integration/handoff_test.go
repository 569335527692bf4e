package integration

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/node"
)

var reHandOff = regexp.MustCompile(`^Authority set hand-off: set (\d+) in force after checkpoint (\d+)`)

// authoritiesOf reads GET /authorities of process i.
func (ln *localNet) authoritiesOf(i int) (setID uint64, keys int, err error) {
	body, err := httpGet(ln.t, fmt.Sprintf("http://127.0.0.1:%d/authorities", ln.metrics[i]))
	if err != nil {
		return 0, 0, err
	}
	var doc struct {
		SetID       uint64            `json:"set_id"`
		Authorities []json.RawMessage `json:"authorities"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return 0, 0, err
	}
	return doc.SetID, len(doc.Authorities), nil
}

// TestHandOffsWithTheBinary: four validator processes and eve (a fifth
// key in no set at genesis) on a chain that schedules eve's addition at
// hand-off 4 and alice's removal at hand-off 10. Finality advances through
// both hand-offs (3 of 4, then 4 of 5, then 3 of 4), every process logs the
// hand-offs at the same checkpoints, eve votes, alice stops voting at the
// second, finality continues with alice stopped, and a full node started
// from genesis afterwards reaches the network's finality in the last set.
func TestHandOffsWithTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	spec, err := chainspec.Builtin("local")
	require.NoError(t, err)
	spec.Name, spec.ID, spec.SlotDurationMs, spec.CheckpointInterval = "handoff-local", "handoff_local", 250, 2
	key := func(name string) string {
		k, err := chainspec.DevKey(name)
		require.NoError(t, err)
		return hex.EncodeToString(k.Public().(ed25519.PublicKey))
	}
	raw, err := json.Marshal(spec)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	doc["authority_changes"] = []map[string]any{
		{"set_id": 1, "hand_off": 4, "authorities": []string{key("alice"), key("bob"), key("charlie"), key("dave"), key("eve")}},
		{"set_id": 2, "hand_off": 10, "authorities": []string{key("bob"), key("charlie"), key("dave"), key("eve")}},
	}
	raw, err = json.Marshal(doc)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "handoff-local.json")
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	spec, err = chainspec.Load(path)
	require.NoError(t, err)

	ln := newLocalNetOn(t, path, spec, 2)
	// Process 4 is eve, a validator of the later sets; 5 a late full node.
	ln.names[4], ln.validator[4] = "eve", true
	eve, err := chainspec.DevKey("eve")
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "eve.key")
	require.NoError(t, config.WriteKeyFile(keyFile, eve))
	ln.keyFiles = map[int]string{4: keyFile}
	cfg := config.Default()
	cfg.Chain, cfg.BasePath = path, ln.bases[4]
	require.NoError(t, cfg.Validate())
	require.NoError(t, node.DeclareFreshSignerRecord(&cfg))

	var history []*proc
	for i := range 5 {
		history = append(history, ln.start(i))
	}
	all := []int{0, 1, 2, 3, 4}
	ln.waitFinalized(14, 120*time.Second, all...)
	var handOffs []string
	for _, i := range all {
		id, n, err := ln.authoritiesOf(i)
		require.NoError(t, err)
		require.Equal(t, uint64(2), id, ln.names[i])
		require.Equal(t, 4, n)
		var got []string
		for _, l := range ln.procs[i].all(reHandOff) {
			got = append(got, l.Msg)
		}
		require.Len(t, got, 2, "%s logs both hand-offs", ln.names[i])
		if handOffs == nil {
			handOffs = got
		}
		require.Equal(t, handOffs, got, "%s hands off at the same checkpoints", ln.names[i])
	}
	require.NotEmpty(t, ln.procs[4].all(reOwnVote), "eve votes after her hand-off")

	// Alice (removed) stops; the last set goes on without her.
	ln.stop(0)
	f := ln.maxFinalized(1, 2, 3, 4)
	ln.waitFinalized(f+4, 60*time.Second, 1, 2, 3, 4)

	// A full node from genesis reaches the network's finality in set 2.
	target := ln.maxFinalized(1, 2, 3, 4)
	history = append(history, ln.start(5))
	ln.waitFinalized(target, 90*time.Second, 5)
	id, _, err := ln.authoritiesOf(5)
	require.NoError(t, err)
	require.Equal(t, uint64(2), id)

	for i := range ln.procs {
		if ln.procs[i] != nil {
			ln.stop(i)
		}
	}
	ln.requireAgreement(history)
	for name, votes := range ln.votes {
		requireNoConflicts(t, votes)
		if name == "alice" {
			// Alice's last vote is her set-1 hand-off vote: its target is
			// at most the second hand-off's justified checkpoint.
			last := votes[len(votes)-1]
			var ho uint64
			_, err := fmt.Sscanf(handOffs[1], "Authority set hand-off: set 2 in force after checkpoint %d", &ho)
			require.NoError(t, err)
			require.LessOrEqual(t, last.target, ho, "alice voted after her removal")
		}
	}
}
