package chainspec

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Limits enforced by Validate.
const (
	// MinSlotDurationMs is the shortest slot a spec may declare.
	MinSlotDurationMs = 100
	// MaxSlotDurationMs is the longest slot a spec may declare (one hour).
	MaxSlotDurationMs = 3_600_000
	// MaxAuthorities bounds the authority set (it matches the largest
	// certificate a node decodes).
	MaxAuthorities = checkpoint.MaxCertificateSignatures
	// MaxSpecFileSize bounds the size of a spec file read by Load.
	MaxSpecFileSize = 1 << 20
)

var (
	// ErrUnknownChain is returned by Builtin and Resolve for a name that is
	// neither a builtin chain nor an existing file.
	ErrUnknownChain = errors.New("unknown chain")
	// ErrInvalidSpec is returned (wrapped with the reason) for a spec that
	// cannot be decoded or breaks a rule of Validate.
	ErrInvalidSpec = errors.New("invalid chain spec")
	// ErrUnknownDevKey is returned by DevKey for a name outside DevKeyNames.
	ErrUnknownDevKey = errors.New("unknown dev key")
)

// Authority is one block producer and checkpoint voter.
type Authority struct {
	// Name is a human readable label (logs only).
	Name string `json:"name"`
	// PublicKey is the 32-byte ed25519 public key in hex (64 characters,
	// an optional 0x prefix is accepted).
	PublicKey string `json:"public_key"`
}

// Spec is a chain specification.
type Spec struct {
	// Name is the human readable chain name.
	Name string `json:"name"`
	// ID is the short machine identifier ([a-z0-9_-], e.g. "local").
	ID string `json:"id"`
	// NetworkID separates p2p networks (gossip topics, protocol ids).
	NetworkID string `json:"network_id"`
	// GenesisTimestampMs is the Unix time in milliseconds at which slot 0
	// starts; it is also the genesis block timestamp.
	GenesisTimestampMs uint64 `json:"genesis_timestamp_ms"`
	// SlotDurationMs is the length of one block production slot.
	SlotDurationMs uint64 `json:"slot_duration_ms"`
	// CheckpointInterval is the number of blocks between checkpoints:
	// checkpoint c is the block at height c*CheckpointInterval.
	CheckpointInterval uint64 `json:"checkpoint_interval"`
	// SetID is the id of the authority set below.
	SetID uint64 `json:"set_id"`
	// Authorities is the ordered authority set; slot s is produced by
	// Authorities[s mod len].
	Authorities []Authority `json:"authorities"`
	// MinFee is the smallest fee a transaction may pay (paid to the block
	// proposer).
	MinFee uint64 `json:"min_fee"`
	// Balances are the genesis accounts. Their sum, the total issuance,
	// must fit in 64 bits; no address may appear twice.
	Balances []Balance `json:"balances"`
	// AuthorityChanges are the scheduled hand-offs after the genesis set, in
	// set id order (optional; a spec without changes keeps one authority
	// set forever). Set k+1 takes over once set k has finalized a
	// checkpoint numbered HandOff or above; Validate applies
	// checkpoint.Schedule.Validate to them.
	AuthorityChanges []AuthorityChange `json:"authority_changes,omitempty"`
}

// AuthorityChange is one scheduled hand-off of a spec (a
// checkpoint.SetChange in JSON).
type AuthorityChange struct {
	// SetID is the id of the new set: the spec's set_id plus the change's
	// position (1 for the first change).
	SetID uint64 `json:"set_id"`
	// HandOff is the checkpoint number at or above which the previous set
	// hands over to this one.
	HandOff uint64 `json:"hand_off"`
	// Authorities are the new set's ed25519 public keys in order, each in
	// the format of Authority.PublicKey (64 hex characters, an optional 0x
	// prefix).
	Authorities []string `json:"authorities"`
}

