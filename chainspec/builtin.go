package chainspec

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// DevSeedPrefix is hashed with a dev key name into that key's seed.
const DevSeedPrefix = "flare/dev-seed/"

var devKeyNames = []string{"alice", "bob", "charlie", "dave", "eve", "ferdie"}

// builtinGenesis is the fixed genesis time of the builtin chains.
var builtinGenesis = uint64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())

// DevKeyNames returns the names DevKey accepts, in order.
func DevKeyNames() []string { return slices.Clone(devKeyNames) }

// DevKey returns the well-known development key of name: the ed25519 key
// whose seed is BLAKE2b-256("flare/dev-seed/" + name). These keys are public
// knowledge; use them for dev and local chains only.
func DevKey(name string) (ed25519.PrivateKey, error) {
	if !slices.Contains(devKeyNames, name) {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownDevKey, name, devKeyNames)
	}
	seed := checkpoint.HashOf([]byte(DevSeedPrefix + name))
	return ed25519.NewKeyFromSeed(seed[:]), nil
}

func devAuthority(name string) Authority {
	key, err := DevKey(name)
	if err != nil {
		panic(err) // only called with names from devKeyNames
	}
	return Authority{Name: name, PublicKey: hex.EncodeToString(key.Public().(ed25519.PublicKey))}
}

// DevSlotDurationMs is the slot length of the builtin dev chain.
const DevSlotDurationMs = 500

// DevBalance is the genesis balance of every dev key on the builtin chains.
const DevBalance = 1_000_000_000_000_000

// DevMinFee is the minimum fee of the builtin chains.
const DevMinFee = 1

// DevBalances returns the genesis balances of the builtin chains: every dev
// key (DevKeyNames, also those that are not authorities) holds DevBalance.
func DevBalances() []Balance {
	out := make([]Balance, 0, len(devKeyNames))
	for _, n := range devKeyNames {
		key, _ := DevKey(n)
		out = append(out, Balance{Address: "0x" + hex.EncodeToString(key.Public().(ed25519.PublicKey)), Balance: DevBalance})
	}
	return out
}

// BuiltinNames returns the names Builtin accepts.
func BuiltinNames() []string { return []string{"dev", "local"} }

// Builtin returns a fresh copy of a builtin chain spec:
//
//   - "dev": one validator (alice), 500 ms slots, a checkpoint every block;
//   - "local": alice, bob, charlie and dave, 1 s slots, checkpoint interval 4.
//
// Both use set id 0 and the genesis time
// 2026-01-01T00:00:00Z, minimum fee DevMinFee, and DevBalance for every
// dev key (alice, bob, charlie, dave, eve, ferdie).
func Builtin(name string) (*Spec, error) {
	var auth []string
	s := &Spec{
		GenesisTimestampMs: builtinGenesis,
		SlotDurationMs:     1000,
		CheckpointInterval: 4,
		SetID:              0,
		MinFee:             DevMinFee,
		Balances:           DevBalances(),
	}
	switch name {
	case "dev":
		s.Name, s.ID, s.NetworkID = "Development", "dev", "flare-dev"
		auth = devKeyNames[:1]
		// Quick tries: a checkpoint every block in half-second slots, so a
		// transfer is final about a second after it is sent.
		s.SlotDurationMs, s.CheckpointInterval = DevSlotDurationMs, 1
	case "local":
		s.Name, s.ID, s.NetworkID = "Local Testnet", "local", "flare-local"
		auth = devKeyNames[:4]
	default:
		return nil, fmt.Errorf("%w %q: builtin chains are %v", ErrUnknownChain, name, BuiltinNames())
	}
	for _, n := range auth {
		s.Authorities = append(s.Authorities, devAuthority(n))
	}
	return s, nil
}

// BenchSeedPrefix is hashed with a decimal index into a bench key's seed.
const BenchSeedPrefix = "flare/bench-seed/"

// BenchKey returns the well-known load-test key i: the ed25519 key whose
// seed is BLAKE2b-256("flare/bench-seed/" + decimal i). Like the dev keys
// they are public knowledge: `flare-node testnet --bench-accounts N` endows
// keys 0..N-1 and `flare-node bench tx-load` signs with them.
func BenchKey(i int) ed25519.PrivateKey {
	seed := checkpoint.HashOf([]byte(BenchSeedPrefix + strconv.Itoa(i)))
	return ed25519.NewKeyFromSeed(seed[:])
}
