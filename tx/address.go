package tx

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// AddressSize is the length of an address: an ed25519 public key.
const AddressSize = ed25519.PublicKeySize

// ErrBadAddress is returned (wrapped with the reason) for text that is not an
// address.
var ErrBadAddress = errors.New("bad address")

// Address is an account: the ed25519 public key that signs its transfers.
type Address [AddressSize]byte

// AddressOf returns the address of pub.
func AddressOf(pub ed25519.PublicKey) Address {
	var a Address
	copy(a[:], pub)
	return a
}

// String returns the text form: "0x" and 64 lowercase hex characters.
func (a Address) String() string { return "0x" + hex.EncodeToString(a[:]) }

// Short returns "0x" and the first 4 bytes in hex, for logs.
func (a Address) Short() string { return "0x" + hex.EncodeToString(a[:4]) }

// PublicKey returns the address as an ed25519 public key.
func (a Address) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(a[:]) }

// IsZero reports whether a is all zeros (never a valid account).
func (a Address) IsZero() bool { return a == Address{} }

// MarshalText implements encoding.TextMarshaler (JSON as the text form).
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseAddress.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// ParseAddress parses the text form. The "0x" prefix is required; upper-case
// hex digits are accepted (the text form this package writes is lowercase).
// The all-zero key is refused.
func ParseAddress(s string) (Address, error) {
	var a Address
	if !strings.HasPrefix(s, "0x") {
		return a, fmt.Errorf("%w %q: must start with 0x", ErrBadAddress, s)
	}
	h := s[2:]
	if len(h) != 2*AddressSize {
		return a, fmt.Errorf("%w %q: want 0x and %d hex characters, got %d", ErrBadAddress, s, 2*AddressSize, len(h))
	}
	if _, err := hex.Decode(a[:], []byte(h)); err != nil {
		return Address{}, fmt.Errorf("%w %q: not hex", ErrBadAddress, s)
	}
	if a.IsZero() {
		return Address{}, fmt.Errorf("%w: the all-zero key is not an account", ErrBadAddress)
	}
	return a, nil
}
