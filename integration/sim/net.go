package sim

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/engine"
)

// netModel decides the fate of every message: delay, loss, duplication;
// and holds the partitions.
type netModel struct {
	rng *rand.Rand
	// base and jitter of one-way delays; a slow tail with probability
	// tailP adds up to tail.
	base, jitter, tail time.Duration
	tailP              float64
	dropP, dupP        float64
	// blocked[a][b]: messages from a to b are dropped (one-way partitions
	// are asymmetric entries). cut[a][b]: the connection is down (both
	// directions, peers see a disconnect).
	blocked map[[2]int]bool
	cut     map[[2]int]bool
	// filter, when set, drops gossip m from node from to node to when it
	// returns false (a scenario's targeted loss: reinstalled-validator).
	filter func(from, to int, m gossipMsg) bool
}

func newNetModel(rng *rand.Rand, sc *scenario) netModel {
	return netModel{
		rng:     rng,
		base:    sc.netBase,
		jitter:  sc.netJitter,
		tail:    sc.netTail,
		tailP:   sc.netTailP,
		dropP:   sc.dropP,
		dupP:    sc.dupP,
		blocked: make(map[[2]int]bool),
		cut:     make(map[[2]int]bool),
	}
}

func (m *netModel) connected(a, b int) bool { return !m.cut[[2]int{a, b}] }

func (m *netModel) passes(from, to int) bool {
	return !m.cut[[2]int{from, to}] && !m.blocked[[2]int{from, to}]
}

// gossipPasses: the link is up and the scenario's filter (if any) lets m
// through.
func (m *netModel) gossipPasses(from, to int, msg gossipMsg) bool {
	return m.passes(from, to) && (m.filter == nil || m.filter(from, to, msg))
}

func (m *netModel) delay() time.Duration {
	d := m.base
	if m.jitter > 0 {
		d += time.Duration(m.rng.Int64N(int64(m.jitter)))
	}
	if m.tailP > 0 && m.rng.Float64() < m.tailP && m.tail > 0 {
		d += time.Duration(m.rng.Int64N(int64(m.tail)))
	}
	return d
}

// fate returns the delays of the copies delivered (none: lost).
func (m *netModel) fate() []time.Duration {
	if m.dropP > 0 && m.rng.Float64() < m.dropP {
		return nil
	}
	out := []time.Duration{m.delay()}
	if m.dupP > 0 && m.rng.Float64() < m.dupP {
		out = append(out, m.delay())
	}
	return out
}

// msgKind is a gossip topic.
type msgKind int

const (
	kindBlock msgKind = iota + 1
	kindVote
	kindCert
)

func (k msgKind) String() string {
	switch k {
	case kindBlock:
		return "block"
	case kindVote:
		return "vote"
	default:
		return "cert"
	}
}

type msgID [32]byte

// gossipMsg is one gossip message.
type gossipMsg struct {
	kind  msgKind
	id    msgID
	block asf.Block
	vote  checkpoint.SignedVote
	cert  checkpoint.Certificate
}

func blockMsg(b asf.Block) gossipMsg {
	return gossipMsg{kind: kindBlock, id: msgID(b.Hash()), block: b}
}

func voteMsg(v checkpoint.SignedVote) gossipMsg {
	var idx [4]byte
	binary.BigEndian.PutUint32(idx[:], uint32(v.Validator))
	return gossipMsg{kind: kindVote, id: msgID(checkpoint.HashOf([]byte{byte(kindVote)}, v.SigningBytes(), idx[:], v.Signature[:])), vote: v}
}

func certMsg(c checkpoint.Certificate) gossipMsg {
	parts := [][]byte{{byte(kindCert)}, c.Vote().SigningBytes()}
	for _, s := range c.Signatures {
		var idx [4]byte
		binary.BigEndian.PutUint32(idx[:], uint32(s.Validator))
		parts = append(parts, idx[:], s.Signature[:])
	}
	return gossipMsg{kind: kindCert, id: msgID(checkpoint.HashOf(parts...)), cert: c}
}

func (m gossipMsg) describe() string {
	switch m.kind {
	case kindBlock:
		return "block #" + u64(m.block.Header.Number) + " " + shortHash(m.block.Hash())
	case kindVote:
		return "vote v" + u64(uint64(m.vote.Validator)) + " " + m.vote.Source.String() + "->" + m.vote.Target.String()
	default:
		return "cert " + m.cert.Source.String() + "->" + m.cert.Target.String() + " sigs " + u64(uint64(len(m.cert.Signatures)))
	}
}

