package sim

import (
	"crypto/ed25519"
	"time"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
)

// installByzantine wires the byzantine validators' misbehaviours: they run
// the real engine (which may halt on their own forgeries) plus the
// behaviours below, or — for mirror voters — only the behaviours.
func installByzantine(w *world) {
	for _, nd := range w.nodes {
		b, ok := w.sc.byzantine[nd.key]
		if !ok || nd.honest {
			continue
		}
		nd.byz = &byzState{b: b}
		if b.mirrorVotes {
			nd.passive = true
		}
		if b.replay {
			nd := nd
			var replay func()
			replay = func() {
				replayOld(w, nd)
				w.after(time.Duration(2+w.rng.IntN(8))*time.Second, -1, "replay", replay)
			}
			w.after(5*time.Second, -1, "replay", replay)
		}
	}
}

type byzState struct {
	b byzBehaviour
	// lastVote is the last vote its engine published.
	lastVote *checkpoint.SignedVote
	forged   int
	// signed: links a removed validator signed for its old set (once each).
	signed map[checkpoint.Link]bool
}

func (nd *simNode) byzKey() ed25519.PrivateKey { return nd.w.keys[nd.key] }

// byzAuthored runs after the byzantine node's engine authored b.
func (w *world) byzAuthored(nd *simNode, b asf.Block) {
	if nd.byz.b.splitCheckpoints {
		if b.Header.Number%w.sc.interval != 0 {
			w.record("%s withheld #%d slot %d", nd.name, b.Header.Number, b.Header.Slot)
		} else {
			w.splitSlot(nd, b)
		}
	}
	n := nd.byz.b.equivocateBlocks
	for i := range n {
		fb, ok := w.altVersion(nd, b, uint64(i)+1)
		if !ok {
			continue
		}
		w.noteBlock(fb)
		m := blockMsg(fb)
		// Each forged copy goes to one random peer: different nodes see a
		// different first block for the slot.
		to := w.nodes[w.rng.IntN(len(w.nodes))]
		if to == nd || !to.up || to.passive {
			continue
		}
		w.send(nd, to, m)
	}
	if n > 0 {
		w.record("%s equivocated %d blocks for slot %d", nd.name, n, b.Header.Slot)
	}
}

// splitSlot sends every other node its own version of b (the first one gets
// b itself), so that no two honest nodes see the same block first.
func (w *world) splitSlot(nd *simNode, b asf.Block) {
	versions := 0
	for _, to := range w.nodes {
		if to == nd || !to.up || to.passive {
			continue
		}
		v := b
		if versions > 0 {
			alt, ok := w.altVersion(nd, b, 1000+uint64(versions))
			if !ok {
				continue
			}
			v = alt
			w.noteBlock(v)
		}
		versions++
		w.send(nd, to, blockMsg(v))
	}
	w.record("%s split slot %d into %d versions", nd.name, b.Header.Slot, versions)
}

// byzVoted runs after the byzantine node's engine published v.
func (w *world) byzVoted(nd *simNode, v checkpoint.SignedVote) {
	bs := nd.byz
	bs.lastVote = &v
	key := nd.byzKey()
	sign := func(vote checkpoint.Vote) checkpoint.SignedVote {
		return checkpoint.SignedVote{Vote: vote, Validator: v.Validator, Signature: finalitySign(key, vote)}
	}
	if bs.b.doubleVote {
		other := v.Vote
		other.Target.Hash = checkpoint.HashOf([]byte("double"), v.Target.Hash[:])
		w.broadcastForged(nd, voteMsg(sign(other)))
	}
	if bs.b.surroundVote && w.rng.IntN(3) == 0 && v.Source.Number > 0 {
		sur := v.Vote
		sur.Source = checkpoint.Checkpoint{Number: 0, Hash: w.genesis}
		sur.Target.Number += 3
		sur.Target.Hash = checkpoint.HashOf([]byte("surround"), v.Target.Hash[:])
		w.broadcastForged(nd, voteMsg(sign(sur)))
	}
	if bs.b.forgeCerts {
		// A certificate listing its own signature a quorum of times for a
		// made-up checkpoint above the vote's target.
		fake := checkpoint.Vote{Genesis: w.genesis, SetID: v.SetID, Source: v.Target,
			Target: checkpoint.Checkpoint{Number: v.Target.Number + 1, Hash: checkpoint.HashOf([]byte("forged"), v.Target.Hash[:])}}
		sig := finalitySign(key, fake)
		c := checkpoint.Certificate{Genesis: fake.Genesis, SetID: fake.SetID, Source: fake.Source, Target: fake.Target}
		set, _ := w.sched.Set(v.SetID)
		for range set.Quorum() {
			c.Signatures = append(c.Signatures, checkpoint.CertSignature{Validator: v.Validator, Signature: sig})
		}
		bs.forged++
		w.broadcastForged(nd, certMsg(c))
	}
}

