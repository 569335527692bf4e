package chainspec

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Golden chain identities and dev keys. A change here changes the genesis
// hash of every dev and local chain: it must be deliberate. The values were
// computed independently of this package (Python hashlib.blake2b and the
// pyca/cryptography ed25519 implementation over the documented layout).
const (
	goldenDevHash   = "0x31f76d7176e8d6d9dcf907b12b1fa642e978ec25a7561847dd68f28b28612dc4"
	goldenLocalHash = "0x919bf230f6462260e870c15e18fffbc22b2a52f1b85513c0ee26bb19975b4e46"
	goldenAlicePub  = "edc8f5f63243dccd9c4cde67dc546d8537555db81357aab2956104cc21717654"
	goldenBobPub    = "d388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021"
)

func TestBuiltinsValidateAndAreStable(t *testing.T) {
	tests := []struct {
		name       string
		validators []string
		golden     string
		slot       time.Duration
		interval   uint64
	}{
		{"dev", []string{"alice"}, goldenDevHash, 500 * time.Millisecond, 1},
		{"local", []string{"alice", "bob", "charlie", "dave"}, goldenLocalHash, time.Second, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Builtin(tc.name)
			require.NoError(t, err)
			require.NoError(t, s.Validate())
			require.Equal(t, tc.name, s.ID)
			require.Equal(t, tc.slot, s.SlotDuration())
			require.Equal(t, tc.interval, s.CheckpointInterval)
			require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), s.GenesisTime())
			require.Len(t, s.Authorities, len(tc.validators))
			for i, n := range tc.validators {
				key, err := DevKey(n)
				require.NoError(t, err)
				require.Equal(t, n, s.Authorities[i].Name)
				require.Equal(t, hex.EncodeToString(key.Public().(ed25519.PublicKey)), s.Authorities[i].PublicKey)
			}
			require.Equal(t, tc.golden, s.Hash().String())

			// A fresh copy hashes the same and is independent of the first.
			again, err := Builtin(tc.name)
			require.NoError(t, err)
			require.Equal(t, s.Hash(), again.Hash())
			again.Authorities[0].Name = "mallory"
			require.NotEqual(t, s.Hash(), again.Hash())
		})
	}
	require.NotEqual(t, goldenDevHash, goldenLocalHash)
}

func TestBuiltinUnknown(t *testing.T) {
	_, err := Builtin("mainnet")
	require.ErrorIs(t, err, ErrUnknownChain)
}

func TestDevKeys(t *testing.T) {
	require.Equal(t, []string{"alice", "bob", "charlie", "dave", "eve", "ferdie"}, DevKeyNames())
	for name, want := range map[string]string{"alice": goldenAlicePub, "bob": goldenBobPub} {
		k, err := DevKey(name)
		require.NoError(t, err)
		require.Equal(t, want, hex.EncodeToString(k.Public().(ed25519.PublicKey)))
	}
	seen := map[string]bool{}
	for _, n := range DevKeyNames() {
		k, err := DevKey(n)
		require.NoError(t, err)
		seed := checkpoint.HashOf([]byte("flare/dev-seed/" + n))
		require.Equal(t, seed[:], []byte(k.Seed()), "seed of %s", n)
		k2, err := DevKey(n)
		require.NoError(t, err)
		require.Equal(t, k, k2)
		pub := hex.EncodeToString(k.Public().(ed25519.PublicKey))
		require.False(t, seen[pub])
		seen[pub] = true
	}
	_, err := DevKey("mallory")
	require.ErrorIs(t, err, ErrUnknownDevKey)
}

func TestAuthoritySet(t *testing.T) {
	s, err := Builtin("local")
	require.NoError(t, err)
	set := s.AuthoritySet()
	require.Equal(t, s.Hash(), set.Genesis)
	require.Equal(t, s.SetID, set.SetID)
	require.Equal(t, 4, set.Len())
	require.Equal(t, 3, set.Quorum())
	bob, err := DevKey("bob")
	require.NoError(t, err)
	idx, ok := set.IndexOf(bob.Public().(ed25519.PublicKey))
	require.True(t, ok)
	require.Equal(t, checkpoint.ValidatorIndex(1), idx)

	// A vote signed by bob over this chain verifies against the set.
	v := checkpoint.Vote{Genesis: s.Hash(), SetID: s.SetID, Target: checkpoint.Checkpoint{Number: 1}}
	sv := checkpoint.SignedVote{Vote: v, Validator: 1}
	copy(sv.Signature[:], ed25519.Sign(bob, v.SigningBytes()))
	require.NoError(t, set.VerifyVote(sv))
	sv.Validator = 2
	require.ErrorIs(t, set.VerifyVote(sv), checkpoint.ErrBadSignature)
}

