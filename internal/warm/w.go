package warm
import (
 _ "github.com/cockroachdb/pebble/v2"
 _ "github.com/cockroachdb/pebble/v2/vfs"
 _ "github.com/libp2p/go-libp2p"
 _ "github.com/libp2p/go-libp2p-pubsub"
 _ "github.com/urfave/cli/v2"
 _ "go.uber.org/zap"
 _ "golang.org/x/sync/errgroup"
 _ "golang.org/x/crypto/blake2b"
 _ "github.com/stretchr/testify/require"
 _ "google.golang.org/protobuf/proto"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/BurntSushi/toml"
)
