package api

import (
	"net/http"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// maxLevelScan bounds the checkpoint numbers above the justified one that
// /status looks at for the highest one with votes.
const maxLevelScan = 64

// Level is the highest checkpoint at one level of the ascending scale.
type Level struct {
	// Level is the level's name (checkpoint.Level.String).
	Level      string `json:"level"`
	Checkpoint uint64 `json:"checkpoint"`
	Hash       string `json:"hash"`
	// Block is the checkpoint's block number.
	Block uint64 `json:"block"`
	// Weight is the number of distinct validators counted for the link
	// (0 when not known, e.g. for a finalized checkpoint restored without
	// its votes); Quorum is floor(2n/3)+1.
	Weight int `json:"weight"`
	Quorum int `json:"quorum"`
}

// Status is the JSON document of GET /status.
type Status struct {
	Chain     string `json:"chain"`
	Genesis   string `json:"genesis"`
	PeerID    string `json:"peer_id"`
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	Role      Role   `json:"role"`
	// SetID is the authority set in force; Authorities its size, Quorum
	// floor(2n/3)+1.
	SetID              uint64 `json:"set_id"`
	Authorities        int    `json:"authorities"`
	Quorum             int    `json:"quorum"`
	CheckpointInterval uint64 `json:"checkpoint_interval"`
	SlotDurationMs     int64  `json:"slot_duration_ms"`
	Peers              int    `json:"peers"`
	// PeersInbound and PeersOutbound split Peers by the direction of each
	// peer's oldest connection.
	PeersInbound  int    `json:"peers_inbound"`
	PeersOutbound int    `json:"peers_outbound"`
	Best          uint64 `json:"best"`
	BestHash      string `json:"best_hash"`
	// Justified and Finalized are checkpoint numbers (0 without ASF).
	Justified     uint64 `json:"justified"`
	JustifiedHash string `json:"justified_hash"`
	Finalized     uint64 `json:"finalized"`
	FinalizedHash string `json:"finalized_hash"`
	// Levels summarizes the ascending scale, lowest level first: the
	// highest checkpoint at each level that has one (empty without ASF).
	Levels             []Level `json:"levels"`
	Syncing            bool    `json:"syncing"`
	SignerInitialising bool    `json:"signer_initialising"`
	Halted             bool    `json:"halted"`
	Halts              []Halt  `json:"halts"`
	// LastFinalizedAt is when finality last advanced in this process (null
	// before); SecondsSinceFinality is how long ago (-1 before).
	LastFinalizedAt      *time.Time `json:"last_finalized_at"`
	SecondsSinceFinality float64    `json:"seconds_since_finality"`
}

func (s *Server) status() Status {
	i := s.info
	best := s.src.Chain.Best()
	st := Status{
		Chain: i.Chain, Genesis: i.Genesis.String(), PeerID: i.PeerID,
		Version: i.Version, Commit: i.Commit, GoVersion: i.GoVersion, Role: i.Role,
		Authorities: i.Authorities, Quorum: i.Quorum(), CheckpointInterval: i.CheckpointInterval,
		SlotDurationMs: i.SlotDuration.Milliseconds(),
		Best:           best.Number, BestHash: best.Hash().String(),
		JustifiedHash: i.Genesis.String(), FinalizedHash: i.Genesis.String(),
		Levels: []Level{}, Halts: []Halt{},
		Syncing: s.src.Engine.Syncing(), SignerInitialising: s.src.Engine.SignerPending(),
		SecondsSinceFinality: -1,
	}
	st.PeersInbound, st.PeersOutbound = s.src.Network.PeerCounts()
	st.Peers = st.PeersInbound + st.PeersOutbound
	if at := s.src.Engine.LastFinalizedAt(); !at.IsZero() {
		st.LastFinalizedAt = &at
		st.SecondsSinceFinality = s.src.Now().Sub(at).Seconds()
	}
	st.SetID = i.Schedule.Genesis.SetID
	if f := s.src.Finality; f != nil {
		set := f.Authorities().Set
		st.SetID, st.Authorities, st.Quorum = set.SetID, set.Len(), set.Quorum()
		j, fin := f.LatestJustified(), f.LatestFinalized()
		st.Justified, st.JustifiedHash = j.Number, j.Hash.String()
		st.Finalized, st.FinalizedHash = fin.Number, fin.Hash.String()
		st.Halted = f.Halted()
		if st.Halted {
			st.Halts = haltsJSON(f.Halts())
		}
		st.Levels = s.levels(f, best.Number/i.CheckpointInterval, j, fin, st.Quorum)
	}
	return st
}

// levels returns the highest checkpoint with votes above the justified one
// (looking at most maxLevelScan numbers down from the head's checkpoint),
// the justified and the finalized checkpoint, lowest level first.
func (s *Server) levels(f Finality, head uint64, j, fin checkpoint.Checkpoint, q int) []Level {
	var out []Level
	for n := head; n > j.Number && head-n < maxLevelScan; n-- {
		if st := f.Status(n); st.Level == checkpoint.LevelPreCommitment {
			out = append(out, Level{Level: st.Level.String(), Checkpoint: n, Hash: st.Hash.String(),
				Block: n * s.info.CheckpointInterval, Weight: st.Weight, Quorum: q})
			break
		}
	}
	for _, cp := range []struct {
		l  checkpoint.Level
		cp checkpoint.Checkpoint
	}{{checkpoint.LevelCommitment, j}, {checkpoint.LevelFinality, fin}} {
		w := 0
		if cp.cp.Number > 0 {
			w = f.Status(cp.cp.Number).Weight
		}
		out = append(out, Level{Level: cp.l.String(), Checkpoint: cp.cp.Number, Hash: cp.cp.Hash.String(),
			Block: cp.cp.Number * s.info.CheckpointInterval, Weight: w, Quorum: q})
	}
	return out
}

func (s *Server) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}
