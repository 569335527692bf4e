package tx

import (
	lru "github.com/hashicorp/golang-lru/v2"
)

// SigCache remembers the hashes of transactions whose signature verified, so
// that a transaction checked at admission to the pool is not verified again
// when its block is built or imported. The hash covers the signature and
// every signed field, so a hit proves the same bytes verified before. It is
// safe for concurrent use.
type SigCache struct {
	c *lru.Cache[Hash, struct{}]
}

// NewSigCache returns a cache of at most size entries (least recently used
// evicted first).
func NewSigCache(size int) *SigCache {
	if size < 1 {
		size = 1
	}
	c, err := lru.New[Hash, struct{}](size)
	if err != nil {
		panic(err) // only for size <= 0
	}
	return &SigCache{c: c}
}

// Verify checks t's signature, from the cache when its hash verified before.
// A nil cache verifies every time.
func (s *SigCache) Verify(t *Tx, h Hash) error {
	if s != nil && s.c.Contains(h) {
		return nil
	}
	if err := t.Verify(); err != nil {
		return err
	}
	if s != nil {
		s.c.Add(h, struct{}{})
	}
	return nil
}

// Len returns the number of cached hashes.
func (s *SigCache) Len() int { return s.c.Len() }
