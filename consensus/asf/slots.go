package asf

import (
	"math"
	"time"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Clock tells the time. Inject a fake in tests.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// SlotAt returns the slot that contains t; times before genesis are slot 0.
func SlotAt(spec *chainspec.Spec, t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 || uint64(ms) <= spec.GenesisTimestampMs {
		return 0
	}
	return (uint64(ms) - spec.GenesisTimestampMs) / spec.SlotDurationMs
}

// SlotStart returns the start time of slot.
func SlotStart(spec *chainspec.Spec, slot uint64) time.Time {
	ms, ok := slotTimestampMs(spec, slot)
	if !ok || ms > math.MaxInt64 {
		return time.UnixMilli(math.MaxInt64).UTC()
	}
	return time.UnixMilli(int64(ms)).UTC()
}

// slotTimestampMs returns genesis + slot*slot_duration in milliseconds, or
// false on overflow.
func slotTimestampMs(spec *chainspec.Spec, slot uint64) (uint64, bool) {
	if spec.SlotDurationMs != 0 && slot > (math.MaxUint64-spec.GenesisTimestampMs)/spec.SlotDurationMs {
		return 0, false
	}
	return spec.GenesisTimestampMs + slot*spec.SlotDurationMs, true
}

// ProposerOf returns the authority that proposes in slot: slot mod n.
func ProposerOf(spec *chainspec.Spec, slot uint64) checkpoint.ValidatorIndex {
	return checkpoint.ValidatorIndex(slot % uint64(len(spec.Authorities)))
}
