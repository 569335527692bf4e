package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// watermarks reads the effective watermarks (target, source) of every key
// of the checkpoint database of cfg.
func watermarks(t *testing.T, cfg config.Config, genesis checkpoint.Hash) map[string][2]uint64 {
	t.Helper()
	db, err := checkpointdb.Open(cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesis, ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	recs, err := db.SignerRecords(context.Background())
	require.NoError(t, err)
	out := map[string][2]uint64{}
	for _, r := range recs {
		tgt, src := r.MinTarget, r.MinSource
		if r.Last != nil {
			tgt, src = max(tgt, r.Last.Target.Number), max(src, r.Last.Source.Number)
		}
		out[fmt.Sprintf("0x%x", []byte(r.PublicKey))] = [2]uint64{tgt, src}
	}
	return out
}

// removeCheckpointDB deletes the checkpoint database and its high-water
// mark: the record is lost entirely.
func removeCheckpointDB(t *testing.T, cfg config.Config) {
	t.Helper()
	require.NoError(t, os.RemoveAll(cfg.CheckpointDBPath()))
	require.NoError(t, os.Remove(checkpointdb.HWMPath(cfg.CheckpointDBPath())))
}

func interchangeDoc(genesis checkpoint.Hash, entries ...string) string {
	return `{"metadata":{"interchange_format_version":"5","genesis_hash":"` + genesis.String() + `"},"data":[` + strings.Join(entries, ",") + `]}`
}

func interchangeKey(pub ed25519.PublicKey, votes ...[2]uint64) string {
	var vs []string
	for _, v := range votes {
		vs = append(vs, fmt.Sprintf(`{"source_number":"%d","target_number":"%d"}`, v[0], v[1]))
	}
	return fmt.Sprintf(`{"pubkey":"0x%x","signed_votes":[%s]}`, []byte(pub), strings.Join(vs, ","))
}

func TestSignerExportImportRoundTrip(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}
	want := watermarks(t, f.cfg, f.genesis)
	require.Len(t, want, 2)

	out := s.path("alice-bob.json")
	r := s.run("", nil, append([]string{"signer", "export", "--out", out}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	require.Contains(t, r.stdout, "Exported 2 signer record(s) of chain local (genesis "+f.genesis.String()+") to "+out)
	fi, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	doc, err := checkpointdb.ExportSignerRecordsJSON(f.records, f.genesis)
	require.NoError(t, err)
	require.JSONEq(t, string(doc), string(data))

	// The record is lost (database and high-water mark), then imported.
	removeCheckpointDB(t, f.cfg)
	r = s.run("", nil, append([]string{"signer", "import", out}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	require.Contains(t, r.stdout, "(alice, validator 0): target 0 -> 3, source 0 -> 2")
	require.Contains(t, r.stdout, "(bob, validator 1): target 0 -> 2, source 0 -> 1")
	require.Contains(t, r.stdout, "2 key(s), 2 raised, 0 unchanged")
	require.Equal(t, want, watermarks(t, f.cfg, f.genesis))
	_, err = os.Stat(checkpointdb.HWMPath(f.cfg.CheckpointDBPath()))
	require.NoError(t, err, "the import created the high-water mark")

	// A validator resumed from the imported record never signs a conflict.
	db := f.open(t)
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(f.keys[0]), 0, f.genesis)
	_, err = signer.SignVote(context.Background(), checkpoint.Vote{Genesis: f.genesis, SetID: f.cfg.Spec.SetID, Source: f.cpAt(0), Target: f.cpAt(3)})
	require.ErrorIs(t, err, checkpoint.ErrSlashable)
	_, err = signer.SignVote(context.Background(), checkpoint.Vote{Genesis: f.genesis, SetID: f.cfg.Spec.SetID, Source: f.cpAt(2), Target: f.cpAt(4)})
	require.NoError(t, err)
	require.NoError(t, db.Close())

	// Export again: the same watermarks (now as watermark entries).
	again := s.path("again.json")
	r = s.run("", nil, append([]string{"signer", "export", "-o", again}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	removeCheckpointDB(t, f.cfg)
	r = s.run("", nil, append([]string{"signer", "import", again}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	got := watermarks(t, f.cfg, f.genesis)
	alice := fmt.Sprintf("0x%x", []byte(f.records[0].PublicKey))
	require.Equal(t, [2]uint64{4, 2}, got[alice], "the vote signed after the first import is in the second export")
}

func TestSignerImportMergeIdempotenceAndLowering(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}
	alice, bob := f.records[0].PublicKey, f.records[1].PublicKey
	carol := f.keys[2].Public().(ed25519.PublicKey)
	a := s.write("a.json", interchangeDoc(f.genesis, interchangeKey(alice, [2]uint64{9, 10}), interchangeKey(carol, [2]uint64{1, 5})), 0o600)
	b := s.write("b.json", interchangeDoc(f.genesis, interchangeKey(alice, [2]uint64{11, 12}, [2]uint64{3, 4}), interchangeKey(carol, [2]uint64{4, 5})), 0o600)

	for _, file := range []string{a, b} {
		r := s.run("", nil, append([]string{"signer", "import", file}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
	}
	got := watermarks(t, f.cfg, f.genesis)
	hex := func(p ed25519.PublicKey) string { return fmt.Sprintf("0x%x", []byte(p)) }
	require.Equal(t, [2]uint64{12, 11}, got[hex(alice)], "merge: the maximum source and target")
	require.Equal(t, [2]uint64{5, 4}, got[hex(carol)])
	require.Equal(t, [2]uint64{2, 1}, got[hex(bob)], "a key not in the files is untouched")

	hwm := checkpointdb.HWMPath(f.cfg.CheckpointDBPath())
	hwmBefore, err := os.ReadFile(hwm)
	require.NoError(t, err)
	// Importing again, or a file with lower numbers, changes nothing.
	lower := s.write("lower.json", interchangeDoc(f.genesis, interchangeKey(alice, [2]uint64{1, 2}), interchangeKey(bob, [2]uint64{0, 1})), 0o600)
	for _, file := range []string{a, b, lower} {
		r := s.run("", nil, append([]string{"signer", "import", file}, loc...)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "0 raised")
		require.NotContains(t, r.stdout, "->")
	}
	require.Equal(t, got, watermarks(t, f.cfg, f.genesis))
	hwmAfter, err := os.ReadFile(hwm)
	require.NoError(t, err)
	require.Equal(t, hwmBefore, hwmAfter, "a no-op import writes nothing")
}

// TestSignerImportDocumentedExample imports the example of docs/signer.md
// verbatim into a dev chain base path that has no database yet.
func TestSignerImportDocumentedExample(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", "signer.md"))
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(md, -1)
	require.Len(t, blocks, 1, "docs/signer.md has one JSON example")
	s := newSandbox(t)
	file := s.write("example.json", string(blocks[0][1]), 0o600)
	base := s.path("dev")
	r := s.run("", nil, "signer", "import", file, "--dev", "--base-path", base)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "(alice, validator 0): target 0 -> 45, source 0 -> 43")

	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	cfg := config.Config{BasePath: base, Spec: spec}
	alice, err := chainspec.DevKey("alice")
	require.NoError(t, err)
	db, err := checkpointdb.Open(cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesisOf(spec)})
	require.NoError(t, err)
	defer db.Close()
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(alice), 0, genesisOf(spec))
	vote := func(src, tgt uint64) checkpoint.Vote {
		return checkpoint.Vote{Genesis: genesisOf(spec), SetID: spec.SetID, Source: checkpoint.Checkpoint{Number: src}, Target: checkpoint.Checkpoint{Number: tgt}}
	}
	_, err = signer.SignVote(context.Background(), vote(43, 45))
	require.ErrorIs(t, err, checkpoint.ErrSlashable)
	_, err = signer.SignVote(context.Background(), vote(42, 46))
	require.ErrorIs(t, err, checkpoint.ErrSlashable)
	_, err = signer.SignVote(context.Background(), vote(43, 46))
	require.NoError(t, err)
}

func TestSignerImportRefusals(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}
	alice := f.records[0].PublicKey
	good := interchangeDoc(f.genesis, interchangeKey(alice, [2]uint64{50, 60}))
	other := checkpoint.HashOf([]byte("another chain"))

	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"another chain", interchangeDoc(other, interchangeKey(alice, [2]uint64{50, 60})), "is for the chain with genesis " + other.String() + ", not chain local"},
		{"not JSON", `{"metadata": `, "malformed signer-record interchange document"},
		{"unknown field", strings.Replace(good, `"source_number"`, `"source_epoch":"1","source_number"`, 1), `unknown field "source_epoch"`},
		{"number as JSON number", strings.Replace(good, `"source_number":"50"`, `"source_number":50`, 1), "malformed"},
		{"source not below target", strings.Replace(good, `"source_number":"50"`, `"source_number":"60"`, 1), "source 60 not below target 60"},
		{"short key", strings.Replace(good, fmt.Sprintf("0x%x", []byte(alice)), "0x1234", 1), "data[0].pubkey"},
		{"format version", strings.Replace(good, `"5"`, `"4"`, 1), `interchange_format_version "4"`},
		{"empty file", ``, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := s.write("in.json", tc.content, 0o600)
			before := s.listing()
			wm := watermarks(t, f.cfg, f.genesis)
			r := s.run("", nil, append([]string{"signer", "import", file}, loc...)...)
			requireUsageError(t, r, tc.want)
			require.Contains(t, r.stderr, "nothing was imported")
			require.Equal(t, before, s.listing())
			require.Equal(t, wm, watermarks(t, f.cfg, f.genesis))
		})
	}

	t.Run("another chain creates no database", func(t *testing.T) {
		file := s.write("other.json", interchangeDoc(other, interchangeKey(alice, [2]uint64{50, 60})), 0o600)
		r := s.run("", nil, "signer", "import", file, "--chain", "local", "--base-path", s.path("fresh"))
		requireUsageError(t, r, "is for the chain with genesis")
		_, err := os.Stat(s.path("fresh"))
		require.True(t, os.IsNotExist(err))
	})
	t.Run("missing file", func(t *testing.T) {
		r := s.run("", nil, append([]string{"signer", "import", s.path("nope.json")}, loc...)...)
		requireUsageError(t, r, "no such file")
	})
	t.Run("no argument", func(t *testing.T) {
		r := s.run("", nil, append([]string{"signer", "import"}, loc...)...)
		requireUsageError(t, r, "needs one FILE argument")
	})
	t.Run("node running", func(t *testing.T) {
		file := s.write("good.json", good, 0o600)
		release := holdLock(t, f)
		defer release()
		r := s.run("", nil, append([]string{"signer", "import", file}, loc...)...)
		requireUsageError(t, r, "in use by another process")
		require.Contains(t, r.stderr, "signer import needs the node stopped")
	})
	require.Equal(t, [2]uint64{3, 2}, watermarks(t, f.cfg, f.genesis)[fmt.Sprintf("0x%x", []byte(alice))], "no refusal changed alice's record")
}

func TestSignerExportRefusals(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}

	t.Run("missing --out", func(t *testing.T) {
		r := s.run("", nil, append([]string{"signer", "export"}, loc...)...)
		requireUsageError(t, r, "needs --out FILE")
	})
	t.Run("existing file is not overwritten", func(t *testing.T) {
		p := s.write("exists.json", "keep me", 0o600)
		r := s.run("", nil, append([]string{"signer", "export", "--out", p}, loc...)...)
		requireUsageError(t, r, "already exists")
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Equal(t, "keep me", string(data))
	})
	t.Run("missing directory", func(t *testing.T) {
		r := s.run("", nil, append([]string{"signer", "export", "--out", s.path("no", "dir.json")}, loc...)...)
		requireUsageError(t, r, "does not exist")
	})
	t.Run("no database", func(t *testing.T) {
		out := s.path("none.json")
		r := s.run("", nil, "signer", "export", "--out", out, "--chain", "local", "--base-path", s.path("empty"))
		requireUsageError(t, r, "no checkpoint database")
		_, err := os.Stat(out)
		require.True(t, os.IsNotExist(err))
	})
	t.Run("node running", func(t *testing.T) {
		out := s.path("running.json")
		release := holdLock(t, f)
		defer release()
		r := s.run("", nil, append([]string{"signer", "export", "--out", out}, loc...)...)
		requireUsageError(t, r, "in use by another process")
		_, err := os.Stat(out)
		require.True(t, os.IsNotExist(err))
	})
	t.Run("no signer record", func(t *testing.T) {
		// A database with finality but no signer record (a full node).
		s2 := newSandbox(t)
		spec, err := chainspec.Builtin("local")
		require.NoError(t, err)
		cfg := config.Config{BasePath: s2.path("full"), Spec: spec}
		db, err := checkpointdb.Open(cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesisOf(spec)})
		require.NoError(t, err)
		require.NoError(t, db.Close())
		out := s2.path("empty.json")
		r := s2.run("", nil, "signer", "export", "--out", out, "--chain", "local", "--base-path", cfg.BasePath)
		requireUsageError(t, r, "no signer record in the checkpoint database at "+cfg.CheckpointDBPath()+": nothing to export")
		_, err = os.Stat(out)
		require.True(t, os.IsNotExist(err), "no empty file written")
	})
}

