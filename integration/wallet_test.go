package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/node/api"
)

// shownAccount is the --json output of account show.
type shownAccount struct {
	Address string `json:"address"`
	Balance string `json:"balance"`
	Nonce   uint64 `json:"nonce"`
	At      struct {
		Number uint64 `json:"number"`
		Hash   string `json:"hash"`
		Level  string `json:"level"`
	} `json:"at"`
}

// showAccount runs account show NAME --json (with the extra flags) and
// decodes it.
func showAccount(t *testing.T, name string, extra ...string) shownAccount {
	t.Helper()
	stdout, stderr, code := runCLI(t, append([]string{"account", "show", name, "--json"}, extra...)...)
	require.Equal(t, 0, code, "account show %s %v: %s", name, extra, stderr)
	var a shownAccount
	require.NoError(t, json.Unmarshal([]byte(stdout), &a), stdout)
	return a
}

func balanceOf(t *testing.T, a shownAccount) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(a.Balance, 10, 64)
	require.NoError(t, err, "balance %q", a.Balance)
	return v
}

// startDevWallet starts a --dev --enable-asf node on base with its API on a
// free port and returns the process and the API address.
func startDevWallet(t *testing.T, name, base string) (*proc, string) {
	t.Helper()
	rport := freePort(t)
	p := startNode(t, name, "--dev", "--enable-asf", "--base-path", base, "--port", "0", "--listen-addr", "/ip4/127.0.0.1/tcp/0",
		"--rpc-addr", fmt.Sprintf("127.0.0.1:%d", rport))
	p.waitLog(regexp.MustCompile(`^JSON API listening`), 0, 30*time.Second)
	return p, fmt.Sprintf("http://127.0.0.1:%d", rport)
}

// TestTransferWithTheCLI: the README's "Send a transfer" with the real
// binary: tx transfer --wait finalized prints the hash and validated,
// included, justified, finalized and exits 0; account show gives bob
// DevBalance+5 and alice DevBalance-5 (she proposes the block and earns the
// fee back) with nonce 1; a second transfer with the used nonce is refused
// with the reason and the expected nonce (exit 1); after kill -9 and a
// restart on the same base path, account show --at finalized gives the
// same balances.
func TestTransferWithTheCLI(t *testing.T) {
	base := t.TempDir()
	p, rpc := startDevWallet(t, "dev", base)

	bob := showAccount(t, "bob")
	require.Regexp(t, `^0x[0-9a-f]{64}$`, bob.Address)
	require.Empty(t, bob.Balance, "no balance without --rpc")
	before := showAccount(t, "bob", "--rpc", rpc)
	require.Equal(t, uint64(chainspec.DevBalance), balanceOf(t, before))

	stdout, stderr, code := runCLI(t, "tx", "transfer", "--chain", "dev", "--key", "alice", "--to", bob.Address, "--amount", "5",
		"--rpc", rpc, "--wait", "finalized", "--timeout", "50s")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s\nnode:\n%s", stdout, stderr, p.tail(20))
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	require.Len(t, lines, 5, stdout)
	require.Regexp(t, `^0x[0-9a-f]{64}$`, lines[0])
	require.Regexp(t, `^validated \+\d`, lines[1])
	m := regexp.MustCompile(`^included block #(\d+) index 0 \+\d`).FindStringSubmatch(lines[2])
	require.NotNil(t, m, stdout)
	require.Regexp(t, `^justified block #`+m[1]+` index 0 \+\d`, lines[3])
	require.Regexp(t, `^finalized block #`+m[1]+` index 0 \+\d`, lines[4])
	hash := lines[0]
	// The default fee is the spec's min_fee.
	code, body := getStatus(t, rpc+"/blocks/"+m[1])
	require.Equal(t, http.StatusOK, code)
	var blk api.Block
	require.NoError(t, json.Unmarshal(body, &blk))
	require.Len(t, blk.Transactions, 1)
	require.Equal(t, hash, blk.Transactions[0].Hash)
	require.Equal(t, strconv.Itoa(chainspec.DevMinFee), blk.Transactions[0].Fee)
	require.Equal(t, uint64(0), blk.Transactions[0].Nonce, "the nonce of account alice at the best block")

	bobNow := showAccount(t, "bob", "--rpc", rpc)
	require.Equal(t, uint64(chainspec.DevBalance)+5, balanceOf(t, bobNow), "bob gains exactly the amount")
	require.Regexp(t, `^0x[0-9a-f]{64}$`, bobNow.At.Hash)
	bobFinal := showAccount(t, "bob", "--rpc", rpc, "--at", "finalized")
	require.Equal(t, uint64(chainspec.DevBalance)+5, balanceOf(t, bobFinal))
	require.Equal(t, "finalized", bobFinal.At.Level)
	aliceFinal := showAccount(t, "alice", "--rpc", rpc, "--at", "finalized")
	require.Equal(t, uint64(chainspec.DevBalance)-5, balanceOf(t, aliceFinal))
	require.Equal(t, uint64(1), aliceFinal.Nonce)

	stdout, stderr, code = runCLI(t, "account", "show", "alice", "--rpc", rpc, "--at", "finalized")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, fmt.Sprintf("Balance:  %d\nNonce:    1\nAt:       block #", chainspec.DevBalance-5))

	// Another chain than the node's: refused before signing (exit 2).
	_, stderr, code = runCLI(t, "tx", "transfer", "--chain", "local", "--key", "alice", "--to", bob.Address, "--amount", "5", "--rpc", rpc)
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, `Error: --chain local has genesis 0x`)
	require.Contains(t, stderr, `runs chain "dev"`)

	// The used nonce again (another transaction): refused, exit 1.
	stdout, stderr, code = runCLI(t, "tx", "transfer", "--chain", "dev", "--key", "alice", "--to", bob.Address, "--amount", "6",
		"--nonce", "0", "--rpc", rpc)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Empty(t, stdout)
	require.Equal(t, "Error: transaction refused: nonce too low (expected nonce 1, this transaction has nonce 0)\n", stderr)
	// The same transaction again: idempotent, already finalized.
	stdout, stderr, code = runCLI(t, "tx", "transfer", "--chain", "dev", "--key", "alice", "--to", bob.Address, "--amount", "5",
		"--nonce", "0", "--rpc", rpc, "--wait", "finalized")
	require.Equal(t, 0, code, stderr)
	require.True(t, strings.HasPrefix(stdout, hash+"\n"), stdout)
	require.Contains(t, stdout, "\nfinalized block #"+m[1]+" index 0 +")

	// kill -9, restart on the same base path: the same finalized balances.
	p.stop(syscall.SIGKILL, 10*time.Second)
	p2, rpc2 := startDevWallet(t, "dev-restarted", base)
	bobAfter := showAccount(t, "bob", "--rpc", rpc2, "--at", "finalized")
	aliceAfter := showAccount(t, "alice", "--rpc", rpc2, "--at", "finalized")
	require.Equal(t, balanceOf(t, bobFinal), balanceOf(t, bobAfter), "node:\n%s", p2.tail(20))
	require.Equal(t, balanceOf(t, aliceFinal), balanceOf(t, aliceAfter))
	require.Equal(t, uint64(1), aliceAfter.Nonce)
	require.GreaterOrEqual(t, bobAfter.At.Number, bobFinal.At.Number, "the finalized checkpoint survives kill -9")
	require.Equal(t, 0, p2.stop(syscall.SIGINT, 30*time.Second))
}
