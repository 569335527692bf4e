package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Tunables (copied into each Network so tests can shorten them per instance).
const (
	defaultBackoffMin         = time.Second
	defaultBackoffMax         = time.Minute
	defaultDialTimeout        = 10 * time.Second
	defaultScoreInspectPeriod = time.Second
	defaultSyncServeTimeout   = 10 * time.Second
	defaultSyncRequestTimeout = 15 * time.Second
	peerEventsBuffer          = 128
	// syncStreamsPerPeer bounds concurrent sync streams per peer and direction.
	syncStreamsPerPeer = 8
)

// Network is a running libp2p host with the flare gossip topics, the sync
// protocol and peer discovery. It is safe for concurrent use.
type Network struct {
	cfg       Config
	log       *zap.Logger
	host      host.Host
	connMgr   *connmgr.BasicConnMgr
	genesis   checkpoint.Hash
	syncProto protocol.ID
	dhtProto  protocol.ID
	bootnodes []peer.AddrInfo
	policy    *dialPolicy
	target    int          // peers the connector dials up to
	book      *addressBook // nil without Config.AddressBookPath
	mesh      *meshTracker
	dialNow   chan struct{}

	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // background loops
	// inflight counts handler calls (gossip validators, sync streams), so
	// that Close returns only when the node's handlers are no longer called.
	inflight sync.WaitGroup

	peerEvents chan peer.ID
	evSub      event.Subscription
	evDone     chan struct{}

	mu      sync.Mutex
	started bool
	closed  bool
	ps      *pubsub.PubSub
	topics  [numKinds]*pubsub.Topic
	subs    [numKinds]*pubsub.Subscription
	gossip  GossipHandler
	syncH   SyncHandler
	dht     *dht.IpfsDHT
	mdns    io.Closer

	scoreMu  sync.RWMutex
	scores   map[peer.ID]float64
	scoreGen uint64 // score inspections so far

	stats        stats
	txLimit      *txLimiter    // per-peer token buckets of the transactions topic
	txSlots      chan struct{} // HandleTransaction slots
	dialFailures atomic.Uint64 // failed connector dials
	walks        atomic.Uint64 // random walks run
	rounds       atomic.Uint64 // connector rounds run

	selfMu        sync.Mutex
	selfConflicts map[string]bool // addresses given for our own peer id that are not ours

	// per-instance tunables
	backoffMin         time.Duration
	backoffMax         time.Duration
	dialTimeout        time.Duration
	discoveryTick      time.Duration
	walkMin            time.Duration
	walkMax            time.Duration
	bookDebounce       time.Duration
	scoreInspectPeriod time.Duration
	syncServeTimeout   time.Duration
	syncRequestTimeout time.Duration
	// observe, when set (tests), sees every validation outcome.
	observe func(kind topicKind, from peer.ID, data []byte, res pubsub.ValidationResult, reason rejectReason)
}

