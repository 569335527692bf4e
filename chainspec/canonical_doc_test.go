package chainspec_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/trie"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/blake2b"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/node/engine"
)

// docString encodes s by the string rule of docs/wire.md ("Chain identity",
// step 2), character by character, without encoding/json.
func docString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// docGenesisHash computes the genesis hash of a spec file by the three steps
// of docs/wire.md ("Chain identity"), independently of package chainspec:
// a generic JSON decode (exact field names suffice for these files), the
// canonical encoding, then the two hashes.
func docGenesisHash(t *testing.T, file []byte) (canonical []byte, genesis [32]byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.UseNumber()
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	str := func(v any) string { s, ok := v.(string); require.True(t, ok, "%v", v); return s }
	num := func(v any) string {
		n, ok := v.(json.Number)
		require.True(t, ok, "%v", v)
		require.Regexp(t, `^(0|[1-9][0-9]*)$`, n.String())
		return n.String()
	}
	var b strings.Builder
	b.WriteString(`{"name":` + docString(str(m["name"])))
	b.WriteString(`,"id":` + docString(str(m["id"])))
	b.WriteString(`,"network_id":` + docString(str(m["network_id"])))
	for _, k := range []string{"genesis_timestamp_ms", "slot_duration_ms", "checkpoint_interval", "set_id"} {
		b.WriteString(`,"` + k + `":` + num(m[k]))
	}
	b.WriteString(`,"authorities":[`)
	for i, a := range m["authorities"].([]any) {
		am := a.(map[string]any)
		key := str(am["public_key"])
		key = strings.TrimPrefix(strings.TrimPrefix(key, "0x"), "0X")
		raw, err := hex.DecodeString(key)
		require.NoError(t, err)
		require.Len(t, raw, 32)
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":` + docString(str(am["name"])) + `,"public_key":"` + hex.EncodeToString(raw) + `"}`)
	}
	b.WriteString(`],"min_fee":`)
	if v, ok := m["min_fee"]; ok {
		b.WriteString(num(v))
	} else {
		b.WriteString("0")
	}
	b.WriteString(`,"balances":[`)
	bals, _ := m["balances"].([]any)
	for i, a := range bals {
		am := a.(map[string]any)
		addr := str(am["address"])
		require.True(t, strings.HasPrefix(addr, "0x"))
		raw, err := hex.DecodeString(addr[2:])
		require.NoError(t, err)
		require.Len(t, raw, 32)
		bal := str(am["balance"])
		require.Regexp(t, `^(0|[1-9][0-9]*)$`, bal)
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"address":"0x` + hex.EncodeToString(raw) + `","balance":"` + bal + `"}`)
	}
	b.WriteByte(']')
	if changes, _ := m["authority_changes"].([]any); len(changes) > 0 {
		b.WriteString(`,"authority_changes":[`)
		for i, c := range changes {
			cm := c.(map[string]any)
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"set_id":` + num(cm["set_id"]) + `,"hand_off":` + num(cm["hand_off"]) + `,"authorities":[`)
			for j, k := range cm["authorities"].([]any) {
				key := strings.TrimPrefix(strings.TrimPrefix(str(k), "0x"), "0X")
				raw, err := hex.DecodeString(key)
				require.NoError(t, err)
				require.Len(t, raw, 32)
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`"` + hex.EncodeToString(raw) + `"`)
			}
			b.WriteString(`]}`)
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	canonical = []byte(b.String())

	specHash := blake2b.Sum256(canonical)
	ts, err := json.Number(num(m["genesis_timestamp_ms"])).Int64()
	require.NoError(t, err)
	var hdr bytes.Buffer
	hdr.WriteString("flare/block/v2")
	hdr.Write(make([]byte, 32))                               // parent
	hdr.Write(make([]byte, 8))                                // number 0
	hdr.Write(make([]byte, 8))                                // slot 0
	hdr.Write(make([]byte, 4))                                // proposer 0
	hdr.Write(binary.BigEndian.AppendUint64(nil, uint64(ts))) // timestamp
	hdr.Write(specHash[:])                                    // body root
	root := docStateRoot(t, bals)
	hdr.Write(root[:]) // state root
	return canonical, blake2b.Sum256(hdr.Bytes())
}