// mirror: a byzantine mirror voter signs the link an honest validator just
// voted for and sends it back to that validator only, so that each side of
// a partition reaches a quorum with the byzantine votes.
func (w *world) mirror(nd *simNode, from *simNode, v checkpoint.SignedVote) {
	idx, in := w.indexIn(nd.key, v.SetID)
	if !in || v.Validator == idx {
		return
	}
	mv := checkpoint.SignedVote{Vote: v.Vote, Validator: idx, Signature: finalitySign(nd.byzKey(), v.Vote)}
	w.send(nd, from, voteMsg(mv))
}

func finalitySign(key ed25519.PrivateKey, v checkpoint.Vote) checkpoint.Signature {
	var s checkpoint.Signature
	copy(s[:], ed25519.Sign(key, v.SigningBytes()))
	return s
}

// broadcastForged sends a forged message to every honest neighbour.
func (w *world) broadcastForged(nd *simNode, m gossipMsg) {
	for _, to := range w.nodes {
		if to != nd && to.up && !to.passive {
			w.send(nd, to, m)
		}
	}
	w.seenForged(m)
}

func (w *world) seenForged(m gossipMsg) {
	if len(w.history) < maxHistory {
		w.history = append(w.history, m)
	}
}

// send delivers m from nd to one node, subject to the network.
func (w *world) send(nd, to *simNode, m gossipMsg) {
	if to.keyless != nil || !w.net.gossipPasses(nd.id, to.id, m) {
		return
	}
	for _, d := range w.net.fate() {
		w.after(d, to.id, "forged", func() { w.deliverGossip(nd.id, to, m) })
	}
}

const maxHistory = 4096

// replayOld re-sends old messages (stale votes, certificates and blocks) to
// random nodes.
func replayOld(w *world, nd *simNode) {
	if len(w.history) == 0 {
		return
	}
	for range 1 + w.rng.IntN(5) {
		m := w.history[w.rng.IntN(len(w.history))]
		to := w.nodes[w.rng.IntN(len(w.nodes))]
		if to == nd || !to.up || to.passive {
			continue
		}
		// A replay is a new delivery for the receiver (its dedup cache may
		// have been lost in a restart).
		w.send(nd, to, m)
	}
}

// altVersion returns another valid version of the byzantine node's block b:
// the same header with a body of one self-transfer of amount (a different
// amount gives a different body and block hash, and the same state root),
// executed on b's parent state like any proposer would.
func (w *world) altVersion(nd *simNode, b asf.Block, amount uint64) (asf.Block, bool) {
	if nd.exec == nil || nd.chain == nil {
		return asf.Block{}, false
	}
	parent, ok, err := nd.chain.HeaderByHash(b.Header.ParentHash)
	if err != nil || !ok {
		return asf.Block{}, false
	}
	me := tx.AddressOf(nd.byzKey().Public().(ed25519.PublicKey))
	acc, _, err := nd.exec.State().Account(parent.StateRoot, me)
	if err != nil {
		return asf.Block{}, false
	}
	t := &tx.Tx{Genesis: w.genesis, To: me, Amount: amount, Fee: w.spec.MinFee, Nonce: acc.Nonce}
	t.Sign(nd.byzKey())
	body := [][]byte{t.Encode()}
	res, err := nd.exec.State().Execute(parent.StateRoot, state.Env{Genesis: w.genesis, MinFee: w.spec.MinFee, Number: b.Header.Number, Proposer: me}, body, nil)
	if err != nil {
		return asf.Block{}, false
	}
	v := asf.Block{Header: b.Header, Extrinsics: body}
	v.Header.BodyRoot = asf.BodyRoot(body)
	v.Header.StateRoot = res.Root
	v.Header.Sign(nd.byzKey())
	return v, true
}

