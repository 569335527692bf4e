package finality

import (
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// CertWrite is one synced certificate write: the certificate and the
// justified and finalized pointers it raises (nil: unchanged).
type CertWrite struct {
	Cert      checkpoint.Certificate
	Justified *checkpoint.Checkpoint
	Finalized *checkpoint.Checkpoint
	// Pending: the certificate's source is not justified yet; it is stored
	// so that a restart finds it, without pointers.
	Pending bool
}

// MessageKind is the kind of an outgoing message.
type MessageKind int

// Outgoing message kinds.
const (
	MsgVote MessageKind = iota + 1
	MsgCertificate
)

// Message is a vote or certificate to broadcast.
type Message struct {
	Kind MessageKind
	Vote checkpoint.SignedVote
	Cert checkpoint.Certificate
	// Rebroadcast marks a message sent again because finality stalled.
	Rebroadcast bool
}

// EventKind is the kind of an Event.
type EventKind int

// Event kinds.
const (
	EventJustified EventKind = iota + 1
	EventFinalized
	EventHalted
	// EventHandOff: set SetID took over after the hand-off certificate
	// finalized Previous and justified Checkpoint.
	EventHandOff
)

// Event is a change of the finality state reported to the node once
// everything it depends on is durable.
type Event struct {
	Kind       EventKind
	Checkpoint checkpoint.Checkpoint
	// Previous is the finalized checkpoint before an EventFinalized.
	Previous checkpoint.Checkpoint
	Halt     checkpoint.Halt
	// SetID is the authority set in force after an EventHandOff.
	SetID uint64
}

// Ready is what the core asks its driver to do, in this order:
//
//  1. persist Halts and Evidence (synced),
//  2. persist Certificates in order (each one synced batch with the
//     pointers it raises), then HandOffs (synced),
//  3. store Votes (unsynced: a lost peer vote is re-gossiped),
//  4. if Sign is set, sign it through the slashing-protected signer (whose
//     record is synced before the signature exists) and hand the result to
//     Core.OwnVoteSigned, which queues its storage and broadcast,
//  5. broadcast Messages, in order,
//  6. report Events, in order.
//
// The core's memory is already updated; nothing in steps 5 and 6 may happen
// before steps 1 to 4 are durable, and a failure in steps 1 to 4 is fatal:
// the driver stops and the node exits (memory is ahead of the disk).
type Ready struct {
	Halts        []checkpoint.Halt
	Evidence     []checkpoint.Evidence
	Certificates []CertWrite
	// HandOffs are hand-off certificates to persist (after Certificates).
	HandOffs []checkpoint.Certificate
	Votes    []checkpoint.SignedVote
	Sign     *checkpoint.Vote
	Messages []Message
	Events   []Event
	// Logs are notable outcomes for the driver to log (after persisting).
	Logs []LogEntry
}

// Empty reports whether there is nothing to do.
func (r *Ready) Empty() bool {
	return len(r.Halts) == 0 && len(r.Evidence) == 0 && len(r.Certificates) == 0 && len(r.HandOffs) == 0 && len(r.Votes) == 0 &&
		r.Sign == nil && len(r.Messages) == 0 && len(r.Events) == 0 && len(r.Logs) == 0
}

// LogKind classifies a LogEntry.
type LogKind int

// Log kinds.
const (
	LogEvidence LogKind = iota + 1
	LogConflictingFinality
	LogDoppelganger
	LogStalled
	LogNotVoting
)

// LogEntry is a notable outcome the driver logs once the state it describes
// is durable.
type LogEntry struct {
	Kind     LogKind
	Evidence *checkpoint.Evidence
	Halt     *checkpoint.Halt
	Text     string
	Checkpoint,
	Other checkpoint.Checkpoint
}
