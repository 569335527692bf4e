package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/node"
)

var (
	reFinality = regexp.MustCompile(`^FINALITY ADVANCED: checkpoint=\d+`)
	reRestored = regexp.MustCompile(`^Checkpoint state restored successfully: last_finalized=\d+`)
	reOpened   = regexp.MustCompile(`^Checkpoint database opened successfully`)
	reOwnVote  = regexp.MustCompile(`^Voted for checkpoint`)
)

// ownVote is one vote the node reported having signed and released.
type ownVote struct {
	source, target uint64
	hash           string
}

func ownVotes(t *testing.T, p *proc) []ownVote {
	var out []ownVote
	for _, l := range p.all(reOwnVote) {
		// Fields are checkpoints rendered as "N/0xSHORTHASH".
		src, ok1 := l.Fields["source"].(string)
		tgt, ok2 := l.Fields["target"].(string)
		require.True(t, ok1 && ok2, "own-vote log line without source/target fields: %s", l.Raw)
		var v ownVote
		var srcHash string
		_, err := fmt.Sscanf(strings.Replace(src, "/", " ", 1), "%d %s", &v.source, &srcHash)
		require.NoError(t, err, src)
		_, err = fmt.Sscanf(strings.Replace(tgt, "/", " ", 1), "%d %s", &v.target, &v.hash)
		require.NoError(t, err, tgt)
		out = append(out, v)
	}
	return out
}

// requireNoConflicts checks, as an independent observer of every vote the
// node released across all its runs, that no two are slashable: no two
// different votes with one target number and no surround vote.
func requireNoConflicts(t *testing.T, votes []ownVote) {
	t.Helper()
	byTarget := map[uint64]ownVote{}
	for _, v := range votes {
		if prev, ok := byTarget[v.target]; ok {
			require.Equal(t, prev, v, "double vote for target %d", v.target)
		}
		byTarget[v.target] = v
	}
	for _, a := range votes {
		for _, b := range votes {
			surrounds := a.source < b.source && b.target < a.target
			require.False(t, surrounds, "surround vote: %+v surrounds %+v", a, b)
		}
	}
}

// TestDevNodeFinalizesAndRecovers runs `flare-node --dev --enable-asf` as a
// subprocess: it must finalize at least 3 checkpoints, exit 0 on SIGINT,
// restore last_finalized (>= before) on restart and keep finalizing, and do
// the same after kill -9, never releasing a conflicting vote.
func TestDevNodeFinalizesAndRecovers(t *testing.T) {
	base := t.TempDir()
	args := []string{"--dev", "--enable-asf", "--base-path", base, "--port", "0"}
	var votes []ownVote

	// Run 1: fresh start, finalize 3 checkpoints, SIGINT.
	p := startNode(t, "dev#1", args...)
	p.waitLog(reOpened, 0, 30*time.Second)
	var last uint64
	for from := 0; last < 3; {
		l, i := p.waitLog(reFinality, from, 60*time.Second)
		last, from = number(t, l.Msg), i+1
	}
	require.Equal(t, 0, p.stop(syscall.SIGINT, 30*time.Second), "SIGINT must exit 0")
	votes = append(votes, ownVotes(t, p)...)
	require.NotEmpty(t, votes)

	// Run 2: clean restart restores state and keeps finalizing.
	p = startNode(t, "dev#2", args...)
	l, i := p.waitLog(reRestored, 0, 30*time.Second)
	restored := number(t, l.Msg)
	require.GreaterOrEqual(t, restored, last, "restart lost finality")
	l, _ = p.waitLog(reFinality, i, 60*time.Second)
	require.Greater(t, number(t, l.Msg), restored)
	l, _ = p.waitLog(reFinality, p.lineCount(), 60*time.Second)
	last = number(t, l.Msg)

	// kill -9 in the middle of running.
	require.NotEqual(t, 0, p.stop(syscall.SIGKILL, 10*time.Second))
	votes = append(votes, ownVotes(t, p)...)

	// Run 3: restore after the crash, keep finalizing.
	p = startNode(t, "dev#3", args...)
	l, i = p.waitLog(reRestored, 0, 30*time.Second)
	restored = number(t, l.Msg)
	require.GreaterOrEqual(t, restored, last, "kill -9 lost finality that was logged")
	l, _ = p.waitLog(reFinality, i, 60*time.Second)
	require.Greater(t, number(t, l.Msg), restored)
	require.Equal(t, 0, p.stop(syscall.SIGTERM, 30*time.Second), "SIGTERM must exit 0")
	votes = append(votes, ownVotes(t, p)...)

	requireNoConflicts(t, votes)

	// The checkpoint DB, read while the node is stopped: the signer record
	// covers every released vote and the finalized pointer matches.
	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	dbPath := filepath.Join(base, "chains", spec.ID, "db", "checkpoints")
	db, err := checkpointdb.Open(dbPath, checkpointdb.Options{Genesis: node.GenesisHash(spec), ReadOnly: true})
	require.NoError(t, err)
	ctx := context.Background()
	recs, err := db.SignerRecords(ctx)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.NotNil(t, recs[0].Last)
	var maxTarget uint64
	for _, v := range votes {
		maxTarget = max(maxTarget, v.target)
	}
	require.Equal(t, maxTarget, recs[0].Last.Target.Number, "signer record must hold the last released vote")
	_, fin, err := db.Pointers(ctx)
	require.NoError(t, err)
	require.NotNil(t, fin)
	require.GreaterOrEqual(t, fin.Number, restored)
	for _, v := range votes {
		if v.target > fin.Number {
			continue
		}
		stored, err := db.Votes(ctx, v.target)
		require.NoError(t, err)
		found := false
		for _, s := range stored {
			if s.Validator == 0 {
				found = true
				require.Equal(t, v.hash, s.Target.Hash.Short())
			}
		}
		require.True(t, found || v.target+1000 < fin.Number, "own vote for %d missing from the DB", v.target)
	}

	require.NoError(t, db.Close())

	// The operator's view through the CLI.
	out, errOut, code := runCLI(t, "checkpoints", "list", "--chain", "dev", "--base-path", base)
	require.Equal(t, 0, code, "checkpoints list: %s", errOut)
	require.Contains(t, out, "Finalized:")
	require.Regexp(t, `\sfinality\s`, out, "the level column uses the ASF names")
	// The last finalized checkpoint was voted on and certified (the first
	// ones may not be: a fresh signer record listens before its first vote).
	out, errOut, code = runCLI(t, "checkpoints", "show", strconv.FormatUint(fin.Number, 10), "--chain", "dev", "--base-path", base)
	require.Equal(t, 0, code, "checkpoints show: %s", errOut)
	require.Regexp(t, `Level:\s+finality\n`, out)
	require.Contains(t, out, "signed by 0 (alice)")
}
