package checkpoint

import (
	"crypto/ed25519"
	"sync"

	"golang.org/x/crypto/blake2b"
)

// sigCacheSize bounds each generation of the verified-signature cache.
const sigCacheSize = 1 << 14

// sigCache remembers signatures that verified, keyed by the BLAKE2b-256
// hash of (public key, message, signature): a vote verified when it arrived
// is not verified again inside the certificate that contains it, nor when a
// finality proof or a stored certificate repeats it. Only successes are
// kept, and the key covers all three inputs, so a hit is exactly a repeated
// successful verification. Two generations of at most sigCacheSize entries
// bound its memory (about 1 MiB).
type sigCache struct {
	mu       sync.Mutex
	cur, old map[Hash]struct{}
}

var verified = &sigCache{cur: make(map[Hash]struct{}, sigCacheSize)}

func sigKey(pub ed25519.PublicKey, msg, sig []byte) Hash {
	h, _ := blake2b.New256(nil)
	var n [2]byte
	n[0], n[1] = byte(len(msg)>>8), byte(len(msg))
	h.Write(pub)
	h.Write(n[:])
	h.Write(msg)
	h.Write(sig)
	var k Hash
	h.Sum(k[:0])
	return k
}

func (c *sigCache) has(k Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[k]; ok {
		return true
	}
	if _, ok := c.old[k]; ok {
		c.addLocked(k)
		return true
	}
	return false
}

func (c *sigCache) add(k Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(k)
}

func (c *sigCache) addLocked(k Hash) {
	if len(c.cur) >= sigCacheSize {
		c.old, c.cur = c.cur, make(map[Hash]struct{}, sigCacheSize)
	}
	c.cur[k] = struct{}{}
}

// VerifySignature reports whether sig is pub's ed25519 signature of msg.
// Successful verifications are cached (see sigCache), so repeated checks of
// the same signature cost one hash.
func VerifySignature(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	k := sigKey(pub, msg, sig)
	if verified.has(k) {
		return true
	}
	if !ed25519.Verify(pub, msg, sig) {
		return false
	}
	verified.add(k)
	return true
}

// ForgetVerifiedSignatures empties the cache of verified signatures (for
// benchmarks that measure the verification itself, and tests).
func ForgetVerifiedSignatures() {
	verified.mu.Lock()
	defer verified.mu.Unlock()
	verified.cur, verified.old = make(map[Hash]struct{}, sigCacheSize), nil
}
