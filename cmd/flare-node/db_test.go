package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// fixture is a base path with the databases of chain "local" (alice, bob,
// charlie, dave; quorum 3) written with the real packages:
//
//	checkpoint 1: certificate 0->1 by 0,1,2        (finalized)
//	checkpoint 2: certificate 1->2 by 0,1,2,3      (justified)
//	checkpoint 3: votes 2->3 by 0 and 1            (pre-commitment, below quorum)
//	signer records of alice (last vote 2->3) and bob
type fixture struct {
	base    string
	cfg     config.Config
	genesis checkpoint.Hash
	cps     []checkpoint.Checkpoint // index = number
	records []checkpoint.SignerRecord
	keys    []ed25519.PrivateKey
}

// cpAt returns the fixture's checkpoint n.
func (f *fixture) cpAt(n uint64) checkpoint.Checkpoint {
	if n == 0 {
		return checkpoint.Checkpoint{Number: 0, Hash: f.genesis}
	}
	return checkpoint.Checkpoint{Number: n, Hash: checkpoint.HashOf([]byte("checkpoint"), []byte{byte(n)})}
}

// sign signs the link n-1 -> n as validator i.
func (f *fixture) sign(n uint64, i int) checkpoint.SignedVote {
	v := checkpoint.Vote{Genesis: f.genesis, SetID: f.cfg.Spec.SetID, Source: f.cpAt(n - 1), Target: f.cpAt(n)}
	sv := checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i)}
	copy(sv.Signature[:], ed25519.Sign(f.keys[i], v.SigningBytes()))
	return sv
}

func (f *fixture) certify(t testing.TB, n uint64, signers ...int) checkpoint.Certificate {
	var votes []checkpoint.SignedVote
	for _, i := range signers {
		votes = append(votes, f.sign(n, i))
	}
	c, err := checkpoint.NewCertificate(votes)
	require.NoError(t, err)
	return c
}

// open opens the fixture's checkpoint database for writing (closed at test
// end unless closed before).
func (f *fixture) open(t testing.TB) *checkpointdb.CheckpointDB {
	t.Helper()
	db, err := checkpointdb.Open(f.cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: f.genesis})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newFixture(t testing.TB, base string) *fixture {
	t.Helper()
	spec, err := chainspec.Builtin("local")
	require.NoError(t, err)
	f := &fixture{base: base, cfg: config.Config{BasePath: base, Spec: spec}, genesis: genesisOf(spec)}

	chain, err := asf.OpenChain(f.cfg.ChainDBPath(), spec, asf.ChainOptions{})
	require.NoError(t, err)
	require.NoError(t, chain.Close())

	db, err := checkpointdb.Open(f.cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: f.genesis})
	require.NoError(t, err)
	ctx := context.Background()
	f.keys = make([]ed25519.PrivateKey, 4)
	for i, n := range []string{"alice", "bob", "charlie", "dave"} {
		f.keys[i], err = chainspec.DevKey(n)
		require.NoError(t, err)
	}
	for n := uint64(0); n <= 3; n++ {
		f.cps = append(f.cps, f.cpAt(n))
	}
	require.NoError(t, db.StoreCertificate(ctx, f.certify(t, 1, 0, 1, 2), &f.cps[1], nil))
	require.NoError(t, db.StoreCertificate(ctx, f.certify(t, 2, 0, 1, 2, 3), &f.cps[2], &f.cps[1]))
	require.NoError(t, db.StoreVote(ctx, f.sign(3, 0)))
	require.NoError(t, db.StoreVote(ctx, f.sign(3, 1)))
	last := f.sign(3, 0)
	f.records = []checkpoint.SignerRecord{
		{PublicKey: f.keys[0].Public().(ed25519.PublicKey), Genesis: f.genesis, Last: &last},
		{PublicKey: f.keys[1].Public().(ed25519.PublicKey), Genesis: f.genesis, MinSource: 1, MinTarget: 2},
	}
	for _, r := range f.records {
		require.NoError(t, db.StoreSignerRecord(ctx, r))
	}
	require.NoError(t, db.Flush(ctx))
	require.NoError(t, db.Close())
	return f
}

