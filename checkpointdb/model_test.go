package checkpointdb

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// The model test drives a CheckpointDB and a SafeSigner with a seeded random
// sequence of operations — sign requests, peer votes, certificates with
// pointers, evidence, prunes, flushes, crashes (CrashClone with a random
// share of unsynced data, then reopen) and clean reopens — and checks every
// result and, regularly, the whole visible state against a simple in-memory
// model. After a crash the model drops only votes stored since the last
// durability point (Flush or any synced write) that the store lost;
// everything synced must survive.

type modelKey struct {
	target    uint64
	validator checkpoint.ValidatorIndex
}

type modelVote struct {
	sv      checkpoint.SignedVote
	durable bool
}

type model struct {
	last       *checkpoint.SignedVote // the local signer's last signed vote
	votes      map[modelKey]modelVote // first stored vote per key
	certs      map[uint64]checkpoint.Certificate
	justified  *checkpoint.Checkpoint
	finalized  *checkpoint.Checkpoint
	base       uint64
	evBase     uint64
	evidence   map[checkpoint.Hash]checkpoint.Evidence
	retention  uint64 // evidence retention
	validators int
}

// synced marks every stored vote durable: a synced write or Flush syncs the
// WAL up to itself.
func (m *model) synced() {
	for k, v := range m.votes {
		v.durable = true
		m.votes[k] = v
	}
}

func (m *model) certCovers(t uint64, v checkpoint.ValidatorIndex) bool {
	c, ok := m.certs[t]
	if !ok {
		return false
	}
	for _, s := range c.Signatures {
		if s.Validator == v {
			return true
		}
	}
	return false
}

// votesAt is the expected result of Votes(t): per validator the stored vote
// then the certificate's signature when it differs.
func (m *model) votesAt(t uint64) []checkpoint.SignedVote {
	if t < m.base {
		return nil
	}
	var out []checkpoint.SignedVote
	c, hasCert := m.certs[t]
	for v := 0; v < m.validators; v++ {
		vi := checkpoint.ValidatorIndex(v)
		stored, ok := m.votes[modelKey{t, vi}]
		if ok {
			out = append(out, stored.sv)
		}
		if hasCert {
			for _, s := range c.Signatures {
				if s.Validator == vi {
					sv := checkpoint.SignedVote{Vote: c.Vote(), Validator: vi, Signature: s.Signature}
					if !ok || stored.sv != sv {
						out = append(out, sv)
					}
				}
			}
		}
	}
	return out
}

func (m *model) finalNumber() uint64 {
	if m.finalized == nil {
		return 0
	}
	return m.finalized.Number
}

func (m *model) sortedEvidence(from uint64) []checkpoint.Evidence {
	type kv struct {
		id checkpoint.Hash
		e  checkpoint.Evidence
	}
	var all []kv
	for id, e := range m.evidence {
		if e.Checkpoint >= from {
			all = append(all, kv{id, e})
		}
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(a.e.Checkpoint, b.e.Checkpoint); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	var out []checkpoint.Evidence
	for _, x := range all {
		out = append(out, x.e)
	}
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestModelRandomized(t *testing.T) {
	ops := envInt("FLARE_MODEL_OPS", 3000)
	seeds := []uint64{1}
	if s := envInt("FLARE_MODEL_SEED", 0); s > 0 {
		seeds = []uint64{uint64(s)}
	} else if testing.Short() {
		ops = 800
	}
	for _, seed := range seeds {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) { runModel(t, seed, ops) })
	}
}