func validSpec(t *testing.T) *Spec {
	t.Helper()
	s, err := Builtin("local")
	require.NoError(t, err)
	return s
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Spec)
		errSub string // "" = valid
	}{
		{"valid", func(*Spec) {}, ""},
		{"mainnet numbers", func(s *Spec) { s.SlotDurationMs, s.CheckpointInterval = 6000, 16 }, ""},
		{"0x and upper case key", func(s *Spec) { s.Authorities[0].PublicKey = "0x" + strings.ToUpper(s.Authorities[0].PublicKey) }, ""},
		{"empty name", func(s *Spec) { s.Name = " " }, "name is empty"},
		{"bad id", func(s *Spec) { s.ID = "Local Chain" }, "id"},
		{"empty network id", func(s *Spec) { s.NetworkID = "" }, "network_id"},
		{"no genesis time", func(s *Spec) { s.GenesisTimestampMs = 0 }, "genesis_timestamp_ms"},
		{"genesis far future", func(s *Spec) { s.GenesisTimestampMs = 1 << 62 }, "out of range"},
		{"slot too short", func(s *Spec) { s.SlotDurationMs = 99 }, "below 100"},
		{"slot too long", func(s *Spec) { s.SlotDurationMs = MaxSlotDurationMs + 1 }, "above"},
		{"interval zero", func(s *Spec) { s.CheckpointInterval = 0 }, "checkpoint_interval"},
		{"no authorities", func(s *Spec) { s.Authorities = nil }, "no authorities"},
		{"too many authorities", func(s *Spec) {
			s.Authorities = make([]Authority, MaxAuthorities+1)
		}, "at most"},
		{"unnamed authority", func(s *Spec) { s.Authorities[1].Name = "" }, "no name"},
		{"duplicate name", func(s *Spec) { s.Authorities[1].Name = "alice" }, "both named"},
		{"short key", func(s *Spec) { s.Authorities[2].PublicKey = "abcd" }, "64 hex characters"},
		{"non-hex key", func(s *Spec) { s.Authorities[2].PublicKey = strings.Repeat("zz", 32) }, "not hex"},
		{"zero key", func(s *Spec) { s.Authorities[2].PublicKey = strings.Repeat("00", 32) }, "all zeros"},
		{"duplicate key", func(s *Spec) { s.Authorities[3].PublicKey = s.Authorities[0].PublicKey }, "same public key"},
		{"duplicate key differing in case", func(s *Spec) {
			s.Authorities[3].PublicKey = strings.ToUpper(s.Authorities[0].PublicKey)
		}, "same public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec(t)
			tc.mutate(s)
			err := s.Validate()
			if tc.errSub == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidSpec)
			require.Contains(t, err.Error(), tc.errSub)
		})
	}
	var nilSpec *Spec
	require.ErrorIs(t, nilSpec.Validate(), ErrInvalidSpec)
}

