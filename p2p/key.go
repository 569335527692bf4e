package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxNodeKeyFileSize bounds what is read from a node key file (an encoded
// ed25519 key is 68 bytes).
const maxNodeKeyFileSize = 4 << 10

// LoadOrCreateNodeKey loads the libp2p identity stored at path, or creates a
// new ed25519 identity there (file mode 0600, parent directories 0700) when
// the file does not exist. The file holds the key in libp2p's protobuf
// private-key encoding (crypto.MarshalPrivateKey). An existing file readable
// by group or others is refused.
func LoadOrCreateNodeKey(path string) (crypto.PrivKey, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrNodeKey)
	}
	k, err := loadNodeKey(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	if err := storeNewNodeKey(path, k); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Created concurrently by someone else: use theirs.
			return loadNodeKey(path)
		}
		return nil, err
	}
	return k, nil
}

// storeNewNodeKey durably creates the node key file at path (mode 0600,
// parent directories 0700); it fails with fs.ErrExist when the file exists.
func storeNewNodeKey(path string, k crypto.PrivKey) error {
	raw, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return fmt.Errorf("encode node key: %w", err)
	}
	return writeNewFile(path, raw)
}

// PeerIDFromKeyFile returns the peer id of the existing node key at path.
func PeerIDFromKeyFile(path string) (peer.ID, error) {
	k, err := loadNodeKey(path)
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(k)
}

func loadNodeKey(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open node key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat node key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrNodeKey, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 it)", ErrNodeKey, path, perm)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxNodeKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read node key: %w", err)
	}
	if len(raw) > maxNodeKeyFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrNodeKey, path, maxNodeKeyFileSize)
	}
	k, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNodeKey, path, err)
	}
	return k, nil
}

// writeNewFile durably creates path with data and mode 0600; it fails with
// fs.ErrExist when path already exists.
func writeNewFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create node key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".nodekey-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create node key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write node key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync node key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close node key: %w", err)
	}
	// A hard link never replaces an existing file, unlike rename.
	if err := os.Link(tmpName, path); err != nil {
		return fmt.Errorf("install node key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
