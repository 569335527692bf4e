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
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("config file %s: %s", path, oneLine(pe.Error()))
		}
		return fmt.Errorf("config file %s: %s", path, oneLine(err.Error()))
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

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// KnownKeys lists every key a configuration file may contain, in dotted form.
func KnownKeys() []string {
	return []string{
		"chain", "base_path", "tmp", "name", "validator", "key_name", "key_file", "enable_asf", "min_free_disk_mib",
		"p2p.port", "p2p.listen_addrs", "p2p.bootnodes", "p2p.max_peers", "p2p.allow_private_ip", "p2p.no_mdns",
		"log.level", "log.format",
		"persistence.enabled", "persistence.retention_checkpoints", "persistence.flush_interval", "persistence.prune_interval",
		"metrics.addr", "rpc.addr",
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