// TestPurgeChainBackupImports: the purge-chain backup is an interchange
// file that `signer import` reads back after the database is lost.
func TestPurgeChainBackupImports(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}
	want := watermarks(t, f.cfg, f.genesis)
	r := s.run("", nil, append([]string{"purge-chain", "-y"}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	backups, err := filepath.Glob(filepath.Join(f.cfg.ChainDir(), "signer-backup-*.json"))
	require.NoError(t, err)
	require.Len(t, backups, 1)
	var doc checkpointdb.Interchange
	data, err := os.ReadFile(backups[0])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &doc))

	// Importing into the purged database is a no-op: it kept the records.
	r = s.run("", nil, append([]string{"signer", "import", backups[0]}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "2 key(s), 0 raised, 2 unchanged")
	// After losing everything, the backup brings the watermarks back.
	removeCheckpointDB(t, f.cfg)
	r = s.run("", nil, append([]string{"signer", "import", backups[0]}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, want, watermarks(t, f.cfg, f.genesis))
}

// TestSignerLocationFromEnvironmentAndConfig: the signer commands locate
// the chain like every other command (FLARE_* variables, --config).
func TestSignerLocationFromEnvironmentAndConfig(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	env := []string{"FLARE_CHAIN=local", "FLARE_BASE_PATH=" + f.base}
	out := s.path("env.json")
	r := s.run("", env, "signer", "export", "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	removeCheckpointDB(t, f.cfg)
	cfgFile := s.write("node.toml", fmt.Sprintf("chain = \"local\"\nbase_path = %q\n", f.base), 0o600)
	r = s.run("", nil, "signer", "import", out, "--config", cfgFile)
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, watermarks(t, f.cfg, f.genesis), 2)
}

// treeDigest maps every file below root (relative path) to its mode, size
// and SHA-256: two equal digests mean nothing below root was written.
func treeDigest(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		sum := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(data))
		}
		out[rel] = fmt.Sprintf("%v %d %s", fi.Mode(), fi.Size(), sum)
		return nil
	}))
	return out
}