func u64(n uint64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// gossip sends m from node from to every neighbour (flood, as gossipsub's
// mesh does for a validator network of this size).
func (w *world) gossip(from int, m gossipMsg, except int) {
	for _, to := range w.nodes {
		// Keyless peers are sync peers only: they forward nothing, so
		// gossip to them is not simulated.
		if to.id == from || to.id == except || !to.up || to.keyless != nil {
			continue
		}
		if !w.net.gossipPasses(from, to.id, m) {
			continue
		}
		for _, d := range w.net.fate() {
			w.after(d, to.id, "gossip", func() { w.deliverGossip(from, to, m) })
		}
	}
	w.check.onSent(w, from, m)
}

// deliverGossip hands a message to a node's engine; accepted messages are
// relayed.
func (w *world) deliverGossip(from int, to *simNode, m gossipMsg) {
	if to.seen[m.id] {
		return
	}
	to.seen[m.id] = true
	if to.passive {
		if m.kind == kindVote && to.byz != nil && to.byz.b.mirrorVotes {
			w.mirror(to, w.nodes[from], m.vote)
		}
		return
	}
	var verdict engine.Verdict
	var err error
	peer := engine.PeerID(w.nodes[from].name)
	switch m.kind {
	case kindBlock:
		verdict, err = to.eng.OnBlock(w.ctx, peer, m.block)
	case kindVote:
		verdict, err = to.eng.OnVote(w.ctx, peer, m.vote)
	case kindCert:
		verdict, err = to.eng.OnCertificate(w.ctx, peer, m.cert)
	}
	if err != nil {
		to.failed(err)
		return
	}
	w.record("%s <- %s %s: %s", to.name, w.nodes[from].name, m.describe(), verdict)
	if verdict == engine.Accept {
		w.relay(to.id, m, from)
	}
	if m.kind == kindVote && to.byz != nil && to.byz.b.removedVotes {
		w.removedVote(to, m.vote)
	}
}

// relay forwards an accepted message (not counted as the node's own
// broadcast).
func (w *world) relay(from int, m gossipMsg, except int) {
	for _, to := range w.nodes {
		if to.id == from || to.id == except || !to.up || to.keyless != nil || !w.net.gossipPasses(from, to.id, m) {
			continue
		}
		for _, d := range w.net.fate() {
			w.after(d, to.id, "gossip", func() { w.deliverGossip(from, to, m) })
		}
	}
}

// nodeNet is a node's engine.Network.
type nodeNet struct{ nd *simNode }

func (n *nodeNet) PublishBlock(b asf.Block) {
	n.nd.w.noteBlock(b)
	if n.nd.byz != nil && n.nd.byz.b.splitCheckpoints {
		return // byzAuthored splits or withholds it
	}
	if w := n.nd.w; n.nd.byz != nil && n.nd.byz.b.badBlocks && w.rng.IntN(2) == 0 {
		if bad, kind, ok := w.badVersion(n.nd, b); ok {
			w.noteBlock(bad)
			w.record("%s publishes a bad version (%s) of #%d %s: %s", n.nd.name, kind, b.Header.Number, shortHash(b.Hash()), shortHash(bad.Hash()))
			n.publish(blockMsg(bad))
			return
		}
	}
	n.publish(blockMsg(b))
}

func (n *nodeNet) PublishVote(v checkpoint.SignedVote) {
	n.publish(voteMsg(v))
	if n.nd.byz != nil {
		n.nd.w.byzVoted(n.nd, v)
	}
}

func (n *nodeNet) PublishCertificate(c checkpoint.Certificate) { n.publish(certMsg(c)) }

func (n *nodeNet) publish(m gossipMsg) {
	nd := n.nd
	nd.seen[m.id] = true
	nd.w.gossip(nd.id, m, -1)
}

// Request delivers a sync request to the peer, which answers from its
// engine's Serve methods.
func (n *nodeNet) Request(peer engine.PeerID, id uint64, req engine.Request) {
	w := n.nd.w
	from := n.nd
	to := w.nodeByName(string(peer))
	if to != nil && to.keyless != nil && w.net.passes(from.id, to.id) {
		w.keylessRequest(from, to, id, req)
		return
	}
	if to == nil || to.passive || !w.net.passes(from.id, to.id) {
		w.record("%s -> %s request %d %s: lost (no link)", from.name, peer, id, req.Kind)
		return // lost: the requester times out
	}
	fates := w.net.fate()
	if len(fates) == 0 {
		w.record("%s -> %s request %d %s: dropped", from.name, peer, id, req.Kind)
		return
	}
	gen := from.gen
	w.after(fates[0], to.id, "request", func() {
		if to.eng == nil {
			return
		}
		resp := to.eng.Serve(w.ctx, req)
		if to.byz != nil && to.byz.b.stripHandOffs && resp.Proof != nil && len(resp.Proof.HandOffs) > 0 {
			p := *resp.Proof
			w.record("%s strips the %d hand-offs from its finality proof for %s", to.name, len(p.HandOffs), from.name)
			p.HandOffs = nil
			resp.Proof = &p
		}
		if !w.net.passes(to.id, from.id) {
			return
		}
		back := w.net.fate()
		if len(back) == 0 {
			return
		}
		w.after(back[0], from.id, "response", func() {
			if from.gen != gen {
				return
			}
			if err := from.eng.OnResponse(w.ctx, engine.PeerID(to.name), id, resp); err != nil {
				from.failed(err)
			}
		})
	})
}

func (w *world) nodeByName(name string) *simNode {
	for _, nd := range w.nodes {
		if nd.name == name {
			return nd
		}
	}
	return nil
}