func runModel(t *testing.T, seed uint64, ops int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	crashRNG := rand.New(rand.NewPCG(seed, 0xc4a5))
	const validators = 7
	m := &model{
		votes:      map[modelKey]modelVote{},
		certs:      map[uint64]checkpoint.Certificate{},
		evidence:   map[checkpoint.Hash]checkpoint.Evidence{},
		retention:  25,
		validators: validators,
	}
	mem := vfs.NewCrashableMem()
	open := func(fs vfs.FS) *CheckpointDB {
		db, err := Open("db", Options{FS: fs, Genesis: testGenesis, EvidenceRetention: m.retention})
		require.NoError(t, err)
		return db
	}
	db := open(mem)
	defer func() { _ = db.Close() }()
	const me = 0
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[me]), me, testGenesis)

	front := uint64(3) // the chain's moving frontier
	randVote := func(t uint64, fork int) checkpoint.Vote {
		src := t - 1
		if t > 2 && rng.IntN(6) == 0 {
			src = t - 2
		}
		return checkpoint.Vote{Genesis: testGenesis, SetID: 1, Source: cp(src), Target: checkpoint.Checkpoint{Number: t, Hash: cpHash(t, fork)}}
	}
	around := func(below, above int) uint64 {
		t := int64(front) + int64(rng.IntN(below+above+1)-below)
		return uint64(max(t, 1))
	}
	counts := map[string]int{}

	for op := 0; op < ops; op++ {
		switch r := rng.IntN(100); {
		case r < 18: // sign request
			counts["sign"]++
			var v checkpoint.Vote
			switch k := rng.IntN(10); {
			case k < 2 && m.last != nil:
				v = m.last.Vote // identical again
			case k < 4 && m.last != nil:
				v = randVote(m.last.Target.Number, 1+rng.IntN(2)) // conflicting / same target
			default:
				v = randVote(around(3, 2), rng.IntN(2))
			}
			sv, err := signer.SignVote(bg, v)
			switch {
			case m.last != nil && v == m.last.Vote:
				require.NoError(t, err, "op %d: identical request", op)
				require.Equal(t, *m.last, sv)
			case m.last != nil && (v.Target.Number <= m.last.Target.Number || v.Source.Number < m.last.Source.Number):
				require.ErrorIs(t, err, checkpoint.ErrSlashable, "op %d: vote %v after %v", op, v, m.last.Vote)
			default:
				require.NoError(t, err, "op %d: safe vote %v", op, v)
				require.Equal(t, signed(v, me), sv)
				m.last = &sv
				m.synced()
			}
		case r < 55: // peer vote
			counts["vote"]++
			v := randVote(around(6, 3), rng.IntN(3))
			val := rng.IntN(validators)
			sv := signed(v, val)
			require.NoError(t, db.StoreVote(bg, sv))
			key := modelKey{v.Target.Number, checkpoint.ValidatorIndex(val)}
			if _, ok := m.votes[key]; !ok && v.Target.Number >= m.base && !m.certCovers(key.target, key.validator) {
				m.votes[key] = modelVote{sv: sv}
			}
		case r < 67: // certificate with pointers
			counts["cert"]++
			tgt := around(2, 1)
			fork := 0
			if rng.IntN(8) == 0 {
				fork = 1
			}
			v := checkpoint.Vote{Genesis: testGenesis, SetID: 1, Source: cp(tgt - 1), Target: checkpoint.Checkpoint{Number: tgt, Hash: cpHash(tgt, fork)}}
			var signers []int
			for i := 0; i < validators; i++ {
				if rng.IntN(3) > 0 {
					signers = append(signers, i)
				}
			}
			if len(signers) == 0 {
				signers = []int{rng.IntN(validators)}
			}
			c := certOf(t, v, signers...)
			var j, f *checkpoint.Checkpoint
			if rng.IntN(4) > 0 {
				j = cpPtr(tgt)
			}
			if rng.IntN(3) > 0 && tgt > 1 {
				f = cpPtr(tgt - 1)
			}
			require.NoError(t, db.StoreCertificate(bg, c, j, f))
			// A call that changes nothing writes nothing (and so is no
			// durability point for earlier votes).
			changed := false
			if tgt >= m.base {
				if old, ok := m.certs[tgt]; !ok {
					m.certs[tgt], changed = c, true
				} else if merged := mergeModelCert(old, c); old.Vote() == c.Vote() && len(merged.Signatures) > len(old.Signatures) {
					m.certs[tgt], changed = merged, true
				}
			}
			if j != nil && (m.justified == nil || j.Number > m.justified.Number) {
				m.justified, changed = j, true
			}
			if f != nil && (m.finalized == nil || f.Number > m.finalized.Number) {
				m.finalized, changed = f, true
			}
			if changed {
				m.synced()
			}
			if tgt >= front {
				front = tgt + 1
			}
		case r < 70: // evidence
			counts["evidence"]++
			e := doubleVoteEvidence(around(8, 1), 1+rng.IntN(validators-1))
			require.NoError(t, db.StoreEvidence(bg, e))
			if e.Checkpoint >= m.evBase {
				m.evidence[e.ID()] = e
				m.synced()
			}
		case r < 76: // prune
			counts["prune"]++
			keep := uint64(1 + rng.IntN(15))
			removed, err := db.Prune(bg, keep)
			require.NoError(t, err)
			want := 0
			if m.finalized != nil {
				f := m.finalized.Number
				newBase, newEv := m.base, m.evBase
				if f+1 > keep {
					newBase = max(m.base, f-keep+1)
				}
				if f > m.retention {
					newEv = max(m.evBase, f-m.retention)
				}
				if newBase != m.base || newEv != m.evBase {
					nums := map[uint64]bool{}
					for k := range m.votes {
						if k.target >= m.base && k.target < newBase {
							nums[k.target] = true
						}
					}
					for n := range m.certs {
						if n >= m.base && n < newBase {
							nums[n] = true
						}
					}
					want = len(nums)
					for k := range m.votes {
						if k.target < newBase {
							delete(m.votes, k)
						}
					}
					for n := range m.certs {
						if n < newBase {
							delete(m.certs, n)
						}
					}
					for id, e := range m.evidence {
						if e.Checkpoint < newEv {
							delete(m.evidence, id)
						}
					}
					m.base, m.evBase = newBase, newEv
					m.synced()
				}
			}
			require.Equal(t, want, removed, "op %d: prune(%d) count", op, keep)
		case r < 84: // flush
			counts["flush"]++
			require.NoError(t, db.Flush(bg))
			m.synced()
		case r < 88: // the chain moves on
			front++
		case r < 96: // crash and reopen
			counts["crash"]++
			pct := 0
			if crashRNG.IntN(3) > 0 {
				pct = crashRNG.IntN(101)
			}
			clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: crashRNG})
			require.NoError(t, db.Close())
			mem = clone
			db = open(mem)
			signer = finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[me]), me, testGenesis)
			// Reconcile the votes that were not durable: each may or may
			// not have survived.
			present := map[uint64]map[checkpoint.SignedVote]bool{}
			for k, v := range m.votes {
				if v.durable {
					continue
				}
				if present[k.target] == nil {
					got, err := db.Votes(bg, k.target)
					require.NoError(t, err)
					present[k.target] = map[checkpoint.SignedVote]bool{}
					for _, sv := range got {
						present[k.target][sv] = true
					}
				}
				if present[k.target][v.sv] {
					counts["vote survived crash"]++
					v.durable = true
					m.votes[k] = v
				} else {
					counts["vote lost in crash"]++
					delete(m.votes, k)
				}
			}
			checkModel(t, op, db, m)
		default: // clean reopen
			counts["reopen"]++
			require.NoError(t, db.Close())
			db = open(mem)
			signer = finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[me]), me, testGenesis)
			checkModel(t, op, db, m)
		}
		if op%20 == 19 {
			checkModel(t, op, db, m)
		}
	}
	checkModel(t, ops, db, m)
	t.Logf("seed %d, %d ops: %v", seed, ops, counts)
	require.Positive(t, counts["vote lost in crash"]+counts["vote survived crash"], "crashes should meet unsynced votes")
}

