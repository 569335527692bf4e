package asf

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeBlock checks that DecodeBlock never panics, that every rejection
// is an ErrInvalidBlock, and that every accepted block re-encodes to bytes
// that decode to the same block (same hash, same body).
// Seeds live in testdata/fuzz/FuzzDecodeBlock.
func FuzzDecodeBlock(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBlock(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidBlock) {
				t.Fatalf("rejection %v does not wrap ErrInvalidBlock", err)
			}
			return
		}
		if err := checkBody(b.Extrinsics); err != nil {
			t.Fatalf("decoded block breaks the size limits: %v", err)
		}
		enc, err := EncodeBlock(b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := DecodeBlock(enc)
		if err != nil {
			t.Fatalf("decode re-encoded block: %v", err)
		}
		if back.Header != b.Header || back.Hash() != b.Hash() {
			t.Fatalf("header changed in a round trip: %+v vs %+v", b.Header, back.Header)
		}
		if len(back.Extrinsics) != len(b.Extrinsics) {
			t.Fatalf("extrinsic count changed: %d vs %d", len(b.Extrinsics), len(back.Extrinsics))
		}
		for i := range b.Extrinsics {
			if !bytes.Equal(b.Extrinsics[i], back.Extrinsics[i]) {
				t.Fatalf("extrinsic %d changed", i)
			}
		}
		if BodyRoot(b.Extrinsics) != BodyRoot(back.Extrinsics) {
			t.Fatal("body root changed in a round trip")
		}
		// The stored header form round-trips too.
		h, err := unmarshalHeader(marshalHeader(b.Header))
		if err != nil || h != b.Header {
			t.Fatalf("stored header round trip: %v", err)
		}
	})
}

// FuzzUnmarshalHeader checks the stored header parser never panics and
// accepts exactly the bytes marshalHeader produces.
func FuzzUnmarshalHeader(f *testing.F) {
	f.Add(marshalHeader(sampleHeader()))
	f.Add([]byte("flare/block/v1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := unmarshalHeader(data)
		if err != nil {
			return
		}
		if !bytes.Equal(marshalHeader(h), data) {
			t.Fatal("accepted bytes that do not re-marshal identically")
		}
	})
}
