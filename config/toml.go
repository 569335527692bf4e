package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// LoadTOML decodes the TOML file at path into into, over the values already
// there: keys absent from the file keep their value, arrays present in the
// file replace the existing ones. Decoding is strict: a key the Config does
// not have is an error wrapping ErrUnknownKey that names the key, and a
// value of the wrong type is an error naming the line and key.
func LoadTOML(path string, into *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	spec := into.Spec
	md, err := toml.Decode(string(data), into)
	into.Spec = spec
	if err != nil {
		msg := err.Error()
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg = pe.Error()
		}
		msg = oneLine(msg)
		if strings.Contains(msg, "invalid duration") {
			msg += ` (use a duration string with a unit, such as "5s", "500ms" or "2m")`
		}
		return fmt.Errorf("config file %s: %s", path, msg)
	}
	// The decoder stores a negative number in an unsigned field as its
	// two's complement; refuse it instead.
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err == nil {
		for _, key := range unsignedKeys {
			if v, ok := lookupKey(raw, key).(int64); ok && v < 0 {
				return fmt.Errorf("config file %s: %s = %d: use a non-negative whole number", path, key, v)
			}
		}
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return fmt.Errorf("config file %s: %w %q (known keys: %s)", path, ErrUnknownKey, keys[0], strings.Join(KnownKeys(), ", "))
	}
	return nil
}

// unsignedKeys are the keys of unsigned integer fields.
var unsignedKeys = []string{"min_free_disk_mib", "state_retention_blocks", "persistence.retention_checkpoints"}

// lookupKey returns the value of dotted key in a decoded TOML table, or nil.
func lookupKey(table map[string]any, key string) any {
	var v any = table
	for _, part := range strings.Split(key, ".") {
		t, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = t[part]
	}
	return v
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// KnownKeys lists every key a configuration file may contain, in dotted form.
func KnownKeys() []string {
	return []string{
		"chain", "base_path", "tmp", "name", "validator", "key_name", "key_file", "enable_asf", "doppelganger_listen", "min_free_disk_mib", "state_retention_blocks", "checkpoint_sync", "pid_file",
		"p2p.port", "p2p.listen_addrs", "p2p.bootnodes", "p2p.max_peers", "p2p.allow_private_ip", "p2p.no_mdns",
		"log.level", "log.format", "log.file", "log.max_size_mib", "log.max_backups", "log.max_age_days",
		"persistence.enabled", "persistence.retention_checkpoints", "persistence.flush_interval", "persistence.prune_interval",
		"metrics.addr", "metrics.pprof", "rpc.addr",
	}
}

// EncodeTOML returns c as a configuration file that LoadTOML reads back into
// the same values (durations as strings such as "10s"; Spec is not part of
// it, Chain is).
func (c *Config) EncodeTOML() ([]byte, error) {
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode configuration: %w", err)
	}
	return b.Bytes(), nil
}
