package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/p2p"
)

// engineState is the engine's read side as a value (the readiness rules
// are a function of it).
type engineState struct {
	syncing, signerPending, caughtUp bool
	lastFinalizedAt                  time.Time
}

func (e engineState) Syncing() bool              { return e.syncing }
func (e engineState) SignerPending() bool        { return e.signerPending }
func (e engineState) CaughtUp() bool             { return e.caughtUp }
func (e engineState) LastFinalizedAt() time.Time { return e.lastFinalizedAt }

type peerCounts struct {
	in, out   int
	conflicts []string
}

func (p peerCounts) PeerInfos() []p2p.PeerInfo  { return nil }
func (p peerCounts) PeerCounts() (int, int)     { return p.in, p.out }
func (p peerCounts) SelfIDConflicts() []string  { return p.conflicts }
func (p peerCounts) withPeers(n int) peerCounts { p.out = n; return p }

// gadget builds a real finality gadget (an observer without persistence)
// over a 4-key authority set.
func gadget(t *testing.T) *finality.CheckpointFinality {
	t.Helper()
	keys := make([]ed25519.PublicKey, 4)
	for i := range keys {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i + 1)
		keys[i] = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	}
	g, err := finality.New(finality.Config{Authorities: checkpoint.AuthoritySet{Genesis: checkpoint.HashOf([]byte("g")), Keys: keys}},
		finality.Deps{})
	require.NoError(t, err)
	return g
}

func TestReadiness(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	info := Info{Authorities: 4, CheckpointInterval: 4, SlotDuration: time.Second, ExpectsPeers: true}
	limit := 8 * 4 * time.Second // StallIntervals checkpoint intervals
	healthy := engineState{caughtUp: true, lastFinalizedAt: start.Add(time.Minute)}
	halted := gadget(t)
	require.NoError(t, halted.RaiseAlarm(context.Background(), checkpoint.Halt{Reason: checkpoint.HaltDoppelganger, Checkpoint: 7, Detail: "another instance"}))
	for _, tt := range []struct {
		name    string
		engine  engineState
		peers   int
		started bool
		alone   bool
		now     time.Time
		halted  bool
		want    []string
	}{
		{"ready", healthy, 3, true, false, start.Add(time.Minute + limit), false, []string{}},
		{"network not started", healthy, 3, false, false, start, false, []string{ReasonStarting}},
		{"not caught up", engineState{lastFinalizedAt: healthy.lastFinalizedAt}, 3, true, false, start.Add(time.Minute), false, []string{ReasonStarting}},
		{"syncing", engineState{caughtUp: true, syncing: true, lastFinalizedAt: healthy.lastFinalizedAt}, 3, true, false, start.Add(time.Minute), false, []string{ReasonSyncing}},
		{"signer initialising", engineState{caughtUp: true, signerPending: true, lastFinalizedAt: healthy.lastFinalizedAt}, 3, true, false, start.Add(time.Minute), false, []string{ReasonSignerInitialising}},
		{"no peers", healthy, 0, true, false, start.Add(time.Minute), false, []string{ReasonNoPeers}},
		{"alone without peers", healthy, 0, true, true, start.Add(time.Minute), false, []string{}},
		{"stalled since the last advance", healthy, 3, true, false, start.Add(time.Minute + limit + time.Second), false, []string{ReasonFinalityStalled}},
		{"stalled since the start", engineState{caughtUp: true}, 3, true, false, start.Add(limit + time.Second), false, []string{ReasonFinalityStalled}},
		{"not stalled yet after the start", engineState{caughtUp: true}, 3, true, false, start.Add(limit), false, []string{}},
		{"halted", healthy, 3, true, false, start.Add(time.Minute), true, []string{ReasonHalted}},
		{"everything", engineState{syncing: true, signerPending: true}, 0, true, false, start.Add(limit + time.Second), true,
			[]string{ReasonStarting, ReasonSyncing, ReasonSignerInitialising, ReasonNoPeers, ReasonFinalityStalled, ReasonHalted}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := info
			in.ExpectsPeers = !tt.alone
			f := gadget(t)
			if tt.halted {
				f = halted
			}
			s := New(in, Sources{Engine: tt.engine, Network: peerCounts{}.withPeers(tt.peers), Finality: f,
				Started: func() (time.Time, bool) { return start, tt.started }, Now: func() time.Time { return tt.now }}, nil)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			var r Readiness
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
			got := []string{}
			for _, x := range r.Reasons {
				got = append(got, x.Reason)
				require.NotEmpty(t, x.Message)
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, len(tt.want) == 0, r.Ready)
			require.Equal(t, len(tt.want) == 0, s.Ready())
			if r.Ready {
				require.Equal(t, http.StatusOK, rec.Code)
			} else {
				require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			}
			if tt.halted {
				require.Contains(t, r.Reasons[len(r.Reasons)-1].Message, "doppelganger at checkpoint 7: another instance")
			}
		})
	}
}

