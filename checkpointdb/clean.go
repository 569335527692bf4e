package checkpointdb

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/crypto/blake2b"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// The clean-shutdown record closes a gap in Pebble's recovery: Pebble treats
// an unreadable record at the end of the WAL or MANIFEST as a write torn by a
// crash and silently drops it (and everything after a damaged MANIFEST
// record), which after disk damage could roll back a synced signer record.
// A crash cannot tear anything once the database was closed cleanly, so
// Close writes the size and BLAKE2b-256 hash of every WAL, MANIFEST, OPTIONS
// and marker file (and the size of every sstable) to CHECKPOINTDB-CLEAN.
// Open compares the files against it and refuses any difference
// (ErrCorrupted), then removes it (synced) before Pebble writes anything, so
// a later crash never leaves a stale record behind. After a crash there is
// no record and Pebble's own checks apply (WAL sync offsets detect damage in
// the middle of a WAL).
const (
	cleanFileName   = "CHECKPOINTDB-CLEAN"
	cleanHeader     = "checkpointdb clean shutdown v1"
	cleanTmpName    = cleanFileName + ".tmp"
	cleanNoHashMark = "-"
)

type fileDigest struct {
	name string
	size int64
	hash string // hex BLAKE2b-256, or cleanNoHashMark for sstables and blob files
}

func (d fileDigest) line() string { return fmt.Sprintf("%s %d %s", d.name, d.size, d.hash) }

// digestDir digests the database files of dir.
func digestDir(fs vfs.FS, dir string) ([]fileDigest, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []fileDigest
	for _, n := range names {
		if n == "LOCK" || strings.HasPrefix(n, cleanFileName) || strings.ContainsAny(n, " \n") {
			continue
		}
		p := fs.PathJoin(dir, n)
		fi, err := fs.Stat(p)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			continue
		}
		d := fileDigest{name: n, size: fi.Size(), hash: cleanNoHashMark}
		if !strings.HasSuffix(n, ".sst") && !strings.HasSuffix(n, ".blob") {
			if d.hash, err = hashFile(fs, p); err != nil {
				return nil, err
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func hashFile(fs vfs.FS, path string) (string, error) {
	f, err := fs.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h, _ := blake2b.New256(nil)
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// writeCleanRecord writes the clean-shutdown record of dir atomically
// (temporary file, sync, rename, directory sync).
func writeCleanRecord(fs vfs.FS, dir string) error {
	digests, err := digestDir(fs, dir)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	body.WriteString(cleanHeader + "\n")
	for _, d := range digests {
		body.WriteString(d.line() + "\n")
	}
	sum := checkpoint.HashOf(body.Bytes())
	body.WriteString("end " + hex.EncodeToString(sum[:]) + "\n")

	tmp := fs.PathJoin(dir, cleanTmpName)
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(body.Bytes()); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, fs.PathJoin(dir, cleanFileName)); err != nil {
		return err
	}
	return syncDir(fs, dir)
}

// errCleanMismatch marks a difference between the files and the
// clean-shutdown record.
var errCleanMismatch = errors.New("database files changed since the clean shutdown")

// checkCleanRecord compares dir against its clean-shutdown record; found is
// false when there is none.
func checkCleanRecord(fs vfs.FS, dir string) (found bool, err error) {
	f, err := fs.Open(fs.PathJoin(dir, cleanFileName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	raw, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return true, err
	}
	want, err := parseCleanRecord(raw)
	if err != nil {
		return true, fmt.Errorf("%w: clean-shutdown record %s unreadable: %w", errCleanMismatch, cleanFileName, err)
	}
	for _, w := range want {
		p := fs.PathJoin(dir, w.name)
		fi, err := fs.Stat(p)
		if err != nil {
			return true, fmt.Errorf("%w: %s: %w", errCleanMismatch, w.name, err)
		}
		if fi.Size() != w.size {
			return true, fmt.Errorf("%w: %s is %d bytes, was %d", errCleanMismatch, w.name, fi.Size(), w.size)
		}
		if w.hash == cleanNoHashMark {
			continue
		}
		h, err := hashFile(fs, p)
		if err != nil {
			return true, err
		}
		if h != w.hash {
			return true, fmt.Errorf("%w: %s content differs", errCleanMismatch, w.name)
		}
	}
	return true, nil
}

func parseCleanRecord(raw []byte) ([]fileDigest, error) {
	i := bytes.LastIndex(raw, []byte("end "))
	if i < 0 || !bytes.HasPrefix(raw, []byte(cleanHeader+"\n")) {
		return nil, errors.New("missing header or end line")
	}
	sum := checkpoint.HashOf(raw[:i])
	if strings.TrimSpace(string(raw[i+4:])) != hex.EncodeToString(sum[:]) {
		return nil, errors.New("checksum mismatch")
	}
	var out []fileDigest
	sc := bufio.NewScanner(bytes.NewReader(raw[len(cleanHeader)+1 : i]))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			return nil, fmt.Errorf("bad line %q", sc.Text())
		}
		size, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad line %q", sc.Text())
		}
		out = append(out, fileDigest{name: fields[0], size: size, hash: fields[2]})
	}
	return out, sc.Err()
}

// removeCleanRecord removes the clean-shutdown record durably.
func removeCleanRecord(fs vfs.FS, dir string) error {
	if err := fs.Remove(fs.PathJoin(dir, cleanFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(fs, dir)
}