func TestCheckpointsListAndShow(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}

	t.Run("list text", func(t *testing.T) {
		r := s.run("", nil, append([]string{"checkpoints", "list"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Empty(t, r.stderr)
		require.Contains(t, r.stdout, "Justified:    2 ("+f.cps[2].Hash.String()+")")
		require.Contains(t, r.stdout, "Finalized:    1 ("+f.cps[1].Hash.String()+")")
		require.Contains(t, r.stdout, "Authorities:  4 (quorum 3)")
		require.Contains(t, r.stdout, "genesis "+f.genesis.String())
		rows := tableRows(r.stdout, "CHECKPOINT")
		require.Equal(t, [][]string{
			{"1", "4", "finality", "3/4", "yes", f.cps[1].Hash.String(), "0,1,2"},
			{"2", "8", "commitment", "4/4", "yes", f.cps[2].Hash.String(), "0,1,2,3"},
			{"3", "12", "pre-commitment", "2/4", "-", f.cps[3].Hash.String(), "0,1"},
		}, rows)
	})

	t.Run("list limit", func(t *testing.T) {
		r := s.run("", nil, append([]string{"checkpoints", "list", "--limit", "2"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		rows := tableRows(r.stdout, "CHECKPOINT")
		require.Len(t, rows, 2)
		require.Equal(t, "2", rows[0][0])
		require.Equal(t, "3", rows[1][0])
	})

	t.Run("list json", func(t *testing.T) {
		r := s.run("", nil, append([]string{"checkpoints", "list", "--json"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var sum summaryJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum))
		require.Equal(t, "local", sum.Chain)
		require.Equal(t, f.genesis.String(), sum.Genesis)
		require.Equal(t, 3, sum.Quorum)
		require.Equal(t, &pointJSON{Number: 2, Hash: f.cps[2].Hash.String()}, sum.Justified)
		require.Equal(t, &pointJSON{Number: 1, Hash: f.cps[1].Hash.String()}, sum.Finalized)
		require.Len(t, sum.Checkpoints, 3)
		c1 := sum.Checkpoints[0]
		require.True(t, c1.Finalized)
		require.True(t, c1.Justified)
		require.Equal(t, []uint32{0, 1, 2}, c1.Signers)
		require.Equal(t, &certificateJSON{Source: point(f.cps[0]), Target: point(f.cps[1]), Signers: []uint32{0, 1, 2}}, c1.Certificate)
		c3 := sum.Checkpoints[2]
		require.False(t, c3.Justified)
		require.Equal(t, "pre-commitment", c3.Level)
		require.Equal(t, 2, c3.Weight)
		require.Nil(t, c3.Certificate)
	})

	t.Run("show text", func(t *testing.T) {
		r := s.run("", nil, append([]string{"checkpoints", "show", "2"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "Checkpoint:   2 (block 8)")
		require.Contains(t, r.stdout, "Level:        commitment")
		require.Contains(t, r.stdout, "Hash:         "+f.cps[2].Hash.String())
		require.Contains(t, r.stdout, "Weight:       4 of 4 validators (quorum 3)")
		require.Contains(t, r.stdout, "Signers:      0 (alice), 1 (bob), 2 (charlie), 3 (dave)")
		require.Contains(t, r.stdout, "Certificate:  1/"+f.cps[1].Hash.String()+" -> 2/"+f.cps[2].Hash.String())
		require.Contains(t, r.stdout, "Votes:        4")
	})

	t.Run("show json", func(t *testing.T) {
		r := s.run("", nil, append([]string{"checkpoints", "show", "3", "--json"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var cj checkpointJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &cj))
		require.Equal(t, uint64(3), cj.Number)
		require.Equal(t, "pre-commitment", cj.Level)
		require.Len(t, cj.Votes, 2)
		require.Equal(t, "alice", cj.Votes[0].Name)
		require.Equal(t, point(f.cps[2]), cj.Votes[1].Source)
		require.Equal(t, point(f.cps[3]), cj.Votes[1].Target)
	})

	t.Run("show the signer records, the high-water mark and halts", func(t *testing.T) {
		r := s.run("", nil, append([]string{"checkpoints", "show", "3"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		alice, bob := f.records[0].PublicKey, f.records[1].PublicKey
		require.Contains(t, r.stdout, "Signer records: 2")
		require.Contains(t, r.stdout, fmt.Sprintf("0x%x (validator 0 alice)\n    last vote:  2/%s -> 3/%s\n    next vote:  target above 3, source at least 2", []byte(alice), f.cps[2].Hash, f.cps[3].Hash))
		require.Contains(t, r.stdout, fmt.Sprintf("0x%x (validator 1 bob)\n    last vote:  none stored\n    next vote:  target above 2, source at least 1", []byte(bob)))
		require.Contains(t, r.stdout, "High-water:   finalized 1 ("+f.cps[1].Hash.String()+"), "+checkpointdb.HWMPath(f.cfg.CheckpointDBPath()))
		require.Contains(t, r.stdout, "Halts:        none")

		r = s.run("", nil, append([]string{"checkpoints", "show", "3", "--json"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var sj showJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &sj))
		require.Len(t, sj.SignerRecords, 2)
		for _, rec := range sj.SignerRecords {
			if rec.Name == "alice" {
				require.Equal(t, point(f.cps[3]), rec.LastVote.Target)
				require.Equal(t, uint64(3), rec.NextTarget)
			}
		}
		require.Equal(t, []haltJSON{}, sj.Halts)
		require.Equal(t, uint64(1), sj.HighWaterMark.Finalized.Number)
	})

	t.Run("show genesis", func(t *testing.T) {
		r := s.run("", nil, append([]string{"checkpoints", "show", "0"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "Level:        finality")
		require.Contains(t, r.stdout, "Hash:         "+f.genesis.String())
	})

	for _, n := range []string{"4", "9", "9999", "18446744073709551615"} {
		t.Run("show "+n+" above everything known", func(t *testing.T) {
			r := s.run("", nil, append([]string{"checkpoints", "show", n}, loc...)...)
			requireUsageError(t, r, "checkpoint "+n+" is above every checkpoint the database at "+f.cfg.CheckpointDBPath()+" knows (highest: 3, finalized: 1)")
		})
	}

	t.Run("wrong chain is refused", func(t *testing.T) {
		// The same base path holds no database for chain dev.
		r := s.run("", nil, "checkpoints", "list", "--chain", "dev", "--base-path", f.base)
		requireUsageError(t, r, "no checkpoint database")
	})

	t.Run("read-only: nothing changes", func(t *testing.T) {
		db, err := checkpointdb.Open(f.cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: f.genesis, ReadOnly: true})
		require.NoError(t, err)
		j, fin, err := db.Pointers(context.Background())
		require.NoError(t, err)
		require.NoError(t, db.Close())
		require.Equal(t, f.cps[2], *j)
		require.Equal(t, f.cps[1], *fin)
	})
}

// tableRows returns the whitespace-split rows below the header line that
// starts with header.
func tableRows(out, header string) [][]string {
	var rows [][]string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, header):
			in = true
		case in && strings.TrimSpace(l) != "":
			rows = append(rows, strings.Fields(l))
		}
	}
	return rows
}

func TestPurgeChain(t *testing.T) {
	tests := []struct {
		name   string
		stdin  string
		args   []string
		purged bool
	}{
		{name: "answer n keeps everything", stdin: "n\n"},
		{name: "empty answer keeps everything", stdin: "\n"},
		{name: "no stdin keeps everything", stdin: ""},
		{name: "answer y purges", stdin: "y\n", purged: true},
		{name: "answer YES purges", stdin: "YES\n", purged: true},
		{name: "-y purges without asking", args: []string{"-y"}, purged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			f := newFixture(t, s.path("base"))
			before := s.listing()
			r := s.run(tt.stdin, nil, append([]string{"purge-chain", "--chain", "local", "--base-path", f.base}, tt.args...)...)
			if tt.purged {
				require.Equal(t, 0, r.code, r.stderr)
				require.Empty(t, r.stderr)
			} else {
				// Declining is not a success: exit 2, one Error line.
				require.Equal(t, 2, r.code)
				require.Equal(t, "Error: aborted: nothing was deleted (answer y, or pass -y)\n", r.stderr)
			}
			require.Contains(t, r.stdout, "WARNING")
			require.Contains(t, r.stdout, "double signing")
			if len(tt.args) == 0 {
				require.Contains(t, r.stdout, "Are you sure? [y/N]")
			} else {
				require.NotContains(t, r.stdout, "Are you sure")
			}

			db, err := checkpointdb.Open(f.cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: f.genesis, ReadOnly: true})
			require.NoError(t, err)
			defer db.Close()
			ctx := context.Background()
			recs, err := db.SignerRecords(ctx)
			require.NoError(t, err)
			require.Len(t, recs, 2, "signer records are always kept")
			j, fin, err := db.Pointers(ctx)
			require.NoError(t, err)
			_, chainErr := os.Stat(f.cfg.ChainDBPath())
			backups, err := filepath.Glob(filepath.Join(f.cfg.ChainDir(), "signer-backup-*.json"))
			require.NoError(t, err)

			if !tt.purged {
				require.NoError(t, chainErr)
				require.NotNil(t, j)
				require.NotNil(t, fin)
				require.Empty(t, backups)
				require.Equal(t, before, s.listing())
				return
			}
			require.True(t, os.IsNotExist(chainErr), "chain database deleted")
			require.Nil(t, j)
			require.Nil(t, fin)
			certs, err := db.Certificates(ctx, 0, 100, 0)
			require.NoError(t, err)
			require.Empty(t, certs)
			votes, err := db.Votes(ctx, 3)
			require.NoError(t, err)
			require.Empty(t, votes)

			// the backup is the interchange export of the records
			require.Len(t, backups, 1)
			require.Contains(t, r.stdout, backups[0])
			fi, err := os.Stat(backups[0])
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			data, err := os.ReadFile(backups[0])
			require.NoError(t, err)
			want, err := checkpointdb.ExportSignerRecordsJSON(f.records, f.genesis)
			require.NoError(t, err)
			require.JSONEq(t, string(want), string(data))
			var doc checkpointdb.Interchange
			require.NoError(t, json.Unmarshal(data, &doc))
			require.Len(t, doc.Data, 2)
			require.Equal(t, f.genesis.String(), doc.Metadata.GenesisHash)
		})
	}

	t.Run("nothing to purge", func(t *testing.T) {
		s := newSandbox(t)
		before := s.listing()
		r := s.run("", nil, "purge-chain", "-y", "--chain", "local", "--base-path", s.path("empty"))
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "Nothing to purge")
		require.Equal(t, before, s.listing())
	})

	t.Run("--dev purges the dev chain only", func(t *testing.T) {
		s := newSandbox(t)
		f := newFixture(t, s.path("xdg", "flare-node")) // the default base path
		r := s.run("", nil, "purge-chain", "-y", "--dev")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "Nothing to purge")
		_, err := os.Stat(f.cfg.ChainDBPath())
		require.NoError(t, err, "chain local untouched")
	})
}

// TestCheckpointsShowPruned: a number below the prune base exits 2.
func TestCheckpointsShowPruned(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	db := f.open(t)
	ctx := context.Background()
	for n := uint64(3); n <= 8; n++ {
		fin := f.cpAt(n - 1)
		require.NoError(t, db.StoreCertificate(ctx, f.certify(t, n, 0, 1, 2), ptrCp(f.cpAt(n)), &fin))
	}
	_, err := db.Prune(ctx, 3) // finalized 7: keeps 5..7
	require.NoError(t, err)
	require.NoError(t, db.Close())
	loc := []string{"--chain", "local", "--base-path", f.base}
	for _, n := range []string{"1", "4"} {
		r := s.run("", nil, append([]string{"checkpoints", "show", n}, loc...)...)
		requireUsageError(t, r, "checkpoint "+n+" was pruned: the database at "+f.cfg.CheckpointDBPath()+" keeps checkpoints from 5 (finalized: 7)")
	}
	r := s.run("", nil, append([]string{"checkpoints", "show", "5"}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "Level:        finality")
	require.Contains(t, r.stdout, "Hash:         "+f.cpAt(5).Hash.String())
}

func ptrCp(c checkpoint.Checkpoint) *checkpoint.Checkpoint { return &c }

// holdLock opens the fixture's checkpoint database in this process, as a
// running node would hold it, until the returned function is called.
func holdLock(t *testing.T, f *fixture) func() {
	db := f.open(t)
	return func() { require.NoError(t, db.Close()) }
}

func TestCheckpointsHaltsAndClearHalt(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}

	t.Run("nothing to clear", func(t *testing.T) {
		before := s.listing()
		r := s.run("", nil, append([]string{"checkpoints", "clear-halt", "-y"}, loc...)...)
		requireUsageError(t, r, "no active halt in the checkpoint database at "+f.cfg.CheckpointDBPath()+": nothing to clear")
		require.Equal(t, before, s.listing())
	})
	t.Run("no database", func(t *testing.T) {
		r := s.run("", nil, "checkpoints", "clear-halt", "-y", "--chain", "local", "--base-path", s.path("empty"))
		requireUsageError(t, r, "no checkpoint database")
		_, err := os.Stat(s.path("empty"))
		require.True(t, os.IsNotExist(err), "nothing created")
	})

	db := f.open(t)
	cert := f.certify(t, 2, 0, 1, 2)
	cert.Target.Hash[0] ^= 1 // a conflicting certificate for checkpoint 2
	ev := checkpoint.Evidence{Kind: checkpoint.EvidenceConflictingFinality, Certificate: &cert, Checkpoint: 2}
	own := f.sign(3, 0)
	halts := []checkpoint.Halt{
		{Reason: checkpoint.HaltConflictingFinality, Checkpoint: 2, Detail: "certificate conflicts with finalized 1", Evidence: &ev},
		{Reason: checkpoint.HaltDoppelganger, Checkpoint: 3, Detail: "our key signed elsewhere", Vote: &own},
	}
	for _, h := range halts {
		require.NoError(t, db.StoreHalt(context.Background(), h))
	}
	require.NoError(t, db.Close())

	t.Run("list and show print active halts", func(t *testing.T) {
		for _, args := range [][]string{{"checkpoints", "list"}, {"checkpoints", "show", "2"}} {
			r := s.run("", nil, append(args, loc...)...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Contains(t, r.stdout, "Halts:        2 active: this validator does not vote until 'flare-node checkpoints clear-halt'")
			require.Contains(t, r.stdout, "  conflicting-finality at checkpoint 2: certificate conflicts with finalized 1\n    evidence: conflicting-finality: certificate 1/"+f.cps[1].Hash.String()+" -> 2/"+cert.Target.Hash.String()+" signed by validators 0,1,2")
			require.Contains(t, r.stdout, "  doppelganger at checkpoint 3: our key signed elsewhere\n    vote:     "+own.Source.String()+" -> "+own.Target.String()+" signed as validator 0")
		}
		r := s.run("", nil, append([]string{"checkpoints", "list", "--json"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var sum summaryJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum))
		require.Len(t, sum.Halts, 2)
		require.Equal(t, "conflicting-finality", sum.Halts[0].Reason)
		require.Equal(t, "doppelganger", sum.Halts[1].Reason)
	})

	t.Run("refused while the node runs", func(t *testing.T) {
		release := holdLock(t, f)
		defer release()
		r := s.run("y\n", nil, append([]string{"checkpoints", "clear-halt"}, loc...)...)
		requireUsageError(t, r, "in use by another process")
	})

	for _, answer := range []string{"n\n", "\n", ""} {
		t.Run(fmt.Sprintf("answer %q aborts", answer), func(t *testing.T) {
			before := s.listing()
			r := s.run(answer, nil, append([]string{"checkpoints", "clear-halt"}, loc...)...)
			require.Equal(t, 2, r.code)
			require.Equal(t, "Error: aborted: no halt was cleared\n", r.stderr)
			require.Contains(t, r.stdout, "conflicting-finality at checkpoint 2")
			require.Contains(t, r.stdout, "Clear 2 halt(s)? The validator votes again at its next start unless stored evidence noted above raises the alarm again. [y/N]: ")
			require.Contains(t, r.stdout, "Note: the foreign vote "+own.Source.String()+" -> "+own.Target.String()+" signed as validator 0 of the doppelganger halt at checkpoint 3 stays stored")
			require.Contains(t, r.stdout, "Note: the conflicting-finality halt at checkpoint 2 halts again at the next start")
			require.Equal(t, before, s.listing())
			ro, err := checkpointdb.Open(f.cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: f.genesis, ReadOnly: true})
			require.NoError(t, err)
			got, err := ro.Halts(context.Background())
			require.NoError(t, err)
			require.Len(t, got, 2)
			require.NoError(t, ro.Close())
		})
	}

	t.Run("confirmed", func(t *testing.T) {
		r := s.run("y\n", nil, append([]string{"checkpoints", "clear-halt"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "Cleared 2 halt(s) in "+f.cfg.CheckpointDBPath())
		r = s.run("", nil, append([]string{"checkpoints", "list"}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "Halts:        none")
		r = s.run("", nil, append([]string{"checkpoints", "clear-halt", "-y"}, loc...)...)
		requireUsageError(t, r, "nothing to clear")
	})
}