func TestCut(t *testing.T) {
	id := func(v uint64) uint64 { return v }
	p := func(v uint64) *uint64 { return &v }
	for _, tt := range []struct {
		items []uint64
		limit int
		n     int
		next  *uint64
	}{
		{nil, 3, 0, nil},
		{[]uint64{1, 2, 3}, 3, 3, nil},
		{[]uint64{1, 2, 3, 4}, 3, 3, p(4)},
		{[]uint64{1, 2, 3, 3}, 3, 2, p(3)},     // one checkpoint's entries stay together
		{[]uint64{1, 3, 3, 3, 4}, 2, 1, p(3)},  // cut back to the group's start
		{[]uint64{3, 3, 3, 4}, 2, 3, p(4)},     // a group larger than the limit comes whole
		{[]uint64{3, 3, 3}, 2, 3, nil},         // ... and may be the last
		{[]uint64{1, 2, 2, 2, 2}, 1, 1, p(2)},  // limit 1
		{[]uint64{5, 6, 7, 8, 9}, 4, 4, p(9)},  // plain
		{[]uint64{5, 6, 7, 8, 8}, 4, 3, p(8)},  // group straddles the limit
		{[]uint64{8, 8, 8, 8, 8}, 4, 5, nil},   // one group only
		{[]uint64{8, 8, 8, 8, 9}, 4, 4, p(9)},  // group ends at the limit
		{[]uint64{1, 8, 8, 8, 8}, 4, 1, p(8)},  // the rest is one group
		{[]uint64{0, 0, 1, 1, 1}, 3, 2, p(1)},  // zero keys
		{[]uint64{0, 0, 0, 0, 1}, 3, 4, p(1)},  // zero group larger than the limit
		{[]uint64{2}, 1, 1, nil},               // one item
		{[]uint64{2, 3}, 1, 1, p(3)},           // two items
		{[]uint64{2, 2, 3, 3}, 1, 2, p(3)},     // two groups of two
		{[]uint64{2, 2, 3, 3}, 3, 2, p(3)},     // the limit inside the second group
		{[]uint64{2, 2, 3, 3}, 4, 4, nil},      // all
		{[]uint64{2, 2, 3, 3}, 5, 4, nil},      // more than all
		{[]uint64{7, 7, 7, 9, 9}, 3, 3, p(9)},  // exact group
		{[]uint64{7, 7, 7, 9, 9}, 4, 3, p(9)},  // limit in the next group
		{[]uint64{7, 7, 7, 9, 9}, 2, 3, p(9)},  // first group too big
		{[]uint64{7, 9, 9, 9, 9}, 2, 1, p(9)},  // back to 1
		{[]uint64{7, 9, 9, 9, 10}, 2, 1, p(9)}, // ditto with a tail
	} {
		n, next := cut(tt.items, tt.limit, id)
		require.Equal(t, tt.n, n, "%v limit %d", tt.items, tt.limit)
		require.Equal(t, tt.next, next, "%v limit %d", tt.items, tt.limit)
	}
}

func TestNewRole(t *testing.T) {
	idx := func(i uint32) *uint32 { return &i }
	require.Equal(t, Role{Kind: RoleFullNode}, NewRole(false, 3, true, true))
	require.Equal(t, Role{Kind: RoleValidator, ValidatorIndex: idx(2), AuthorsBlocks: true, Votes: true}, NewRole(true, 2, true, true))
	require.Equal(t, Role{Kind: RoleValidatorWithoutASF, ValidatorIndex: idx(0), AuthorsBlocks: true}, NewRole(true, 0, false, true))
	require.Equal(t, Role{Kind: RoleValidatorWithoutPersistence, ValidatorIndex: idx(1), AuthorsBlocks: true}, NewRole(true, 1, true, false))
}

// TestReadySelfIDConflict: another node with this node's key is one
// self_id_conflict reason per address.
func TestReadySelfIDConflict(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	in := Info{Authorities: 4, CheckpointInterval: 4, SlotDuration: time.Second, ExpectsPeers: true}
	net := peerCounts{out: 2, conflicts: []string{"/ip4/10.0.0.7/tcp/30333", "/ip4/10.0.0.8/tcp/30333"}}
	s := New(in, Sources{Engine: engineState{caughtUp: true}, Network: net,
		Started: func() (time.Time, bool) { return start, true }, Now: func() time.Time { return start }}, nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	var r Readiness
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
	require.Len(t, r.Reasons, 2)
	for i, x := range r.Reasons {
		require.Equal(t, ReasonSelfIDConflict, x.Reason)
		require.Contains(t, x.Message, net.conflicts[i])
	}
}
