package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/flarechain/flare-node/chainspec"
)

// maxKeyFileSize bounds what ReadKeyFile reads (a seed is 64 hex characters).
const maxKeyFileSize = 4096

// ValidatorKey returns the validator's private key: the dev key KeyName
// (chainspec.DevKey) or the seed in KeyFile (ReadKeyFile). It returns
// ErrNoValidatorKey when neither is set.
func (c *Config) ValidatorKey() (ed25519.PrivateKey, error) {
	switch {
	case c.KeyName != "" && c.KeyFile != "":
		return nil, errors.New("both a dev key name and a key file are configured")
	case c.KeyName != "":
		return chainspec.DevKey(c.KeyName)
	case c.KeyFile != "":
		return ReadKeyFile(c.KeyFile)
	}
	return nil, ErrNoValidatorKey
}

// ReadKeyFile reads an ed25519 key from a file holding its 32-byte seed in
// hex (64 characters, optional 0x prefix, surrounding whitespace ignored).
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%w %s: larger than %d bytes", ErrBadKeyFile, path, maxKeyFileSize)
	}
	s := bytes.TrimSpace(data)
	s = bytes.TrimPrefix(bytes.TrimPrefix(s, []byte("0x")), []byte("0X"))
	if len(s) != 2*ed25519.SeedSize {
		return nil, fmt.Errorf("%w %s: want %d hex characters (an ed25519 seed), got %d", ErrBadKeyFile, path, 2*ed25519.SeedSize, len(s))
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := hex.Decode(seed, s); err != nil {
		return nil, fmt.Errorf("%w %s: not hex", ErrBadKeyFile, path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// EncodeKeyFile returns the key file contents for key: its seed in hex and a
// newline.
func EncodeKeyFile(key ed25519.PrivateKey) []byte {
	return []byte(hex.EncodeToString(key.Seed()) + "\n")
}

// WriteKeyFile writes key to a new file at path with mode 0600; it never
// overwrites an existing file.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if _, err := f.Write(EncodeKeyFile(key)); err != nil {
		f.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// CheckKeyFileMode returns an error wrapping ErrInsecureKeyFile when group or
// other users have any permission on the key file (it should be 0600 or
// stricter), and the stat error when it cannot be examined.
func CheckKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, want 0600 or stricter (chmod 600 %s)", ErrInsecureKeyFile, path, perm, path)
	}
	return nil
}