// New creates the libp2p host: it loads the node key (or generates one in
// memory), binds every listen address, and only then writes a newly
// generated node key to Config.NodeKeyPath; it loads the address book and
// logs the identity and listen addresses. A listen address that cannot be
// bound fails with ErrListen (the operating system's error wrapped, the
// address named) and writes nothing. Gossip, the sync protocol and peer
// discovery start with Start. ctx bounds only the construction; the network
// lives until Close.
func New(ctx context.Context, cfg Config) (*Network, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := cfg.Logger.Named("p2p")

	var key crypto.PrivKey
	newKey := false
	if cfg.NodeKeyPath != "" {
		key, err = loadNodeKey(cfg.NodeKeyPath)
		if errors.Is(err, fs.ErrNotExist) {
			newKey = true
			key, _, err = crypto.GenerateEd25519Key(rand.Reader)
		}
		if err != nil {
			return nil, err
		}
	} else {
		log.Warn("no node key path configured; using an ephemeral identity")
		if key, _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
			return nil, fmt.Errorf("generate node key: %w", err)
		}
	}

	listen := make([]ma.Multiaddr, 0, len(cfg.ListenAddrs))
	for _, s := range cfg.ListenAddrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %w", ErrInvalidConfig, s, err)
		}
		listen = append(listen, a)
	}
	bootnodes, err := parseBootnodes(cfg.Bootnodes)
	if err != nil {
		return nil, err
	}

	n := &Network{
		cfg:                cfg,
		log:                log,
		genesis:            cfg.Genesis,
		syncProto:          SyncProtocolID(cfg.Genesis),
		dhtProto:           DHTProtocolID(cfg.Genesis),
		bootnodes:          bootnodes,
		policy:             newDialPolicy(bootnodes, cfg.AllowPrivateIP),
		target:             targetPeers(cfg.MaxPeers),
		dialNow:            make(chan struct{}, 1),
		peerEvents:         make(chan peer.ID, peerEventsBuffer),
		evDone:             make(chan struct{}),
		scores:             make(map[peer.ID]float64),
		backoffMin:         defaultBackoffMin,
		backoffMax:         defaultBackoffMax,
		dialTimeout:        defaultDialTimeout,
		discoveryTick:      defaultDiscoveryTick,
		walkMin:            defaultWalkMin,
		walkMax:            defaultWalkMax,
		bookDebounce:       defaultBookDebounce,
		scoreInspectPeriod: defaultScoreInspectPeriod,
		syncServeTimeout:   defaultSyncServeTimeout,
		syncRequestTimeout: defaultSyncRequestTimeout,
	}
	names := make(map[string]string, numKinds)
	for k := range numKinds {
		names[topicName(cfg.Genesis, k)] = k.String()
	}
	n.mesh = newMeshTracker(names)
	n.txLimit = newTxLimiter(DefaultTxRate, DefaultTxBurst, DefaultTxExcessReject, 2*cfg.MaxPeers+64)
	n.txSlots = make(chan struct{}, txHandlerSlots)

	rm, err := newResourceManager(cfg.MaxPeers, n.syncProto)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(n.target, cfg.MaxPeers, connmgr.WithGracePeriod(30*time.Second))
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	n.connMgr = cm
	h, err := libp2p.New(
		libp2p.Identity(key),
		// Listen below, address by address, to report which one fails.
		libp2p.NoListenAddrs,
		// No SO_REUSEPORT: a second process on a port in use must fail.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(&dialGater{policy: n.policy}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.UserAgent("flare-node"),
	)
	if err != nil {
		// The managers now belong to libp2p (it closes them on the paths
		// where it fails); closing them here again could double-close.
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	for _, a := range listen {
		if err := h.Network().Listen(a); err != nil {
			_ = h.Close()
			return nil, fmt.Errorf("%w on %s: %w", ErrListen, a, err)
		}
	}
	if newKey {
		if err := storeNewNodeKey(cfg.NodeKeyPath, key); err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	n.host = h

	if cfg.AddressBookPath != "" {
		book, err := loadAddressBook(cfg.AddressBookPath, cfg.Genesis, n.policy.learnedAllowed)
		if err != nil {
			log.Warn("address book ignored; it is rewritten from the peers of this run", zap.Error(err))
		}
		n.book = book
		if known := len(book.entries()); known > 0 {
			log.Info(fmt.Sprintf("Address book: %d known peers", known), zap.String("path", cfg.AddressBookPath))
		}
	}

	n.evSub, err = h.EventBus().Subscribe([]any{
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
	})
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("subscribe to peer events: %w", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.forwardPeerEvents()

	log.Info("Local node identity is: "+h.ID().String(), zap.Stringer("peer_id", h.ID()))
	for _, a := range n.Addrs() {
		log.Info("Listening on "+a.String(), zap.Stringer("addr", a))
	}
	return n, nil
}

func parseBootnodes(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	index := make(map[peer.ID]int)
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: bootnode %q: %w", ErrInvalidConfig, s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, fmt.Errorf("%w: bootnode %q needs a /p2p/<peer-id> suffix: %w", ErrInvalidConfig, s, err)
		}
		if i, ok := index[ai.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
			continue
		}
		index[ai.ID] = len(out)
		out = append(out, *ai)
	}
	return out, nil
}