// badVersion returns a rule-breaking version of the byzantine node's block
// b, to publish instead of b (which stays in its own chain only): the same
// header on the same parent with a body of one transfer that
//
//   - replays a transfer already applied on the parent's chain (its nonce
//     is below the sender's), with the state root an executor without the
//     nonce check computes (mutant skip-nonce-check accepts it);
//   - overspends its own balance, with the state root an executor without
//     the balance check computes (the balance wraps around; mutant
//     skip-balance-check accepts it);
//   - or is a valid self-transfer under a wrong state root, the parent's
//     (mutant accept-bad-state-root accepts it).
//
// Honest nodes must reject each (verdict reject: the chain refuses it as
// asf.ErrInvalidBlock) and stay safe and live.
func (w *world) badVersion(nd *simNode, b asf.Block) (asf.Block, string, bool) {
	if nd.exec == nil || nd.chain == nil {
		return asf.Block{}, "", false
	}
	parent, ok, err := nd.chain.HeaderByHash(b.Header.ParentHash)
	if err != nil || !ok {
		return asf.Block{}, "", false
	}
	db := nd.exec.State()
	me := tx.AddressOf(nd.byzKey().Public().(ed25519.PublicKey))
	acc, _, err := db.Account(parent.StateRoot, me)
	if err != nil {
		return asf.Block{}, "", false
	}
	env := state.Env{Genesis: w.genesis, MinFee: w.spec.MinFee, Number: b.Header.Number, Proposer: me}
	var t *tx.Tx
	kind := []string{"replay", "overspend", "wrong-root"}[w.rng.IntN(3)]
	if kind == "replay" {
		// The latest finalized transfer its sender can still pay for.
		applied := w.check.st.applied
		for i := len(applied) - 1; i >= 0 && i >= len(applied)-32 && t == nil; i-- {
			c := applied[i]
			from, _, err := db.Account(parent.StateRoot, c.From)
			if err == nil && from.Nonce > c.Nonce && from.Balance >= c.Amount+c.Fee {
				t = c
			}
		}
		if t == nil {
			kind = "overspend"
		}
		env.Mutations.SkipNonceCheck = true
	}
	switch kind {
	case "overspend":
		t = &tx.Tx{Genesis: w.genesis, To: sinkAddress(0), Amount: acc.Balance + 10, Fee: w.spec.MinFee, Nonce: acc.Nonce}
		t.Sign(nd.byzKey())
		env.Mutations = state.Mutations{SkipBalanceCheck: true}
	case "wrong-root":
		t = &tx.Tx{Genesis: w.genesis, To: me, Amount: 1, Fee: w.spec.MinFee, Nonce: acc.Nonce}
		t.Sign(nd.byzKey())
	}
	body := [][]byte{t.Encode()}
	res, err := db.Execute(parent.StateRoot, env, body, nil)
	if err != nil {
		return asf.Block{}, "", false
	}
	v := asf.Block{Header: b.Header, Extrinsics: body}
	v.Header.BodyRoot = asf.BodyRoot(body)
	v.Header.StateRoot = res.Root
	if kind == "wrong-root" {
		v.Header.StateRoot = parent.StateRoot
	}
	v.Header.Sign(nd.byzKey())
	return v, kind, true
}

// removedVote: a validator whose key a hand-off removed, turned byzantine
// (byzBehaviour.removedVotes), got v, a vote of a set without its key: it
// signs the same link for its old set (the last one before v's that holds
// its key) with its old index, and for v's set with that old index (a
// signature with its own key at an index that is another key's, or none).
// Honest nodes past the hand-off must count neither. With oldSetCerts it
// also sends a certificate of its old set for the link, signed by a quorum
// of that set's keys (leaked keys: the long-range risk), to the nodes past
// that set's hand-off (one that is not past it, a lagging or a warp-syncing
// node, is the documented weak-subjectivity risk, out of scope).
func (w *world) removedVote(nd *simNode, v checkpoint.SignedVote) {
	if _, in := w.indexIn(nd.key, v.SetID); in || v.Genesis != w.genesis {
		return
	}
	old, found := v.SetID, false
	var idx checkpoint.ValidatorIndex
	for old > w.sched.Genesis.SetID && !found {
		old--
		idx, found = w.indexIn(nd.key, old)
	}
	if !found {
		return
	}
	bs := nd.byz
	if bs.signed == nil || len(bs.signed) >= 4096 {
		bs.signed = map[checkpoint.Link]bool{}
	}
	if bs.signed[v.Link()] {
		return
	}
	bs.signed[v.Link()] = true
	key := nd.byzKey()
	for _, set := range []uint64{old, v.SetID} {
		vote := v.Vote
		vote.SetID = set
		w.broadcastForged(nd, voteMsg(checkpoint.SignedVote{Vote: vote, Validator: idx, Signature: finalitySign(key, vote)}))
	}
	bs.forged += 2
	if !bs.b.oldSetCerts {
		return
	}
	set, _ := w.sched.Set(old)
	vote := v.Vote
	vote.SetID = old
	var votes []checkpoint.SignedVote
	for i, pub := range set.Keys {
		if len(votes) == set.Quorum() {
			break
		}
		for k := range w.keys {
			if w.pub(k).Equal(pub) {
				votes = append(votes, checkpoint.SignedVote{Vote: vote, Validator: checkpoint.ValidatorIndex(i), Signature: finalitySign(w.keys[k], vote)})
			}
		}
	}
	cert, err := checkpoint.NewCertificate(votes)
	if err != nil {
		return
	}
	m := certMsg(cert)
	for _, to := range w.nodes {
		if to != nd && to.up && to.eng != nil && to.eng.Gadget().Authorities().Set.SetID > old {
			w.send(nd, to, m)
		}
	}
	w.seenForged(m)
	w.record("%s sends a leaked-key certificate of set %d: %s -> %s", nd.name, old, cert.Source, cert.Target)
}