// docStateRoot is the genesis state root by docs/state.md: an Ethereum
// Merkle Patricia trie (built here with go-ethereum's StackTrie, not with
// package state) with key keccak256(address) and value balance u64 BE |
// nonce u64 BE (nonce 0), inserted in key order.
func docStateRoot(t *testing.T, bals []any) [32]byte {
	type kv struct{ k, v []byte }
	var kvs []kv
	for _, a := range bals {
		am := a.(map[string]any)
		raw, err := hex.DecodeString(am["address"].(string)[2:])
		require.NoError(t, err)
		bal, err := strconv.ParseUint(am["balance"].(string), 10, 64)
		require.NoError(t, err)
		kvs = append(kvs, kv{crypto.Keccak256(raw), binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, bal), 0)})
	}
	sort.Slice(kvs, func(i, j int) bool { return bytes.Compare(kvs[i].k, kvs[j].k) < 0 })
	st := trie.NewStackTrie(nil)
	for _, e := range kvs {
		require.NoError(t, st.Update(e.k, e.v))
	}
	return st.Hash()
}

func nodeGenesisHash(spec *chainspec.Spec) [32]byte {
	h, err := engine.GenesisHash(spec)
	if err != nil {
		panic(err)
	}
	return h
}

func TestCanonicalJSONAsDocumented(t *testing.T) {
	for _, name := range chainspec.BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			spec, err := chainspec.Builtin(name)
			require.NoError(t, err)
			file, err := json.MarshalIndent(spec, "", "  ") // what build-spec prints
			require.NoError(t, err)
			canonical, genesis := docGenesisHash(t, file)
			require.Equal(t, string(spec.CanonicalJSON()), string(canonical))
			require.Equal(t, nodeGenesisHash(spec), genesis)
			if name == "dev" {
				require.Equal(t, "de07594a4447511b6484cf555e8c65e756a844da62542b68f03ca783cdf439dd", hex.EncodeToString(genesis[:]), "docs/wire.md example")
			}
		})
	}

	t.Run("reordered file with escapes and upper-case keys", func(t *testing.T) {
		alice, err := chainspec.DevKey("alice")
		require.NoError(t, err)
		bob, err := chainspec.DevKey("bob")
		require.NoError(t, err)
		upper := func(k []byte) string { return "0X" + strings.ToUpper(hex.EncodeToString(k)) }
		// Keys in reverse order, whitespace, JSON escapes the canonical form
		// writes differently (\/, \u00e9, \u0041) and characters it escapes.
		file := []byte(fmt.Sprintf(`
		{ "authorities" : [ { "public_key": %q, "name": "al\/ice <&> \u00e9" },
		                    { "public_key": %q, "name": "bob\ttab \"q\" \\ \u0001\u007f\u2028\u0041" } ],
		  "set_id": 7, "checkpoint_interval": 4, "slot_duration_ms": 500,
		  "genesis_timestamp_ms": 1767225600000, "network_id": "mine-net", "id": "mine",
		  "name": "Mine \u2029 ünïcode\fend" }
		`, upper([]byte(alice.Public().(ed25519.PublicKey))), "0x"+strings.ToUpper(hex.EncodeToString([]byte(bob.Public().(ed25519.PublicKey))))))
		require.True(t, utf8.Valid(file))
		spec, err := chainspec.Parse(file)
		require.NoError(t, err)
		canonical, genesis := docGenesisHash(t, file)
		require.Equal(t, string(spec.CanonicalJSON()), string(canonical))
		require.Equal(t, nodeGenesisHash(spec), genesis)
		require.Contains(t, string(canonical), `"name":"al/ice \u003c\u0026\u003e é"`)
		require.Contains(t, string(canonical), `"name":"bob\ttab \"q\" \\ \u0001`+"\x7f"+`\u2028A"`)
		require.Contains(t, string(canonical), `"public_key":"`+hex.EncodeToString([]byte(alice.Public().(ed25519.PublicKey)))+`"`)

		// A naive client hashing the file (or a re-indented copy) gets
		// another identity.
		naive := blake2b.Sum256(file)
		require.NotEqual(t, blake2b.Sum256(spec.CanonicalJSON()), naive)
	})
}