// TestSignerImportNothingToImport: docs/signer.md, "a file without any vote
// entry → 0, `Nothing to import`, nothing written" — whether the data list
// is empty or its keys have no signed_votes, with or without an existing
// checkpoint database.
func TestSignerImportNothingToImport(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}
	alice, bob := f.records[0].PublicKey, f.records[1].PublicKey
	wm := watermarks(t, f.cfg, f.genesis)
	for _, tc := range []struct{ name, content string }{
		{"empty data", interchangeDoc(f.genesis)},
		{"keys without votes", interchangeDoc(f.genesis, interchangeKey(alice), interchangeKey(bob))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := s.write("empty.json", tc.content, 0o600)
			before, listing := treeDigest(t, f.base), s.listing()
			r := s.run("", nil, append([]string{"signer", "import", file}, loc...)...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Empty(t, r.stderr)
			require.Equal(t, "Nothing to import: "+file+" holds no signed votes\n", r.stdout)
			require.Equal(t, before, treeDigest(t, f.base), "the checkpoint database and its high-water mark are untouched")
			require.Equal(t, listing, s.listing())
			require.Equal(t, wm, watermarks(t, f.cfg, f.genesis))
		})
	}
	t.Run("no database yet", func(t *testing.T) {
		file := s.write("empty.json", interchangeDoc(f.genesis, interchangeKey(alice)), 0o600)
		r := s.run("", nil, "signer", "import", file, "--chain", "local", "--base-path", s.path("fresh"))
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "Nothing to import")
		_, err := os.Stat(s.path("fresh"))
		require.True(t, os.IsNotExist(err), "no database is created for nothing")
	})
}

