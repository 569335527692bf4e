package checkpointdb

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// TestSafeSignerConcurrentConflictingRequests: 100 goroutines ask one
// SafeSigner over a real on-disk CheckpointDB to sign conflicting votes for
// one target number (half of them the same vote). Exactly one vote is
// signed; every request for it gets the byte-identical signature, every
// other request is refused as slashable, and so after a reopen.
func TestSafeSignerConcurrentConflictingRequests(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(dir, Options{Genesis: testGenesis})
	require.NoError(t, err)
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)

	const n = 100
	request := func(g int) checkpoint.Vote {
		if g%2 == 0 {
			return linkVote(9, 0) // the shared vote
		}
		return linkVote(9, g) // a vote only this goroutine asks for
	}
	type result struct {
		sv  checkpoint.SignedVote
		err error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			<-start
			sv, err := signer.SignVote(bg, request(g))
			results[g] = result{sv, err}
		}(g)
	}
	close(start)
	wg.Wait()

	signedVotes := map[checkpoint.Vote]checkpoint.SignedVote{}
	for g, r := range results {
		if r.err != nil {
			require.ErrorIs(t, r.err, checkpoint.ErrSlashable, "goroutine %d", g)
			continue
		}
		require.Equal(t, request(g), r.sv.Vote)
		if prev, ok := signedVotes[r.sv.Vote]; ok {
			require.Equal(t, prev.Signature, r.sv.Signature, "identical requests must get the identical signature")
		}
		signedVotes[r.sv.Vote] = r.sv
	}
	require.Len(t, signedVotes, 1, "exactly one vote for the target may be signed")
	var winner checkpoint.SignedVote
	for _, sv := range signedVotes {
		winner = sv
	}
	require.NoError(t, winner.Verify(testKeys[0].Public().(ed25519.PublicKey)))
	if winner.Vote == linkVote(9, 0) {
		for g, r := range results {
			if g%2 == 0 {
				require.NoError(t, r.err, "every request for the winning vote succeeds")
			}
		}
	}

	again, err := signer.SignVote(bg, winner.Vote)
	require.NoError(t, err)
	require.Equal(t, winner, again)
	require.NoError(t, db.Close())

	db, err = Open(dir, Options{Genesis: testGenesis})
	require.NoError(t, err)
	defer db.Close()
	signer = finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	again, err = signer.SignVote(bg, winner.Vote)
	require.NoError(t, err)
	require.Equal(t, winner, again, "byte-identical after reopen")
	for g := 0; g < 10; g++ {
		if v := request(g); v != winner.Vote {
			_, err := signer.SignVote(bg, v)
			require.ErrorIs(t, err, checkpoint.ErrSlashable)
		}
	}
}

// TestConcurrentReadersAndWriters runs readers against writers, prunes and
// flushes (meaningful under -race): reads always see a consistent store.
func TestConcurrentReadersAndWriters(t *testing.T) {
	db := openMem(t)
	const top = 120
	var eg errgroup.Group
	eg.Go(func() error {
		for n := uint64(1); n <= top; n++ {
			for i := 0; i < 4; i++ {
				if err := db.StoreVote(bg, fakeSigned(linkVote(n, 0), i)); err != nil {
					return err
				}
			}
			c, err := checkpoint.NewCertificate([]checkpoint.SignedVote{fakeSigned(linkVote(n, 0), 0), fakeSigned(linkVote(n, 0), 1), fakeSigned(linkVote(n, 0), 2)})
			if err != nil {
				return err
			}
			var f *checkpoint.Checkpoint
			if n > 1 {
				f = cpPtr(n - 1)
			}
			if err := db.StoreCertificate(bg, c, cpPtr(n), f); err != nil {
				return err
			}
			if n%10 == 0 {
				if _, err := db.Prune(bg, 15); err != nil {
					return err
				}
				if err := db.Flush(bg); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for r := 0; r < 3; r++ {
		eg.Go(func() error {
			for i := 0; i < 150; i++ {
				st, err := db.Restore(bg)
				if err != nil {
					return err
				}
				if st.Finalized != nil && len(st.Certificates) > 0 && st.Certificates[0].Target.Number != st.Finalized.Number {
					return fmt.Errorf("restore: first certificate %d, finalized %d", st.Certificates[0].Target.Number, st.Finalized.Number)
				}
				for _, v := range st.Votes {
					if st.Finalized != nil && v.Target.Number <= st.Finalized.Number {
						return fmt.Errorf("restore: vote for %d at or below finalized %d", v.Target.Number, st.Finalized.Number)
					}
				}
				certs, err := db.Certificates(bg, 0, top, 0)
				if err != nil {
					return err
				}
				for j := 1; j < len(certs); j++ {
					if certs[j-1].Target.Number+1 != certs[j].Target.Number {
						return fmt.Errorf("certificates not contiguous above the base: %d then %d", certs[j-1].Target.Number, certs[j].Target.Number)
					}
				}
				if _, err := db.Status(bg, uint64(i%top)+1, 3); err != nil {
					return err
				}
				_ = db.Stats()
			}
			return nil
		})
	}
	require.NoError(t, eg.Wait())
	j, f, err := db.Pointers(bg)
	require.NoError(t, err)
	require.Equal(t, cpPtr(top), j)
	require.Equal(t, cpPtr(top-1), f)
}