// handOffSpecFile is a spec with two scheduled authority changes (set 3 of
// alice, bob, charlie and dave; eve joins as set 4 at checkpoint 10; alice
// leaves as set 5 at checkpoint 20), with mixed key spellings and reordered
// fields. It has no balances, so its state root is the empty-trie root.
const handOffSpecFile = `{
  "name": "Hand-off Example",
  "id": "handoff",
  "network_id": "flare-handoff",
  "genesis_timestamp_ms": 1767225600000,
  "slot_duration_ms": 1000,
  "checkpoint_interval": 4,
  "set_id": 3,
  "authorities": [
    {"name": "alice", "public_key": "edc8f5f63243dccd9c4cde67dc546d8537555db81357aab2956104cc21717654"},
    {"name": "bob", "public_key": "0xD388D44A877D798FACEC822BCE1A1B605FB7B76ED682408421A93FB4E5EB6021"},
    {"name": "charlie", "public_key": "c85f77a59bd8127708868cd20aef4d662b9d51fa02dbe0722d1d917e78c85e4f"},
    {"name": "dave", "public_key": "c2e6d706423fb41c3366e5715813e8d0bcd3aaa01b9be3e990afbb858bf8a592"}
  ],
  "min_fee": 1,
  "balances": [],
  "authority_changes": [
    {"set_id": 4, "hand_off": 10, "authorities": [
      "edc8f5f63243dccd9c4cde67dc546d8537555db81357aab2956104cc21717654",
      "d388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021",
      "c85f77a59bd8127708868cd20aef4d662b9d51fa02dbe0722d1d917e78c85e4f",
      "c2e6d706423fb41c3366e5715813e8d0bcd3aaa01b9be3e990afbb858bf8a592",
      "0XE637362088479857B25DBADE498482E0AF98D38A81CF21C659E3A44F57FE457A"]},
    {"hand_off": 20, "authorities": [
      "0xd388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021",
      "c85f77a59bd8127708868cd20aef4d662b9d51fa02dbe0722d1d917e78c85e4f",
      "c2e6d706423fb41c3366e5715813e8d0bcd3aaa01b9be3e990afbb858bf8a592",
      "e637362088479857b25dbade498482e0af98d38a81cf21c659e3a44f57fe457a"], "set_id": 5}
  ]
}
`

// TestCanonicalJSONWithAuthorityChanges pins the chain identity of a spec
// with authority changes (docs/wire.md, "Chain identity"). The golden
// hashes were recomputed independently of Go by a Python 3 script written
// from docs/wire.md alone (json.load of handOffSpecFile, the documented
// canonical form with its string rule, hashlib.blake2b(digest_size=32),
// struct.pack for the header over the empty-trie state root), which printed
//
//	spec hash    a810485c05bd80a3b536fb62ecd7f416ad4a0158a268532b287eccdb6067d493
//	genesis hash 5d266b0e80de8b575c2c628d571badf879c7beb546e81f868e1b8a4218b50da4
func TestCanonicalJSONWithAuthorityChanges(t *testing.T) {
	const (
		goldenSpecHash    = "a810485c05bd80a3b536fb62ecd7f416ad4a0158a268532b287eccdb6067d493"
		goldenGenesisHash = "5d266b0e80de8b575c2c628d571badf879c7beb546e81f868e1b8a4218b50da4"
	)
	spec, err := chainspec.Parse([]byte(handOffSpecFile))
	require.NoError(t, err)
	canonical, genesis := docGenesisHash(t, []byte(handOffSpecFile))
	require.Equal(t, string(canonical), string(spec.CanonicalJSON()))
	require.True(t, strings.HasSuffix(string(canonical), `],"min_fee":1,"balances":[],"authority_changes":[{"set_id":4,"hand_off":10,"authorities":["edc8f5f63243dccd9c4cde67dc546d8537555db81357aab2956104cc21717654",`+
		`"d388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021","c85f77a59bd8127708868cd20aef4d662b9d51fa02dbe0722d1d917e78c85e4f",`+
		`"c2e6d706423fb41c3366e5715813e8d0bcd3aaa01b9be3e990afbb858bf8a592","e637362088479857b25dbade498482e0af98d38a81cf21c659e3a44f57fe457a"]},`+
		`{"set_id":5,"hand_off":20,"authorities":["d388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021",`+
		`"c85f77a59bd8127708868cd20aef4d662b9d51fa02dbe0722d1d917e78c85e4f","c2e6d706423fb41c3366e5715813e8d0bcd3aaa01b9be3e990afbb858bf8a592",`+
		`"e637362088479857b25dbade498482e0af98d38a81cf21c659e3a44f57fe457a"]}]}`), string(canonical))
	require.Equal(t, goldenSpecHash, strings.TrimPrefix(spec.Hash().String(), "0x"))
	require.Equal(t, goldenGenesisHash, hex.EncodeToString(genesis[:]))
	require.Equal(t, goldenGenesisHash, fmt.Sprintf("%x", nodeGenesisHash(spec)))

	// What build-spec prints parses back to the same spec and identity.
	file, err := json.MarshalIndent(spec, "", "  ")
	require.NoError(t, err)
	back, err := chainspec.Parse(file)
	require.NoError(t, err)
	require.Equal(t, spec.CanonicalJSON(), back.CanonicalJSON())
	require.Equal(t, nodeGenesisHash(spec), nodeGenesisHash(back))

	// Without its changes the spec encodes as a spec that never had the
	// field: no authority_changes member at all.
	spec.AuthorityChanges = nil
	require.NotContains(t, string(spec.CanonicalJSON()), "authority_changes")
	require.NotEqual(t, goldenSpecHash, strings.TrimPrefix(spec.Hash().String(), "0x"))
}
