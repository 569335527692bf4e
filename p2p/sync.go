package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// errLimit is wrapped when a length prefix exceeds the allowed size.
var errLimit = errors.New("length prefix over limit")

// writeDelimited writes the uvarint length of m's encoding followed by the
// encoding, in one write.
func writeDelimited(w io.Writer, m proto.Message, limit int) error {
	body, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if len(body) > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(body), limit)
	}
	buf := make([]byte, 0, binary.MaxVarintLen64+len(body))
	buf = binary.AppendUvarint(buf, uint64(len(body)))
	buf = append(buf, body...)
	_, err = w.Write(buf)
	return err
}

// readDelimited reads one uvarint-length-prefixed message of at most limit
// bytes into m.
func readDelimited(r *bufio.Reader, m proto.Message, limit int) error {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return fmt.Errorf("read length: %w", err)
	}
	if size > uint64(limit) {
		return fmt.Errorf("%w: %d bytes, limit %d", errLimit, size, limit)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if err := proto.Unmarshal(body, m); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// ---- server ----

// errorResponseLinger bounds how long a server waits for the client to read
// an error response before resetting the stream.
const errorResponseLinger = 2 * time.Second

func (n *Network) handleSyncStream(s network.Stream) {
	if !n.enter() {
		_ = s.Reset()
		return
	}
	defer n.leave()
	log := n.log.With(zap.Stringer("peer", s.Conn().RemotePeer()))
	deadline := time.Now().Add(n.syncServeTimeout)
	_ = s.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(n.ctx, deadline)
	defer cancel()

	var req flarepb.SyncRequest
	if err := readDelimited(bufio.NewReaderSize(s, 256), &req, MaxSyncRequestSize); err != nil {
		n.refuse(s, log, fmt.Sprintf("malformed request: %v", err))
		return
	}
	resp, problem := n.serve(ctx, &req)
	if problem != "" {
		n.refuse(s, log, problem)
		return
	}
	if err := writeDelimited(s, resp, responseLimit(&req)); err != nil {
		log.Debug("sync response not sent", zap.Error(err))
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// maxErrorLen bounds the error text of an error response (which must fit
// the smallest per-kind response limit, MaxStatusResponseSize).
const maxErrorLen = 512

// responseLimit is the largest encoded response to req, on both sides: the
// server never writes more, the client never reads more.
func responseLimit(req *flarepb.SyncRequest) int {
	switch req.GetRequest().(type) {
	case *flarepb.SyncRequest_Status:
		return MaxStatusResponseSize
	case *flarepb.SyncRequest_FinalityProof:
		return MaxFinalityProofResponseSize
	case *flarepb.SyncRequest_Votes:
		return MaxVotesResponseSize
	case *flarepb.SyncRequest_Blocks, *flarepb.SyncRequest_BlocksByHash, *flarepb.SyncRequest_Certificates:
		return MaxSyncResponseSize
	default:
		return MaxStatusResponseSize // an error response
	}
}

// refuse answers a malformed request with an error response, gives the client
// a moment to read it, and resets the stream.
func (n *Network) refuse(s network.Stream, log *zap.Logger, problem string) {
	log.Debug("refusing sync request", zap.String("problem", problem))
	if len(problem) > maxErrorLen {
		problem = problem[:maxErrorLen]
	}
	_ = s.SetDeadline(time.Now().Add(errorResponseLinger))
	if err := writeDelimited(s, &flarepb.SyncResponse{Version: SyncVersion, Error: problem}, MaxStatusResponseSize); err == nil {
		_ = s.CloseWrite()
		// Wait until the client has read the response (it closes its side
		// after reading) or the linger deadline passes; discard whatever
		// else it sends.
		_, _ = io.Copy(io.Discard, io.LimitReader(s, MaxSyncRequestSize))
	}
	_ = s.Reset()
}

// serve answers a decoded request; problem is non-empty for malformed
// requests.
func (n *Network) serve(ctx context.Context, req *flarepb.SyncRequest) (resp *flarepb.SyncResponse, problem string) {
	if req.GetVersion() != SyncVersion {
		return nil, fmt.Sprintf("unsupported version %d", req.GetVersion())
	}
	resp = &flarepb.SyncResponse{Version: SyncVersion}
	switch r := req.GetRequest().(type) {
	case *flarepb.SyncRequest_Status:
		resp.Status = n.syncH.Status(ctx)
		if resp.Status == nil {
			resp.Unavailable = true
		}
	case *flarepb.SyncRequest_Blocks:
		start, count, problem := checkRange(r.Blocks.GetStart(), r.Blocks.GetCount(), MaxBlocksPerRequest)
		if problem != "" {
			return nil, problem
		}
		blocks, unavailable := n.syncH.BlocksByRange(ctx, start, count)
		resp.Unavailable = unavailable
		budget := MaxSyncResponseSize - 64
		for _, b := range blocks {
			if b == nil || uint32(len(resp.Blocks)) == count {
				break
			}
			if h := b.GetHeader(); h != nil && h.GetNumber() == 0 {
				continue // the genesis block is never transmitted
			}
			size := protowire.SizeBytes(proto.Size(b)) + 1
			if size > budget {
				break // the client asks again for the rest
			}
			budget -= size
			resp.Blocks = append(resp.Blocks, b)
		}
	case *flarepb.SyncRequest_Certificates:
		start, count, problem := checkRange(r.Certificates.GetStart(), r.Certificates.GetCount(), MaxCertificatesPerRequest)
		if problem != "" {
			return nil, problem
		}
		certs, unavailable := n.syncH.CertificatesByRange(ctx, start, count)
		resp.Unavailable = unavailable
		budget := MaxSyncResponseSize - 64
		for _, c := range certs {
			if uint32(len(resp.Certificates)) == count {
				break
			}
			pc := checkpoint.CertificateToPB(c)
			size := protowire.SizeBytes(proto.Size(pc)) + 1
			if size > budget {
				break
			}
			budget -= size
			resp.Certificates = append(resp.Certificates, pc)
		}
	case *flarepb.SyncRequest_FinalityProof:
		p, ok := n.syncH.FinalityProof(ctx)
		if !ok || p == nil {
			resp.Unavailable = true
			break
		}
		pp := checkpoint.FinalityProofToPB(*p)
		if protowire.SizeBytes(proto.Size(pp))+1 > MaxFinalityProofResponseSize-64 {
			resp.Unavailable = true // cannot happen with certificates of at most MaxCertificateSignatures signatures
			break
		}
		resp.FinalityProof = pp
	case *flarepb.SyncRequest_Votes:
		// Cheapest first: key length, count.
		pub := r.Votes.GetPublicKey()
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Sprintf("public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
		}
		count := r.Votes.GetCount()
		if count == 0 {
			return nil, "count is zero"
		}
		count = min(count, MaxVotesPerRequest)
		from := r.Votes.GetFromTarget()
		votes, unavailable := n.syncH.VotesByValidator(ctx, ed25519.PublicKey(bytes.Clone(pub)), from, count)
		resp.Unavailable = unavailable
		budget := MaxVotesResponseSize - 64
		for _, v := range votes {
			if uint32(len(resp.Votes)) == count {
				break
			}
			pv := checkpoint.VoteToPB(v)
			size := protowire.SizeBytes(proto.Size(pv)) + 1
			if size > budget {
				break
			}
			budget -= size
			resp.Votes = append(resp.Votes, pv)
		}
	case *flarepb.SyncRequest_BlocksByHash:
		h, err := checkpoint.HashFromBytes(r.BlocksByHash.GetHash())
		if err != nil {
			return nil, fmt.Sprintf("hash is %d bytes, want %d", len(r.BlocksByHash.GetHash()), checkpoint.HashSize)
		}
		count := r.BlocksByHash.GetCount()
		if count == 0 {
			return nil, "count is zero"
		}
		count = min(count, MaxBlocksByHashPerRequest)
		blocks, unavailable := n.syncH.BlocksByHash(ctx, h, count)
		resp.Unavailable = unavailable
		budget := MaxSyncResponseSize - 64
		for _, b := range blocks {
			if b == nil || b.GetHeader().GetNumber() == 0 || uint32(len(resp.Blocks)) == count {
				break // the genesis block is never transmitted
			}
			size := protowire.SizeBytes(proto.Size(b)) + 1
			if size > budget {
				break // the client asks again from the oldest block's parent
			}
			budget -= size
			resp.Blocks = append(resp.Blocks, b)
		}
	default:
		return nil, "empty request"
	}
	return resp, ""
}

// checkRange validates a range request and clamps its count to limit.
func checkRange(start uint64, count uint32, limit uint32) (uint64, uint32, string) {
	if count == 0 {
		return 0, 0, "count is zero"
	}
	count = min(count, limit)
	if start > ^uint64(0)-uint64(count) {
		return 0, 0, "range overflows"
	}
	return start, count, ""
}

// ---- client ----

// request sends req to p on a new sync stream and returns the response. It
// never dials: p must be connected.
//
// The response is read with the limit of the request's kind
// (responseLimit); a longer response is ErrBadResponse.
func (n *Network) request(ctx context.Context, p peer.ID, req *flarepb.SyncRequest) (*flarepb.SyncResponse, error) {
	n.mu.Lock()
	started, closed := n.started, n.closed
	n.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case !started:
		return nil, ErrNotStarted
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.syncRequestTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	s, err := n.host.NewStream(network.WithNoDial(ctx, "sync request"), p, n.syncProto)
	if err != nil {
		return nil, fmt.Errorf("sync request to %s: open stream: %w", p, ctxErr(ctx, err))
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(deadline)

	if err := writeDelimited(s, req, MaxSyncRequestSize); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("sync request to %s: write: %w", p, ctxErr(ctx, err))
	}
	// The write side stays open until the response is read: a server that
	// refuses the request waits for our close before resetting the stream.
	var resp flarepb.SyncResponse
	if err := readDelimited(bufio.NewReader(s), &resp, responseLimit(req)); err != nil {
		_ = s.Reset()
		if errors.Is(err, errLimit) {
			return nil, fmt.Errorf("sync request to %s: %w: %w", p, ErrBadResponse, err)
		}
		return nil, fmt.Errorf("sync request to %s: read: %w", p, ctxErr(ctx, err))
	}
	_ = s.Close()
	if resp.GetError() != "" {
		return nil, fmt.Errorf("sync request to %s: %w: %s", p, ErrRemote, resp.GetError())
	}
	if resp.GetVersion() != SyncVersion {
		return nil, fmt.Errorf("sync request to %s: %w: version %d", p, ErrBadResponse, resp.GetVersion())
	}
	return &resp, nil
}

// ctxErr prefers the context's error (timeout, cancel) over the stream error
// it caused. The stream deadline is the context deadline and may fire a
// moment before the context notices.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// RequestStatus asks a connected peer for its chain status. A status of
// another chain is returned with an error wrapping checkpoint.ErrWrongChain.
func (n *Network) RequestStatus(ctx context.Context, p peer.ID) (*flarepb.Status, error) {
	resp, err := n.request(ctx, p, &flarepb.SyncRequest{
		Version: SyncVersion,
		Request: &flarepb.SyncRequest_Status{Status: &flarepb.StatusRequest{}},
	})
	if err != nil {
		return nil, err
	}
	st := resp.GetStatus()
	if st == nil {
		return nil, fmt.Errorf("status from %s: %w: no status", p, ErrBadResponse)
	}
	if g, err := checkpoint.HashFromBytes(st.GetGenesisHash()); err != nil || g != n.genesis {
		return st, fmt.Errorf("status from %s: %w", p, checkpoint.ErrWrongChain)
	}
	return st, nil
}

// RequestBlocks asks a connected peer for blocks start..start+count-1 (count
// is clamped to MaxBlocksPerRequest). The response may hold fewer blocks
// (size-bounded, or unavailable); unavailable reports that the peer pruned
// or does not know (part of) the range. Blocks are checked to be in the
// range in strictly increasing order; nothing else is verified.
func (n *Network) RequestBlocks(ctx context.Context, p peer.ID, start uint64, count uint32) ([]*flarepb.Block, bool, error) {
	resp, err := n.request(ctx, p, &flarepb.SyncRequest{
		Version: SyncVersion,
		Request: &flarepb.SyncRequest_Blocks{Blocks: &flarepb.BlocksByRange{Start: start, Count: count}},
	})
	if err != nil {
		return nil, false, err
	}
	count = min(count, MaxBlocksPerRequest)
	blocks := resp.GetBlocks()
	if uint64(len(blocks)) > uint64(count) {
		return nil, false, fmt.Errorf("blocks from %s: %w: %d blocks for count %d", p, ErrBadResponse, len(blocks), count)
	}
	end := start + uint64(count)
	for i, b := range blocks {
		if b.GetHeader() == nil {
			return nil, false, fmt.Errorf("blocks from %s: %w: block without header", p, ErrBadResponse)
		}
		num := b.GetHeader().GetNumber()
		if num < start || num >= end || (i > 0 && num <= blocks[i-1].GetHeader().GetNumber()) {
			return nil, false, fmt.Errorf("blocks from %s: %w: block %d out of order or outside [%d, %d)", p, ErrBadResponse, num, start, end)
		}
	}
	return blocks, resp.GetUnavailable(), nil
}

// RequestCertificates asks a connected peer for the certificates whose
// target checkpoint number is in [start, start+count) (count clamped to
// MaxCertificatesPerRequest). Certificates are shape-checked
// (checkpoint.CertificateFromPB), must be of this chain and in strictly
// increasing target order inside the range; signatures are not verified.
func (n *Network) RequestCertificates(ctx context.Context, p peer.ID, start uint64, count uint32) ([]checkpoint.Certificate, bool, error) {
	resp, err := n.request(ctx, p, &flarepb.SyncRequest{
		Version: SyncVersion,
		Request: &flarepb.SyncRequest_Certificates{Certificates: &flarepb.CertificatesByRange{Start: start, Count: count}},
	})
	if err != nil {
		return nil, false, err
	}
	count = min(count, MaxCertificatesPerRequest)
	pcs := resp.GetCertificates()
	if uint64(len(pcs)) > uint64(count) {
		return nil, false, fmt.Errorf("certificates from %s: %w: %d certificates for count %d", p, ErrBadResponse, len(pcs), count)
	}
	end := start + uint64(count)
	out := make([]checkpoint.Certificate, 0, len(pcs))
	for i, pc := range pcs {
		c, err := checkpoint.CertificateFromPB(pc)
		if err != nil {
			return nil, false, fmt.Errorf("certificates from %s: %w: %w", p, ErrBadResponse, err)
		}
		if c.Genesis != n.genesis {
			return nil, false, fmt.Errorf("certificates from %s: %w: %w", p, ErrBadResponse, checkpoint.ErrWrongChain)
		}
		t := c.Target.Number
		if t < start || t >= end || (i > 0 && t <= out[i-1].Target.Number) {
			return nil, false, fmt.Errorf("certificates from %s: %w: target %d out of order or outside [%d, %d)", p, ErrBadResponse, t, start, end)
		}
		out = append(out, c)
	}
	return out, resp.GetUnavailable(), nil
}

// RequestFinalityProof asks a connected peer for the proof of its finalized
// (and latest justified) checkpoint. The proof is shape-checked
// (checkpoint.FinalityProofFromPB) and must be of this chain; signatures
// are not verified. unavailable reports that the peer has none.
func (n *Network) RequestFinalityProof(ctx context.Context, p peer.ID) (*checkpoint.FinalityProof, bool, error) {
	resp, err := n.request(ctx, p, &flarepb.SyncRequest{
		Version: SyncVersion,
		Request: &flarepb.SyncRequest_FinalityProof{FinalityProof: &flarepb.FinalityProofRequest{}},
	})
	if err != nil {
		return nil, false, err
	}
	if resp.GetUnavailable() || resp.GetFinalityProof() == nil {
		return nil, true, nil
	}
	proof, err := checkpoint.FinalityProofFromPB(resp.GetFinalityProof())
	if err != nil {
		return nil, false, fmt.Errorf("finality proof from %s: %w: %w", p, ErrBadResponse, err)
	}
	if proof.Finalizing.Genesis != n.genesis || (proof.Justified != nil && proof.Justified.Genesis != n.genesis) {
		return nil, false, fmt.Errorf("finality proof from %s: %w: %w", p, ErrBadResponse, checkpoint.ErrWrongChain)
	}
	return &proof, false, nil
}

// RequestVotes asks a connected peer for the votes signed by the validator
// with key pub (32 bytes) that it stores, alone or inside a certificate,
// with target checkpoint number >= from, at most count (clamped to
// MaxVotesPerRequest), in increasing target order. Votes are shape-checked
// (checkpoint.VoteFromPB), must be of this chain, carry one and the same
// validator index, have a target >= from in non-decreasing order and no
// duplicate; signatures and the index's key are not verified (the caller
// checks them against its authority set). unavailable reports that the
// peer does not know the key or stores none of its votes.
func (n *Network) RequestVotes(ctx context.Context, p peer.ID, pub ed25519.PublicKey, from uint64, count uint32) ([]checkpoint.SignedVote, bool, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, false, fmt.Errorf("votes request: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	resp, err := n.request(ctx, p, &flarepb.SyncRequest{
		Version: SyncVersion,
		Request: &flarepb.SyncRequest_Votes{Votes: &flarepb.VotesByValidator{PublicKey: pub, FromTarget: from, Count: count}},
	})
	if err != nil {
		return nil, false, err
	}
	count = min(count, MaxVotesPerRequest)
	pvs := resp.GetVotes()
	if uint64(len(pvs)) > uint64(count) {
		return nil, false, fmt.Errorf("votes from %s: %w: %d votes for count %d", p, ErrBadResponse, len(pvs), count)
	}
	out := make([]checkpoint.SignedVote, 0, len(pvs))
	for i, pv := range pvs {
		v, err := checkpoint.VoteFromPB(pv)
		if err != nil {
			return nil, false, fmt.Errorf("votes from %s: %w: %w", p, ErrBadResponse, err)
		}
		if v.Genesis != n.genesis {
			return nil, false, fmt.Errorf("votes from %s: %w: %w", p, ErrBadResponse, checkpoint.ErrWrongChain)
		}
		t := v.Target.Number
		if t < from {
			return nil, false, fmt.Errorf("votes from %s: %w: target %d below %d", p, ErrBadResponse, t, from)
		}
		if i > 0 {
			prev := out[i-1]
			switch {
			case v.Validator != prev.Validator:
				return nil, false, fmt.Errorf("votes from %s: %w: votes of validators %d and %d", p, ErrBadResponse, prev.Validator, v.Validator)
			case t < prev.Target.Number:
				return nil, false, fmt.Errorf("votes from %s: %w: target %d after %d", p, ErrBadResponse, t, prev.Target.Number)
			case slices.Contains(out, v):
				return nil, false, fmt.Errorf("votes from %s: %w: duplicate vote for target %d", p, ErrBadResponse, t)
			}
		}
		out = append(out, v)
	}
	return out, resp.GetUnavailable(), nil
}

// RequestBlocksByHash asks a connected peer for the block with hash h and
// up to count-1 (count clamped to MaxBlocksByHashPerRequest) of its
// ancestors, newest first. Blocks are shape-checked like gossip blocks
// (never the genesis block; block 1 builds on this chain's genesis), must
// not exceed the count and must have strictly decreasing, consecutive
// numbers. The hashes are not checked here (package p2p does not compute
// block hashes): the caller must check that the first block's hash is h
// and that each block's hash is the parent hash of the block before it.
// unavailable reports that the peer does not know h.
func (n *Network) RequestBlocksByHash(ctx context.Context, p peer.ID, h checkpoint.Hash, count uint32) ([]*flarepb.Block, bool, error) {
	resp, err := n.request(ctx, p, &flarepb.SyncRequest{
		Version: SyncVersion,
		Request: &flarepb.SyncRequest_BlocksByHash{BlocksByHash: &flarepb.BlocksByHash{Hash: h[:], Count: count}},
	})
	if err != nil {
		return nil, false, err
	}
	count = min(count, MaxBlocksByHashPerRequest)
	blocks := resp.GetBlocks()
	if uint64(len(blocks)) > uint64(count) {
		return nil, false, fmt.Errorf("blocks by hash from %s: %w: %d blocks for count %d", p, ErrBadResponse, len(blocks), count)
	}
	for i, b := range blocks {
		if reason := checkBlock(b, n.genesis); reason != reasonNone {
			return nil, false, fmt.Errorf("blocks by hash from %s: %w: block %d: %s", p, ErrBadResponse, i, reason)
		}
		if i > 0 {
			if num, prev := b.GetHeader().GetNumber(), blocks[i-1].GetHeader().GetNumber(); num+1 != prev {
				return nil, false, fmt.Errorf("blocks by hash from %s: %w: block %d after block %d", p, ErrBadResponse, num, prev)
			}
		}
	}
	return blocks, resp.GetUnavailable(), nil
}
