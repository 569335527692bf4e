package asf

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// fakeClock is a settable Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

// env is a test chain on a real Pebble database in a temp dir.
type env struct {
	t     testing.TB
	spec  *chainspec.Spec
	keys  []ed25519.PrivateKey
	clock *fakeClock
	dir   string
	opts  ChainOptions
	chain *Chain
}

func localSpec(t testing.TB) *chainspec.Spec {
	s, err := chainspec.Builtin("local")
	require.NoError(t, err)
	return s
}

func specKeys(t testing.TB, spec *chainspec.Spec) []ed25519.PrivateKey {
	keys := make([]ed25519.PrivateKey, len(spec.Authorities))
	for i, a := range spec.Authorities {
		k, err := chainspec.DevKey(a.Name)
		require.NoError(t, err)
		keys[i] = k
	}
	return keys
}

func testLogger(t testing.TB) *zap.Logger {
	if tt, ok := t.(*testing.T); ok {
		return zaptest.NewLogger(tt, zaptest.Level(zap.InfoLevel))
	}
	return zap.NewNop()
}

func newEnv(t testing.TB, spec *chainspec.Spec) *env {
	t.Helper()
	e := &env{
		t:     t,
		spec:  spec,
		keys:  specKeys(t, spec),
		clock: &fakeClock{now: SlotStart(spec, 1_000_000)},
		dir:   t.TempDir(),
	}
	e.opts = ChainOptions{Logger: testLogger(t), Clock: e.clock}
	e.open()
	t.Cleanup(func() {
		if e.chain != nil {
			_ = e.chain.Close()
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	c, err := OpenChain(e.dir, e.spec, e.opts)
	require.NoError(e.t, err)
	e.chain = c
}

func (e *env) reopen() {
	e.t.Helper()
	require.NoError(e.t, e.chain.Close())
	e.chain = nil
	e.open()
}

// block builds a valid signed block on parent at slot (proposer and
// timestamp derived from the slot).
func (e *env) block(parent Header, slot uint64, extrinsics ...[]byte) Block {
	return makeBlock(e.spec, e.keys, parent, slot, extrinsics...)
}

func makeBlock(spec *chainspec.Spec, keys []ed25519.PrivateKey, parent Header, slot uint64, extrinsics ...[]byte) Block {
	ts, _ := slotTimestampMs(spec, slot)
	p := ProposerOf(spec, slot)
	b := Block{Header: Header{
		ParentHash:  parent.Hash(),
		Number:      parent.Number + 1,
		Slot:        slot,
		Proposer:    p,
		TimestampMs: ts,
		BodyRoot:    BodyRoot(extrinsics),
	}, Extrinsics: extrinsics}
	b.Header.Sign(keys[p])
	return b
}

// mustImport imports b and requires success.
func (e *env) mustImport(b Block) ImportResult {
	e.t.Helper()
	res, err := e.chain.Import(context.Background(), b)
	require.NoError(e.t, err)
	require.False(e.t, res.AlreadyKnown)
	return res
}

// extend imports n blocks on parent with consecutive slots starting at
// firstSlot and returns them. salt goes into the body so that two branches
// built with the same slots differ.
func (e *env) extend(parent Header, firstSlot uint64, n int, salt string) []Block {
	e.t.Helper()
	out := make([]Block, 0, n)
	for i := range n {
		var ext [][]byte
		if salt != "" {
			ext = [][]byte{[]byte(salt)}
		}
		b := e.block(parent, firstSlot+uint64(i), ext...)
		e.mustImport(b)
		out = append(out, b)
		parent = b.Header
	}
	return out
}

func cp(n uint64, b Block) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Number: n, Hash: b.Hash()}
}

// tipOf is the fork-choice tip of b.
func tipOf(b Block) checkpoint.Tip {
	return checkpoint.Tip{Hash: b.Hash(), Number: b.Header.Number, Slot: b.Header.Slot}
}
