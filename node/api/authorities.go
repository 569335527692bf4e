package api

import (
	"crypto/ed25519"
	"net/http"

	"github.com/flarechain/flare-node/consensus/finality"
)

// Authorities is the JSON document of GET /authorities: the authority set
// in force, where it started, and the scheduled changes after it.
type Authorities struct {
	SetID       uint64      `json:"set_id"`
	Authorities []Authority `json:"authorities"`
	Quorum      int         `json:"quorum"`
	// StartedAt is the checkpoint the set's hand-off certificate justified
	// (its first votes have it as source); the genesis checkpoint for the
	// genesis set.
	StartedAt BlockPoint `json:"started_at"`
	// HandOffCertificate is the certificate of the previous set that
	// handed off to this one (null for the genesis set).
	HandOffCertificate *Certificate `json:"hand_off_certificate"`
	// Pending are the scheduled changes after this set, in order.
	Pending []PendingChange `json:"pending"`
	// Voter: this node's key is in the set.
	Voter bool `json:"voter"`
}

// Authority is one key of a set.
type Authority struct {
	Index     uint32 `json:"index"`
	PublicKey string `json:"public_key"`
}

// PendingChange is a scheduled hand-off: set SetID takes over once the set
// before it has finalized a checkpoint numbered HandOff or above.
type PendingChange struct {
	SetID       uint64      `json:"set_id"`
	HandOff     uint64      `json:"hand_off"`
	Authorities []Authority `json:"authorities"`
}

func authorityList(keys []ed25519.PublicKey) []Authority {
	out := make([]Authority, 0, len(keys))
	for i, k := range keys {
		out = append(out, Authority{Index: uint32(i), PublicKey: hexString(k)})
	}
	return out
}

// authorityStatus is what the node reports: the gadget's view, or without
// the gadget the genesis set and every scheduled change.
func (s *Server) authorityStatus() finality.AuthorityStatus {
	if f := s.src.Finality; f != nil {
		return f.Authorities()
	}
	st := finality.AuthorityStatus{Set: s.info.Schedule.Genesis, Pending: s.info.Schedule.Changes}
	return st
}

func (s *Server) serveAuthorities(w http.ResponseWriter, r *http.Request) {
	st := s.authorityStatus()
	out := Authorities{SetID: st.Set.SetID, Authorities: authorityList(st.Set.Keys), Quorum: st.Set.Quorum(),
		StartedAt: BlockPoint{Number: 0, Hash: s.info.Genesis.String(), Block: 0}, Pending: []PendingChange{}, Voter: st.Voter}
	if h := st.HandOff; h != nil {
		out.StartedAt = BlockPoint{Number: h.Target.Number, Hash: h.Target.Hash.String(), Block: h.Target.Number * s.info.CheckpointInterval}
		out.HandOffCertificate = certificateJSON(*h)
	}
	for _, ch := range st.Pending {
		out.Pending = append(out.Pending, PendingChange{SetID: ch.SetID, HandOff: ch.HandOff, Authorities: authorityList(ch.Keys)})
	}
	writeJSON(w, http.StatusOK, out)
}
