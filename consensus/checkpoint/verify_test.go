package checkpoint

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVerifiedSignatureCache(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	msg := []byte("flare cache test")
	sig := ed25519.Sign(priv, msg)
	ForgetVerifiedSignatures()
	require.True(t, VerifySignature(pub, msg, sig))
	require.True(t, VerifySignature(pub, msg, sig), "cached success")
	bad := append([]byte(nil), sig...)
	bad[0] ^= 1
	require.False(t, VerifySignature(pub, msg, bad), "a failure is never cached as a success")
	require.False(t, VerifySignature(pub, msg, bad))
	require.False(t, VerifySignature(pub, []byte("other message"), sig), "the key covers the message")
	other, _, _ := ed25519.GenerateKey(nil)
	require.False(t, VerifySignature(other, msg, sig), "the key covers the public key")
	require.False(t, VerifySignature(pub[:31], msg, sig))
	// Beyond two generations the oldest entries are forgotten (bounded).
	for i := range 2*sigCacheSize + 1 {
		verified.add(HashOf([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
	}
	verified.mu.Lock()
	size := len(verified.cur) + len(verified.old)
	verified.mu.Unlock()
	require.LessOrEqual(t, size, 2*sigCacheSize)
}