// TestSignerImportSizeLimit: docs/signer.md, "a UTF-8 JSON document (at most
// 64 MiB)". A valid document padded with spaces to 64 MiB + 1 byte is
// refused (exit 2, one Error line, nothing written); the same document of
// exactly 64 MiB is imported.
func TestSignerImportSizeLimit(t *testing.T) {
	s := newSandbox(t)
	f := newFixture(t, s.path("base"))
	loc := []string{"--chain", "local", "--base-path", f.base}
	alice := fmt.Sprintf("0x%x", []byte(f.records[0].PublicKey))
	doc := interchangeDoc(f.genesis, interchangeKey(f.records[0].PublicKey, [2]uint64{50, 60}))
	require.Equal(t, 64<<20, checkpointdb.MaxInterchangeSize)

	file := s.path("big.json")
	out, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	_, err = out.WriteString(doc)
	require.NoError(t, err)
	pad := []byte(strings.Repeat(" ", 1<<20))
	for n := len(doc); n < checkpointdb.MaxInterchangeSize+1; n += len(pad) {
		_, err = out.Write(pad[:min(len(pad), checkpointdb.MaxInterchangeSize+1-n)])
		require.NoError(t, err)
	}
	require.NoError(t, out.Close())
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.EqualValues(t, 64<<20+1, fi.Size())

	before, listing := treeDigest(t, f.base), s.listing()
	r := s.run("", nil, append([]string{"signer", "import", file}, loc...)...)
	requireUsageError(t, r, fmt.Sprintf("malformed signer-record interchange document: document of %d bytes (at most %d)", 64<<20+1, 64<<20))
	require.Contains(t, r.stderr, "nothing was imported")
	require.Equal(t, before, treeDigest(t, f.base), "nothing written")
	require.Equal(t, listing, s.listing())
	require.Equal(t, [2]uint64{3, 2}, watermarks(t, f.cfg, f.genesis)[alice])

	require.NoError(t, os.Truncate(file, 64<<20))
	r = s.run("", nil, append([]string{"signer", "import", file}, loc...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "(alice, validator 0): target 3 -> 60, source 2 -> 50")
	require.Equal(t, [2]uint64{60, 50}, watermarks(t, f.cfg, f.genesis)[alice])
}
