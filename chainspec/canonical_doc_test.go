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
	b.WriteString(`]}`)
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