func TestCanonicalJSON(t *testing.T) {
	s := validSpec(t)
	c := s.CanonicalJSON()
	for _, ws := range []string{"\n", "\t", ": ", ", ", "{ ", "[ "} {
		require.NotContains(t, string(c), ws)
	}
	require.True(t, strings.HasPrefix(string(c), `{"name":"Local Testnet","id":"local","network_id":"flare-local","genesis_timestamp_ms":1767225600000,"slot_duration_ms":1000,"checkpoint_interval":4,"set_id":0,"authorities":[{"name":"alice","public_key":"`), string(c))

	// The canonical form is valid JSON that decodes back to the same spec.
	back, err := Parse(c)
	require.NoError(t, err)
	require.Equal(t, s, back)

	// Key casing and prefix do not change the identity; any field does.
	alt := validSpec(t)
	alt.Authorities[1].PublicKey = "0X" + strings.ToUpper(alt.Authorities[1].PublicKey)
	require.Equal(t, s.Hash(), alt.Hash())
	require.Equal(t, c, alt.CanonicalJSON())

	mutations := []func(*Spec){
		func(s *Spec) { s.Name += "!" },
		func(s *Spec) { s.ID += "x" },
		func(s *Spec) { s.NetworkID += "x" },
		func(s *Spec) { s.GenesisTimestampMs++ },
		func(s *Spec) { s.SlotDurationMs++ },
		func(s *Spec) { s.CheckpointInterval++ },
		func(s *Spec) { s.SetID++ },
		func(s *Spec) { s.Authorities[0], s.Authorities[1] = s.Authorities[1], s.Authorities[0] },
		func(s *Spec) { s.Authorities = s.Authorities[:3] },
		func(s *Spec) { s.Authorities[2].Name = "carol" },
	}
	seen := map[checkpoint.Hash]int{s.Hash(): -1}
	for i, m := range mutations {
		x := validSpec(t)
		m(x)
		h := x.Hash()
		j, dup := seen[h]
		require.False(t, dup, "mutation %d collides with %d", i, j)
		seen[h] = i
	}

	// Escaping is deterministic and stays valid JSON.
	odd := validSpec(t)
	odd.Name = "quote\" <tag> & \\ \u00e9"
	var decoded Spec
	require.NoError(t, json.Unmarshal(odd.CanonicalJSON(), &decoded))
	require.Equal(t, odd.Name, decoded.Name)
}

func TestJSONRoundTrip(t *testing.T) {
	for _, name := range BuiltinNames() {
		s, err := Builtin(name)
		require.NoError(t, err)
		indented, err := json.MarshalIndent(s, "", "  ")
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), name+".json")
		require.NoError(t, os.WriteFile(path, indented, 0o600))
		loaded, err := Load(path)
		require.NoError(t, err)
		require.Equal(t, s, loaded)
		require.Equal(t, s.Hash(), loaded.Hash())
	}
}

func TestLoadMainnetLike(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "mainnet-like.json"))
	require.NoError(t, err)
	require.Equal(t, 6*time.Second, s.SlotDuration())
	require.Equal(t, uint64(16), s.CheckpointInterval)
	require.Equal(t, uint64(1), s.SetID)
	require.Len(t, s.Authorities, 3)
	keys, err := s.PublicKeys()
	require.NoError(t, err)
	require.Equal(t, "1e2bfb2bc4e6f5e40b6e0e1c1c5b5c7ab1d1e2f3a4b5c6d7e8f9011223344556", hex.EncodeToString(keys[0]))
	require.Contains(t, string(s.CanonicalJSON()), `"public_key":"1e2bfb2bc4e6f5e40b6e0e1c1c5b5c7ab1d1e2f3a4b5c6d7e8f9011223344556"`)
}

func TestLoadRejects(t *testing.T) {
	good := validSpec(t)
	goodJSON, err := json.Marshal(good)
	require.NoError(t, err)
	replace := func(old, new string) string {
		out := strings.Replace(string(goodJSON), old, new, 1)
		require.NotEqual(t, string(goodJSON), out, "replacement %q not applied", old)
		return out
	}
	tests := []struct {
		name    string
		content string
		errSub  string
	}{
		{"unknown top-level field", replace(`"set_id":0`, `"set_id":0,"sudo":"alice"`), `unknown field "sudo"`},
		{"unknown authority field", replace(`"name":"bob"`, `"name":"bob","weight":2`), `unknown field "weight"`},
		{"bad key", replace(good.Authorities[1].PublicKey, "nothex"), "64 hex characters"},
		{"duplicate key", replace(good.Authorities[1].PublicKey, good.Authorities[0].PublicKey), "same public key"},
		{"wrong type", replace(`"slot_duration_ms":1000`, `"slot_duration_ms":"1s"`), "slot_duration_ms"},
		{"negative number", replace(`"checkpoint_interval":4`, `"checkpoint_interval":-4`), "checkpoint_interval"},
		{"trailing data", string(goodJSON) + `{}`, "trailing data"},
		{"not json", "chain: local", "invalid character"},
		{"empty file", "", "EOF"},
		{"too large", strings.Repeat(" ", MaxSpecFileSize+1), "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "spec.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			_, err := Load(path)
			require.ErrorIs(t, err, ErrInvalidSpec)
			require.Contains(t, err.Error(), tc.errSub)
			require.Contains(t, err.Error(), path)
		})
	}
}