// Balance is one genesis account.
type Balance struct {
	// Address is the account in its text form: "0x" and 64 hex characters
	// (an ed25519 public key).
	Address string `json:"address"`
	// Balance is the genesis balance, a decimal string in JSON (64-bit
	// integers do not survive JavaScript's numbers).
	Balance uint64 `json:"balance,string"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Validate checks every rule a spec must obey: non-empty name, a valid id
// and network id, a genesis timestamp, a slot duration between
// MinSlotDurationMs and MaxSlotDurationMs, a checkpoint interval of at least
// one block, between 1 and MaxAuthorities authorities with distinct names
// and distinct, well-formed ed25519 public keys, genesis balances (see
// TotalIssuance), and authority changes with well-formed keys (at most
// MaxAuthorities each) that pass checkpoint.Schedule.Validate after the
// genesis set.
func (s *Spec) Validate() error {
	if s == nil {
		return fmt.Errorf("%w: nil spec", ErrInvalidSpec)
	}
	switch {
	case strings.TrimSpace(s.Name) == "":
		return fmt.Errorf("%w: name is empty", ErrInvalidSpec)
	case !idPattern.MatchString(s.ID):
		return fmt.Errorf("%w: id %q must match %s", ErrInvalidSpec, s.ID, idPattern)
	case !idPattern.MatchString(s.NetworkID):
		return fmt.Errorf("%w: network_id %q must match %s", ErrInvalidSpec, s.NetworkID, idPattern)
	case s.GenesisTimestampMs == 0:
		return fmt.Errorf("%w: genesis_timestamp_ms is not set", ErrInvalidSpec)
	case s.SlotDurationMs < MinSlotDurationMs:
		return fmt.Errorf("%w: slot_duration_ms %d is below %d", ErrInvalidSpec, s.SlotDurationMs, MinSlotDurationMs)
	case s.SlotDurationMs > MaxSlotDurationMs:
		return fmt.Errorf("%w: slot_duration_ms %d is above %d", ErrInvalidSpec, s.SlotDurationMs, MaxSlotDurationMs)
	case s.CheckpointInterval < 1:
		return fmt.Errorf("%w: checkpoint_interval must be at least 1", ErrInvalidSpec)
	case len(s.Authorities) == 0:
		return fmt.Errorf("%w: no authorities", ErrInvalidSpec)
	case len(s.Authorities) > MaxAuthorities:
		return fmt.Errorf("%w: %d authorities, at most %d", ErrInvalidSpec, len(s.Authorities), MaxAuthorities)
	}
	if s.GenesisTimestampMs > uint64(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()) {
		return fmt.Errorf("%w: genesis_timestamp_ms %d is out of range", ErrInvalidSpec, s.GenesisTimestampMs)
	}
	names := make(map[string]int, len(s.Authorities))
	keys := make(map[string]int, len(s.Authorities))
	for i, a := range s.Authorities {
		if strings.TrimSpace(a.Name) == "" {
			return fmt.Errorf("%w: authority %d has no name", ErrInvalidSpec, i)
		}
		if j, dup := names[a.Name]; dup {
			return fmt.Errorf("%w: authorities %d and %d are both named %q", ErrInvalidSpec, j, i, a.Name)
		}
		names[a.Name] = i
		pub, err := parsePublicKey(a.PublicKey)
		if err != nil {
			return fmt.Errorf("%w: authority %d (%s): %v", ErrInvalidSpec, i, a.Name, err)
		}
		k := string(pub)
		if j, dup := keys[k]; dup {
			return fmt.Errorf("%w: authorities %d and %d have the same public key", ErrInvalidSpec, j, i)
		}
		keys[k] = i
	}
	if _, err := s.TotalIssuance(); err != nil {
		return err
	}
	return s.validateChanges()
}

// validateChanges decodes every key of AuthorityChanges strictly and applies
// checkpoint.Schedule.Validate to the genesis set and the changes. The error
// names the first change that breaks a rule.
func (s *Spec) validateChanges() error {
	if len(s.AuthorityChanges) == 0 {
		return nil
	}
	if uint64(len(s.AuthorityChanges)) > math.MaxUint64-s.SetID {
		return fmt.Errorf("%w: authority_changes: %d changes after set_id %d overflow the 64-bit set id", ErrInvalidSpec, len(s.AuthorityChanges), s.SetID)
	}
	genesis, err := s.PublicKeys()
	if err != nil {
		return err
	}
	sched := checkpoint.Schedule{Genesis: checkpoint.AuthoritySet{SetID: s.SetID, Keys: genesis}}
	for i, ch := range s.AuthorityChanges {
		if len(ch.Authorities) > MaxAuthorities {
			return fmt.Errorf("%w: %s: %d authorities, at most %d", ErrInvalidSpec, changeName(i, ch), len(ch.Authorities), MaxAuthorities)
		}
		keys := make([]ed25519.PublicKey, len(ch.Authorities))
		for j, k := range ch.Authorities {
			if keys[j], err = parsePublicKey(k); err != nil {
				return fmt.Errorf("%w: %s: authority %d: %v", ErrInvalidSpec, changeName(i, ch), j, err)
			}
		}
		sched.Changes = append(sched.Changes, checkpoint.SetChange{SetID: ch.SetID, HandOff: ch.HandOff, Keys: keys})
	}
	if err := sched.Validate(); err != nil {
		// Validate stops at the first bad change: the shortest failing
		// prefix ends with it.
		for i := range sched.Changes {
			prefix := checkpoint.Schedule{Genesis: sched.Genesis, Changes: sched.Changes[:i+1]}
			if perr := prefix.Validate(); perr != nil {
				return fmt.Errorf("%w: %s: %w", ErrInvalidSpec, changeName(i, s.AuthorityChanges[i]), perr)
			}
		}
		return fmt.Errorf("%w: authority_changes: %w", ErrInvalidSpec, err)
	}
	return nil
}

func changeName(i int, ch AuthorityChange) string {
	return fmt.Sprintf("authority_changes[%d] (set_id %d, hand_off %d)", i, ch.SetID, ch.HandOff)
}

// GenesisAccount is a decoded genesis balance.
type GenesisAccount struct {
	PublicKey ed25519.PublicKey
	Balance   uint64
}

// GenesisAccounts returns the decoded genesis balances in spec order. It
// fails on a malformed or repeated address.
func (s *Spec) GenesisAccounts() ([]GenesisAccount, error) {
	out := make([]GenesisAccount, 0, len(s.Balances))
	seen := make(map[string]int, len(s.Balances))
	for i, b := range s.Balances {
		if !strings.HasPrefix(b.Address, "0x") {
			return nil, fmt.Errorf("%w: balance %d: address %q must start with 0x", ErrInvalidSpec, i, b.Address)
		}
		pub, err := parsePublicKey(b.Address)
		if err != nil {
			return nil, fmt.Errorf("%w: balance %d: address: %v", ErrInvalidSpec, i, err)
		}
		if j, dup := seen[string(pub)]; dup {
			return nil, fmt.Errorf("%w: balances %d and %d are for the same address", ErrInvalidSpec, j, i)
		}
		seen[string(pub)] = i
		out = append(out, GenesisAccount{PublicKey: pub, Balance: b.Balance})
	}
	return out, nil
}

// TotalIssuance returns the sum of the genesis balances, or an error when it
// does not fit in 64 bits or an address is malformed. Execution conserves it:
// fees move to the proposer, nothing is minted or burned.
func (s *Spec) TotalIssuance() (uint64, error) {
	accs, err := s.GenesisAccounts()
	if err != nil {
		return 0, err
	}
	var total uint64
	for i, a := range accs {
		if total+a.Balance < total {
			return 0, fmt.Errorf("%w: balance %d: total issuance overflows 64 bits", ErrInvalidSpec, i)
		}
		total += a.Balance
	}
	return total, nil
}

func parsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(s) != 2*ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key must be %d hex characters, got %d", 2*ed25519.PublicKeySize, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("public key is not hex: %v", err)
	}
	if bytes.Equal(b, make([]byte, ed25519.PublicKeySize)) {
		return nil, errors.New("public key is all zeros")
	}
	return ed25519.PublicKey(b), nil
}

// CanonicalJSON returns the deterministic encoding of the spec that Hash
// covers: the fields in declaration order, no whitespace, public keys as
// lowercase hex without prefix; authority_changes is written (after
// balances) only when there are changes, so a spec without them encodes as
// before the field existed. Two specs that differ only in key casing, key
// prefix or JSON formatting have the same canonical encoding. docs/wire.md
// ("Chain identity") specifies it byte for byte.
func (s *Spec) CanonicalJSON() []byte {
	var b bytes.Buffer
	b.WriteString(`{"name":`)
	writeString(&b, s.Name)
	b.WriteString(`,"id":`)
	writeString(&b, s.ID)
	b.WriteString(`,"network_id":`)
	writeString(&b, s.NetworkID)
	b.WriteString(`,"genesis_timestamp_ms":`)
	b.WriteString(strconv.FormatUint(s.GenesisTimestampMs, 10))
	b.WriteString(`,"slot_duration_ms":`)
	b.WriteString(strconv.FormatUint(s.SlotDurationMs, 10))
	b.WriteString(`,"checkpoint_interval":`)
	b.WriteString(strconv.FormatUint(s.CheckpointInterval, 10))
	b.WriteString(`,"set_id":`)
	b.WriteString(strconv.FormatUint(s.SetID, 10))
	b.WriteString(`,"authorities":[`)
	for i, a := range s.Authorities {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":`)
		writeString(&b, a.Name)
		b.WriteString(`,"public_key":`)
		key := a.PublicKey
		if pub, err := parsePublicKey(key); err == nil {
			key = hex.EncodeToString(pub)
		}
		writeString(&b, key)
		b.WriteByte('}')
	}
	b.WriteString(`],"min_fee":`)
	b.WriteString(strconv.FormatUint(s.MinFee, 10))
	b.WriteString(`,"balances":[`)
	for i, a := range s.Balances {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"address":`)
		addr := a.Address
		if pub, err := parsePublicKey(addr); err == nil && strings.HasPrefix(addr, "0x") {
			addr = "0x" + hex.EncodeToString(pub)
		}
		writeString(&b, addr)
		b.WriteString(`,"balance":"`)
		b.WriteString(strconv.FormatUint(a.Balance, 10))
		b.WriteString(`"}`)
	}
	b.WriteByte(']')
	// A spec without changes has no authority_changes member at all, so
	// its encoding (and genesis hash) is the one from before the field.
	if len(s.AuthorityChanges) > 0 {
		b.WriteString(`,"authority_changes":[`)
		for i, ch := range s.AuthorityChanges {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"set_id":`)
			b.WriteString(strconv.FormatUint(ch.SetID, 10))
			b.WriteString(`,"hand_off":`)
			b.WriteString(strconv.FormatUint(ch.HandOff, 10))
			b.WriteString(`,"authorities":[`)
			for j, key := range ch.Authorities {
				if j > 0 {
					b.WriteByte(',')
				}
				if pub, err := parsePublicKey(key); err == nil {
					key = hex.EncodeToString(pub)
				}
				writeString(&b, key)
			}
			b.WriteString(`]}`)
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.Bytes()
}

// writeString writes s as a JSON string. encoding/json's string encoding is
// deterministic (it escapes <, > and & and invalid UTF-8 the same way every
// time), so it is used for the escaping only.
func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}

// Hash returns the chain identity: BLAKE2b-256 of CanonicalJSON.
func (s *Spec) Hash() checkpoint.Hash { return checkpoint.HashOf(s.CanonicalJSON()) }

// PublicKeys returns the decoded authority keys in order. It fails on a
// spec that does not pass Validate.
func (s *Spec) PublicKeys() ([]ed25519.PublicKey, error) {
	keys := make([]ed25519.PublicKey, len(s.Authorities))
	for i, a := range s.Authorities {
		pub, err := parsePublicKey(a.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: authority %d (%s): %v", ErrInvalidSpec, i, a.Name, err)
		}
		keys[i] = pub
	}
	return keys, nil
}

// AuthoritySet returns the checkpoint authority set of the spec, bound to
// Hash(). The spec must pass Validate; a key that does not decode is left
// nil (and then never verifies a signature).
func (s *Spec) AuthoritySet() checkpoint.AuthoritySet {
	set := checkpoint.AuthoritySet{Genesis: s.Hash(), SetID: s.SetID, Keys: make([]ed25519.PublicKey, len(s.Authorities))}
	for i, a := range s.Authorities {
		if pub, err := parsePublicKey(a.PublicKey); err == nil {
			set.Keys[i] = pub
		}
	}
	return set
}

// Schedule returns the authority schedule of the spec: the genesis set
// exactly as AuthoritySet returns it (bound to Hash(); a caller that binds
// votes to the genesis block hash sets Genesis.Genesis, which every later
// set of the schedule shares) and one checkpoint.SetChange per
// AuthorityChanges entry, in order. A spec without changes gives
// checkpoint.StaticSchedule(s.AuthoritySet()). The spec must pass Validate;
// a key that does not decode is left nil.
func (s *Spec) Schedule() checkpoint.Schedule {
	sched := checkpoint.StaticSchedule(s.AuthoritySet())
	for _, ch := range s.AuthorityChanges {
		keys := make([]ed25519.PublicKey, len(ch.Authorities))
		for i, k := range ch.Authorities {
			if pub, err := parsePublicKey(k); err == nil {
				keys[i] = pub
			}
		}
		sched.Changes = append(sched.Changes, checkpoint.SetChange{SetID: ch.SetID, HandOff: ch.HandOff, Keys: keys})
	}
	return sched
}

// SlotDuration returns the slot length.
func (s *Spec) SlotDuration() time.Duration {
	return time.Duration(s.SlotDurationMs) * time.Millisecond
}

// GenesisTime returns the start of slot 0 (UTC).
func (s *Spec) GenesisTime() time.Time {
	return time.UnixMilli(int64(s.GenesisTimestampMs)).UTC()
}

// Load reads a spec file strictly (unknown fields, trailing data and files
// above MaxSpecFileSize are rejected) and validates it.
func Load(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("chain spec %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("chain spec %s: %w", path, err)
	}
	if len(data) > MaxSpecFileSize {
		return nil, fmt.Errorf("chain spec %s: %w: file larger than %d bytes", path, ErrInvalidSpec, MaxSpecFileSize)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("chain spec %s: %w", path, err)
	}
	return s, nil
}

// Parse decodes a spec from JSON strictly and validates it.
func Parse(data []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the spec object", ErrInvalidSpec)
	}
	if len(s.AuthorityChanges) == 0 {
		s.AuthorityChanges = nil // "authority_changes": [] is no changes
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Resolve returns the builtin chain called nameOrPath, or else loads the
// spec file at that path.
func Resolve(nameOrPath string) (*Spec, error) {
	if s, err := Builtin(nameOrPath); err == nil {
		return s, nil
	}
	if _, err := os.Stat(nameOrPath); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w %q: not a builtin chain (%s) and no such spec file", ErrUnknownChain, nameOrPath, strings.Join(BuiltinNames(), ", "))
		}
		return nil, fmt.Errorf("chain spec %s: %w", nameOrPath, err)
	}
	return Load(nameOrPath)
}