func mergeModelCert(a, b checkpoint.Certificate) checkpoint.Certificate {
	seen := map[checkpoint.ValidatorIndex]bool{}
	out := a
	out.Signatures = nil
	for _, s := range append(slices.Clone(a.Signatures), b.Signatures...) {
		if !seen[s.Validator] {
			seen[s.Validator] = true
			out.Signatures = append(out.Signatures, s)
		}
	}
	slices.SortFunc(out.Signatures, func(x, y checkpoint.CertSignature) int { return cmp.Compare(x.Validator, y.Validator) })
	return out
}

// checkModel compares everything visible through the API with the model.
func checkModel(t *testing.T, op int, db *CheckpointDB, m *model) {
	t.Helper()
	j, f, err := db.Pointers(bg)
	require.NoError(t, err)
	require.Equal(t, m.justified, j, "op %d: justified", op)
	require.Equal(t, m.finalized, f, "op %d: finalized", op)
	require.Equal(t, m.base, db.Stats().OldestRetained, "op %d: prune base", op)

	rec, found, err := db.LoadSignerRecord(bg, testKeys[0].Public().(ed25519.PublicKey))
	require.NoError(t, err)
	require.Equal(t, m.last != nil, found, "op %d: signer record presence", op)
	if found {
		require.Equal(t, m.last, rec.Last, "op %d: signer record", op)
	}

	top := m.base + 1
	for k := range m.votes {
		top = max(top, k.target)
	}
	for n := range m.certs {
		top = max(top, n)
	}
	lo := uint64(1)
	if m.base > 3 {
		lo = m.base - 3
	}
	for n := lo; n <= top+1; n++ {
		got, err := db.Votes(bg, n)
		require.NoError(t, err)
		want := m.votesAt(n)
		require.Equal(t, want, got, "op %d: votes at %d (base %d)", op, n, m.base)
		c, found, err := db.Certificate(bg, n)
		require.NoError(t, err)
		mc, ok := m.certs[n]
		require.Equal(t, ok, found, "op %d: certificate %d presence", op, n)
		if ok {
			require.Equal(t, mc, c, "op %d: certificate %d", op, n)
		}
	}
	evs, err := db.Evidence(bg)
	require.NoError(t, err)
	require.Equal(t, m.sortedEvidence(m.evBase), evs, "op %d: evidence", op)

	st, err := db.Restore(bg)
	require.NoError(t, err)
	fnum := m.finalNumber()
	var wantCerts []checkpoint.Certificate
	for n := max(fnum, m.base); n <= top; n++ {
		if c, ok := m.certs[n]; ok {
			wantCerts = append(wantCerts, c)
		}
	}
	require.Equal(t, wantCerts, st.Certificates, "op %d: restored certificates", op)
	voteFrom := max(m.base, fnum)
	if m.finalized != nil {
		voteFrom = max(m.base, fnum+1)
	}
	var wantVotes []checkpoint.SignedVote
	for n := voteFrom; n <= top; n++ {
		wantVotes = append(wantVotes, m.votesAt(n)...)
	}
	require.Equal(t, wantVotes, st.Votes, "op %d: restored votes", op)
	require.Equal(t, m.sortedEvidence(max(m.evBase, voteFrom)), st.Evidence, "op %d: restored evidence", op)
}