func TestResolve(t *testing.T) {
	dev, err := Resolve("dev")
	require.NoError(t, err)
	require.Equal(t, "dev", dev.ID)

	path := filepath.Join(t.TempDir(), "custom.json")
	s := validSpec(t)
	s.ID, s.SlotDurationMs = "custom", 6000
	data, err := json.Marshal(s)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	got, err := Resolve(path)
	require.NoError(t, err)
	require.Equal(t, s, got)

	_, err = Resolve("mainnet")
	require.ErrorIs(t, err, ErrUnknownChain)
	require.Contains(t, err.Error(), `"mainnet"`)
	require.Contains(t, err.Error(), "dev, local")

	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"name":"x"}`), 0o600))
	_, err = Resolve(bad)
	require.ErrorIs(t, err, ErrInvalidSpec)
	require.NotErrorIs(t, err, ErrUnknownChain)
}

func devPub(t *testing.T, name string) string {
	t.Helper()
	k, err := DevKey(name)
	require.NoError(t, err)
	return hex.EncodeToString(k.Public().(ed25519.PublicKey))
}

// specWithChanges is the local spec (alice, bob, charlie, dave; set 0) with
// eve joining as set 1 at checkpoint 8 and alice leaving as set 2 at 16.
func specWithChanges(t *testing.T) *Spec {
	t.Helper()
	s := validSpec(t)
	a, b, c, d, e := devPub(t, "alice"), devPub(t, "bob"), devPub(t, "charlie"), devPub(t, "dave"), devPub(t, "eve")
	s.AuthorityChanges = []AuthorityChange{
		{SetID: 1, HandOff: 8, Authorities: []string{a, b, c, d, e}},
		{SetID: 2, HandOff: 16, Authorities: []string{b, c, d, e}},
	}
	return s
}

func TestSchedule(t *testing.T) {
	// Without changes: the static schedule of AuthoritySet.
	s := validSpec(t)
	require.Equal(t, checkpoint.StaticSchedule(s.AuthoritySet()), s.Schedule())

	s = specWithChanges(t)
	require.NoError(t, s.Validate())
	sched := s.Schedule()
	require.NoError(t, sched.Validate())
	require.Equal(t, s.AuthoritySet(), sched.Genesis)
	require.Equal(t, s.Hash(), sched.Genesis.Genesis)
	require.Len(t, sched.Changes, 2)
	require.Equal(t, uint64(2), sched.Last())
	ch, ok := sched.Next(0)
	require.True(t, ok)
	require.Equal(t, uint64(1), ch.SetID)
	require.Equal(t, uint64(8), ch.HandOff)
	set2, ok := sched.Set(2)
	require.True(t, ok)
	require.Equal(t, s.Hash(), set2.Genesis)
	require.Equal(t, 4, set2.Len())
	for i, n := range []string{"bob", "charlie", "dave", "eve"} {
		require.Equal(t, devPub(t, n), hex.EncodeToString(set2.Keys[i]))
	}

	// Key spelling does not matter, to the schedule or to the identity.
	alt := specWithChanges(t)
	alt.AuthorityChanges[0].Authorities[4] = "0x" + strings.ToUpper(alt.AuthorityChanges[0].Authorities[4])
	require.NoError(t, alt.Validate())
	require.Equal(t, s.Schedule(), alt.Schedule())
	require.Equal(t, s.CanonicalJSON(), alt.CanonicalJSON())
}

func TestAuthorityChangesCanonical(t *testing.T) {
	plain := validSpec(t)
	s := specWithChanges(t)
	require.True(t, strings.HasPrefix(string(s.CanonicalJSON()), string(plain.CanonicalJSON()[:len(plain.CanonicalJSON())-1])+`,"authority_changes":[{"set_id":1,"hand_off":8,"authorities":["`+devPub(t, "alice")+`",`))
	require.True(t, strings.HasSuffix(string(s.CanonicalJSON()), `"`+devPub(t, "eve")+`"]}]}`))

	// The canonical form decodes back to the same spec.
	back, err := Parse(s.CanonicalJSON())
	require.NoError(t, err)
	require.Equal(t, s, back)

	// An empty list is no changes: the same spec and identity as none.
	withEmpty := strings.Replace(string(plain.CanonicalJSON()), `"min_fee"`, `"authority_changes":[],"min_fee"`, 1)
	parsed, err := Parse([]byte(withEmpty))
	require.NoError(t, err)
	require.Equal(t, plain, parsed)
	require.Equal(t, plain.Hash(), parsed.Hash())
	withNull := strings.Replace(string(plain.CanonicalJSON()), `"min_fee"`, `"authority_changes":null,"min_fee"`, 1)
	parsed, err = Parse([]byte(withNull))
	require.NoError(t, err)
	require.Equal(t, plain, parsed)

	// Every field of a change is covered by the identity.
	mutations := []func(*Spec){
		func(s *Spec) { s.AuthorityChanges = s.AuthorityChanges[:1] },
		func(s *Spec) { s.AuthorityChanges[0].HandOff++ },
		func(s *Spec) { s.AuthorityChanges[1].HandOff++ },
		func(s *Spec) { s.AuthorityChanges[0].SetID, s.AuthorityChanges[1].SetID = 2, 3 },
		func(s *Spec) {
			k := s.AuthorityChanges[1].Authorities
			k[0], k[1] = k[1], k[0]
		},
		func(s *Spec) { s.AuthorityChanges[1].Authorities[3] = devPub(t, "ferdie") },
	}
	seen := map[checkpoint.Hash]int{s.Hash(): -1, plain.Hash(): -2}
	for i, m := range mutations {
		x := specWithChanges(t)
		m(x)
		j, dup := seen[x.Hash()]
		require.False(t, dup, "mutation %d collides with %d", i, j)
		seen[x.Hash()] = i
	}
}

func TestAuthorityChangesJSONRoundTrip(t *testing.T) {
	s := specWithChanges(t)
	indented, err := json.MarshalIndent(s, "", "  ")
	require.NoError(t, err)
	require.Contains(t, string(indented), `"authority_changes": [`)
	require.Contains(t, string(indented), `"hand_off": 16,`)
	path := filepath.Join(t.TempDir(), "changes.json")
	require.NoError(t, os.WriteFile(path, indented, 0o600))
	loaded, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, s, loaded)
	require.Equal(t, s.Hash(), loaded.Hash())

	// A spec without changes does not mention the field.
	plain, err := json.Marshal(validSpec(t))
	require.NoError(t, err)
	require.NotContains(t, string(plain), "authority_changes")
}

func TestAuthorityChangesRejected(t *testing.T) {
	a, b, c, d, e, f := devPub(t, "alice"), devPub(t, "bob"), devPub(t, "charlie"), devPub(t, "dave"), devPub(t, "eve"), devPub(t, "ferdie")
	tests := []struct {
		name     string
		mutate   func(s *Spec)
		errSub   string
		schedule bool // the error also wraps checkpoint.ErrBadSchedule
	}{
		{"short key", func(s *Spec) { s.AuthorityChanges[1].Authorities[2] = "abcd" }, "authority_changes[1] (set_id 2, hand_off 16): authority 2: public key must be 64 hex characters", false},
		{"non-hex key", func(s *Spec) { s.AuthorityChanges[0].Authorities[0] = strings.Repeat("zz", 32) }, "authority_changes[0] (set_id 1, hand_off 8): authority 0: public key is not hex", false},
		{"zero key", func(s *Spec) { s.AuthorityChanges[0].Authorities[4] = strings.Repeat("00", 32) }, "authority 4: public key is all zeros", false},
		{"too many keys", func(s *Spec) { s.AuthorityChanges[0].Authorities = make([]string, MaxAuthorities+1) }, "authority_changes[0] (set_id 1, hand_off 8): 1025 authorities, at most 1024", false},
		{"set id not after the spec's", func(s *Spec) { s.SetID = 5 }, "authority_changes[0] (set_id 1, hand_off 8): invalid authority schedule: change 0 has set id 1, want 6", true},
		{"set id skipped", func(s *Spec) { s.AuthorityChanges[1].SetID = 3 }, "authority_changes[1] (set_id 3, hand_off 16): invalid authority schedule: change 1 has set id 3, want 2", true},
		{"hand-off zero", func(s *Spec) { s.AuthorityChanges[0].HandOff = 0 }, "authority_changes[0] (set_id 1, hand_off 0): invalid authority schedule: change 0 hands off at checkpoint 0, not above 0", true},
		{"hand-off not increasing", func(s *Spec) { s.AuthorityChanges[1].HandOff = 8 }, "authority_changes[1] (set_id 2, hand_off 8): invalid authority schedule: change 1 hands off at checkpoint 8, not above 8", true},
		{"too large a change", func(s *Spec) { s.AuthorityChanges[1].Authorities = []string{c, d, e} }, "authority_changes[1] (set_id 2, hand_off 16): change 1 (set 2): invalid authority schedule: 2 of 5 keys change, at most 1", true},
		{"two keys join four", func(s *Spec) {
			s.AuthorityChanges = s.AuthorityChanges[:1]
			s.AuthorityChanges[0].Authorities = []string{a, b, c, d, e, f}
		}, "2 of 4 keys change", true},
		{"duplicate key differing in case", func(s *Spec) { s.AuthorityChanges[1].Authorities[3] = strings.ToUpper(b) }, "authority_changes[1] (set_id 2, hand_off 16): change 1 (set 2): invalid authority schedule: key " + b + " listed twice", true},
		{"empty set", func(s *Spec) { s.AuthorityChanges[1].Authorities = nil }, "the new authority set is empty", true},
		{"same set", func(s *Spec) {
			s.AuthorityChanges = s.AuthorityChanges[:1]
			s.AuthorityChanges[0].Authorities = []string{b, a, c, d}
		}, "equals the current one", true},
		{"set id overflow", func(s *Spec) {
			s.SetID = 1<<64 - 2
			s.AuthorityChanges[0].SetID, s.AuthorityChanges[1].SetID = 1<<64-1, 0
		}, "overflow the 64-bit set id", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := specWithChanges(t)
			tc.mutate(s)
			err := s.Validate()
			require.ErrorIs(t, err, ErrInvalidSpec)
			if tc.schedule {
				require.ErrorIs(t, err, checkpoint.ErrBadSchedule)
			}
			require.Contains(t, err.Error(), tc.errSub)
			require.NotContains(t, err.Error(), "\n")
		})
	}

	// A one-validator genesis set (the dev chain) can change no key.
	dev, err := Builtin("dev")
	require.NoError(t, err)
	dev.AuthorityChanges = []AuthorityChange{{SetID: 1, HandOff: 1, Authorities: []string{a, b}}}
	require.ErrorContains(t, dev.Validate(), "1 of 1 keys change, at most 0")
}

func TestAuthorityChangesLoadRejects(t *testing.T) {
	good, err := json.Marshal(specWithChanges(t))
	require.NoError(t, err)
	replace := func(old, new string) string {
		out := strings.Replace(string(good), old, new, 1)
		require.NotEqual(t, string(good), out, "replacement %q not applied", old)
		return out
	}
	eve := devPub(t, "eve")
	var m map[string]any
	require.NoError(t, json.Unmarshal(good, &m))
	m["authority_changes"] = map[string]any{"set_id": 1}
	notArrayJSON, err := json.Marshal(m)
	require.NoError(t, err)
	notArray := string(notArrayJSON)
	tests := []struct {
		name    string
		content string
		errSub  string
	}{
		{"unknown change field", replace(`"hand_off":8`, `"hand_off":8,"weights":[1]`), `unknown field "weights"`},
		{"named keys", replace(`"`+eve+`"]`, `{"name":"eve","public_key":"`+eve+`"}]`), "cannot unmarshal object"},
		{"hand-off as a string", replace(`"hand_off":8`, `"hand_off":"8"`), "hand_off"},
		{"negative set id", replace(`"set_id":1,`, `"set_id":-1,`), "set_id"},
		{"not an array", notArray, "authority_changes"},
		{"wrong key length", replace(`"`+eve+`"]`, `"`+eve[:62]+`"]`), "authority_changes[0] (set_id 1, hand_off 8): authority 4: public key must be 64 hex characters, got 62"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "spec.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			_, err := Load(path)
			require.ErrorIs(t, err, ErrInvalidSpec)
			require.Contains(t, err.Error(), tc.errSub)
			require.Contains(t, err.Error(), path)
		})
	}
}
