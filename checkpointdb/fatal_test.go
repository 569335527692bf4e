package checkpointdb

import (
	"crypto/ed25519"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// TestFatalWALSyncFailure injects a failing WAL sync. Pebble reports it
// through Logger.Fatalf and returns success from the commit; the database
// must report the failure to the signer (which then fails closed), refuse
// every later call, and still close without exiting or panicking.
func TestFatalWALSyncFailure(t *testing.T) {
	var failSync atomic.Bool
	mem := vfs.NewMem()
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failSync.Load() && strings.HasSuffix(op.Path, ".log") &&
			(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			return errorfs.ErrInjected
		}
		return nil
	}))
	core, logs := observer.New(zapcore.DebugLevel)
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	_, err = signer.SignVote(bg, linkVote(1, 0))
	require.NoError(t, err)

	failSync.Store(true)
	_, err = signer.SignVote(bg, linkVote(2, 0))
	require.ErrorIs(t, err, ErrFatal, "a failed sync must not be reported as a durable signer record")
	require.ErrorIs(t, err, finality.ErrSignerFailed)
	require.NotEmpty(t, logs.FilterMessageSnippet("pebble fatal error").All(), "Fatalf is logged at error level")
	for _, e := range logs.FilterMessageSnippet("pebble fatal error").All() {
		require.Equal(t, zapcore.ErrorLevel, e.Level)
		require.Equal(t, "checkpointdb.pebble", e.LoggerName)
	}

	// Every later call returns the recorded fatal error.
	require.ErrorIs(t, db.StoreVote(bg, signed(linkVote(2, 0), 1)), ErrFatal)
	_, err = db.Restore(bg)
	require.ErrorIs(t, err, ErrFatal)
	_, _, err = db.LoadSignerRecord(bg, testKeys[0].Public().(ed25519.PublicKey))
	require.ErrorIs(t, err, ErrFatal)
	require.ErrorIs(t, db.Stats().Fatal, ErrFatal)
	failSync.Store(false)
	require.ErrorIs(t, db.Flush(bg), ErrFatal, "the fatal error is sticky")
	_ = db.Close() // must return (no exit, no panic); its error is not specified

	// The store reopened on the same files has the first vote only, and the
	// signer can go on from there.
	db, err = Open("db", Options{FS: mem, Genesis: testGenesis})
	require.NoError(t, err)
	defer db.Close()
	rec, found, err := db.LoadSignerRecord(bg, testKeys[0].Public().(ed25519.PublicKey))
	require.NoError(t, err)
	require.True(t, found)
	require.GreaterOrEqual(t, rec.Last.Target.Number, uint64(1))
	signer = finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	_, err = signer.SignVote(bg, linkVote(3, 0))
	require.NoError(t, err)
	_, err = signer.SignVote(bg, checkpoint.Vote(linkVote(3, 1)))
	require.ErrorIs(t, err, checkpoint.ErrSlashable)
}

func TestPebbleLoggerAdapter(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newPebbleLogger(zap.New(core).Named("pebble"))
	l.Infof("flushed %d tables\n", 3)
	l.Errorf("background error: %s", "boom")
	require.NoError(t, l.Fatal())
	l.Fatalf("first %s", "fatal")
	l.Fatalf("second")
	require.ErrorIs(t, l.Fatal(), ErrFatal)
	require.Contains(t, l.Fatal().Error(), "first fatal", "the first fatal error is kept")
	all := logs.All()
	require.Len(t, all, 3, "the second fatal error is not logged again")
	require.Equal(t, zapcore.InfoLevel, all[0].Level)
	require.Equal(t, "flushed 3 tables", all[0].ContextMap()["message"])
	require.Equal(t, zapcore.ErrorLevel, all[1].Level)
	require.Equal(t, zapcore.ErrorLevel, all[2].Level)
	require.NoError(t, l.stuck.Err(), "Fatalf returns to a caller that goes on: no open is stuck on it")

	// After the fatal error, Pebble's error lines go to debug and are
	// counted; Close sums them up in one line.
	for range 1000 {
		l.Errorf("background error: %s", "again")
	}
	require.Zero(t, logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessage("pebble error").FilterField(zap.String("message", "background error: again")).Len())
	l.closeSummary()
	sum := logs.FilterMessageSnippet("suppressed").All()
	require.Len(t, sum, 1)
	require.EqualValues(t, 1001, sum[0].ContextMap()["count"])
}

// TestPebbleLoggerRateLimit: without a fatal error, a burst of Pebble error
// lines is cut to errorBurst lines (then one per errorInterval).
func TestPebbleLoggerRateLimit(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newPebbleLogger(zap.New(core).Named("pebble"))
	for i := range 10000 {
		l.Errorf("metrics error: %d", i)
	}
	n := logs.FilterMessage("pebble error").Len()
	require.GreaterOrEqual(t, n, errorBurst)
	require.Less(t, n, 10000)
}

// TestPebbleLoggerFatalWrapsCause: the errno of a fatal error stays
// visible through the wrapping (exit codes and messages depend on it).
func TestPebbleLoggerFatalWrapsCause(t *testing.T) {
	l := newPebbleLogger(zap.NewNop())
	cause := &os.PathError{Op: "write", Path: "db/MANIFEST-000001", Err: syscall.ENOSPC}
	l.Fatalf("MANIFEST flush failed: %v", cause)
	require.ErrorIs(t, l.Fatal(), ErrFatal)
	require.ErrorIs(t, l.Fatal(), syscall.ENOSPC)
	require.Contains(t, l.Fatal().Error(), "MANIFEST flush failed")

	l = newPebbleLogger(zap.NewNop())
	l.backgroundError(&os.PathError{Op: "open", Path: "db/000005.sst", Err: syscall.EIO})
	require.ErrorIs(t, l.Fatal(), syscall.EIO)
	require.ErrorIs(t, l.stuck.Err(), syscall.EIO, "a background error makes an open stuck")
	require.NotErrorIs(t, l.Fatal(), ErrCorrupted)
}