// newResourceManager limits connections to about maxPeers (with slack for
// dials in flight) and sync streams per peer.
func newResourceManager(maxPeers int, syncProto protocol.ID) (network.ResourceManager, error) {
	conns := rcmgr.LimitVal(maxPeers + maxPeers/2 + 8)
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:         conns,
			ConnsInbound:  rcmgr.LimitVal(maxPeers + 4),
			ConnsOutbound: rcmgr.LimitVal(maxPeers + 4),
		},
		Transient: rcmgr.ResourceLimits{
			Conns:         rcmgr.LimitVal(maxPeers/2 + 8),
			ConnsInbound:  rcmgr.LimitVal(maxPeers/4 + 4),
			ConnsOutbound: rcmgr.LimitVal(maxPeers/4 + 4),
		},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			syncProto: {
				Streams:         rcmgr.LimitVal(2 * syncStreamsPerPeer),
				StreamsInbound:  rcmgr.LimitVal(syncStreamsPerPeer),
				StreamsOutbound: rcmgr.LimitVal(syncStreamsPerPeer),
			},
		},
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Build(rcmgr.DefaultLimits.AutoScale())))
}

// forwardPeerEvents turns connectedness events into PeerEvents and
// connector nudges, and records peers that identified themselves as nodes of
// this chain in the address book.
func (n *Network) forwardPeerEvents() {
	defer close(n.evDone)
	for e := range n.evSub.Out() {
		switch ev := e.(type) {
		case event.EvtPeerConnectednessChanged:
			switch ev.Connectedness {
			case network.Connected:
				select {
				case n.peerEvents <- ev.Peer:
				default:
					n.log.Warn("peer event dropped: consumer too slow", zap.Stringer("peer", ev.Peer))
				}
			case network.NotConnected:
				n.nudge()
			}
		case event.EvtPeerIdentificationCompleted:
			if containsProtocol(ev.Protocols, n.syncProto) {
				n.remember(ev.Peer, ev.ListenAddrs)
			}
		case event.EvtPeerProtocolsUpdated:
			if containsProtocol(ev.Added, n.syncProto) {
				n.remember(ev.Peer, n.host.Peerstore().Addrs(ev.Peer))
			}
		}
	}
}

// remember records a peer of this chain in the address book with the
// listen addresses it announced that pass the dial policy.
func (n *Network) remember(p peer.ID, addrs []ma.Multiaddr) {
	if n.book == nil || p == n.host.ID() {
		return
	}
	n.book.record(p, n.policy.filter(addrs), time.Now())
}

// PeerEvents returns peers as they connect (the node starts a status
// handshake with each). The channel is closed by Close.
func (n *Network) PeerEvents() <-chan peer.ID { return n.peerEvents }

// Peers returns the currently connected peers.
func (n *Network) Peers() []peer.ID { return n.host.Network().Peers() }

// ID returns the local peer id.
func (n *Network) ID() peer.ID { return n.host.ID() }

// Addrs returns the listen addresses with the /p2p/<id> suffix.
func (n *Network) Addrs() []ma.Multiaddr {
	out, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	return out
}

// PeerScore returns the peer's gossipsub score as of the last score
// inspection (refreshed every second); 0 for unknown peers.
func (n *Network) PeerScore(p peer.ID) float64 {
	n.scoreMu.RLock()
	defer n.scoreMu.RUnlock()
	return n.scores[p]
}

func (n *Network) updateScores(scores map[peer.ID]float64) {
	n.scoreMu.Lock()
	n.scores = scores
	n.scoreGen++
	n.scoreMu.Unlock()
}

// enter registers a handler call; it returns false once the network is
// closing.
func (n *Network) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.inflight.Add(1)
	return true
}

func (n *Network) leave() { n.inflight.Done() }

// Close stops gossip, the sync protocol and discovery, waits for in-flight
// handler calls, saves the address book and closes the host. PeerEvents is closed.
// Close is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	subs, topics := n.subs, n.topics
	mdnsSvc, kad := n.mdns, n.dht
	n.mu.Unlock()

	n.cancel()
	if mdnsSvc != nil {
		_ = mdnsSvc.Close()
	}
	if kad != nil {
		_ = kad.Close()
	}
	n.host.RemoveStreamHandler(n.syncProto)
	for _, s := range subs {
		if s != nil {
			s.Cancel()
		}
	}
	n.wg.Wait()
	n.inflight.Wait()
	if n.book != nil {
		if err := n.book.save(); err != nil {
			n.log.Warn("address book not saved", zap.Error(err))
		}
	}
	for _, t := range topics {
		if t != nil {
			_ = t.Close() // fails only with live subscriptions, cancelled above
		}
	}
	err := n.host.Close()
	_ = n.evSub.Close()
	<-n.evDone
	close(n.peerEvents)
	n.log.Info("p2p network closed")
	return err
}
