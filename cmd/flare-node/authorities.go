package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/api"
)

// authoritiesCommand shows a stopped node's authority set: the chain
// spec's schedule and the hand-offs its checkpoint database recorded.
func authoritiesCommand() *cli.Command {
	return &cli.Command{
		Name:  "authorities",
		Usage: "show the authority set in force on a stopped node and the scheduled hand-offs",
		Description: "Reads the chain spec's authority schedule and the hand-off certificates stored in the\n" +
			"checkpoint database of --base-path (read-only; the node must be stopped). Without a\n" +
			"checkpoint database it shows the genesis set and every scheduled change. The running\n" +
			"node answers the same on GET /authorities.",
		Flags:  append(locationFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON (the GET /authorities document)"}),
		Action: authoritiesAction,
	}
}

func authoritiesAction(c *cli.Context) error {
	cfg, err := locate(c)
	if err != nil {
		return err
	}
	genesis := genesisOf(cfg.Spec)
	sched := cfg.Spec.Schedule()
	sched.Genesis.Genesis = genesis
	var handOffs []checkpoint.Certificate
	db, err := checkpointdb.Open(cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesis, ReadOnly: true})
	switch {
	case err == nil:
		defer db.Close()
		if handOffs, err = db.HandOffs(c.Context); err != nil {
			return fmt.Errorf("read hand-offs: %w", err)
		}
	case errors.Is(err, checkpointdb.ErrNotExist):
		// No database: the schedule alone.
	default:
		// The same one-line refusal as the other offline tools.
		_, err = openCheckpointDB(cfg, "authorities")
		return err
	}
	set := sched.Genesis
	for _, h := range handOffs {
		if h.SetID != set.SetID {
			return fmt.Errorf("the checkpoint database holds a hand-off of set %d where set %d is in force: it does not belong to this chain spec's schedule", h.SetID, set.SetID)
		}
		next, ok := sched.Set(set.SetID + 1)
		if !ok {
			return fmt.Errorf("the checkpoint database holds a hand-off of set %d, the chain spec schedules no set after it", h.SetID)
		}
		set = next
	}
	keys := func(ks []ed25519.PublicKey) []api.Authority {
		out := make([]api.Authority, 0, len(ks))
		for i, k := range ks {
			out = append(out, api.Authority{Index: uint32(i), PublicKey: "0x" + hex.EncodeToString(k)})
		}
		return out
	}
	doc := api.Authorities{SetID: set.SetID, Authorities: keys(set.Keys), Quorum: set.Quorum(),
		StartedAt: api.BlockPoint{Hash: genesis.String()}, Pending: []api.PendingChange{}}
	if n := len(handOffs); n > 0 {
		h := handOffs[n-1]
		doc.StartedAt = api.BlockPoint{Number: h.Target.Number, Hash: h.Target.Hash.String(), Block: h.Target.Number * cfg.Spec.CheckpointInterval}
	}
	for id := set.SetID; ; id++ {
		ch, ok := sched.Next(id)
		if !ok {
			break
		}
		doc.Pending = append(doc.Pending, api.PendingChange{SetID: ch.SetID, HandOff: ch.HandOff, Authorities: keys(ch.Keys)})
	}
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "chain %s: authority set %d in force since checkpoint %d (%d keys, quorum %d)\n", cfg.Spec.ID, doc.SetID, doc.StartedAt.Number, len(doc.Authorities), doc.Quorum)
	for _, a := range doc.Authorities {
		fmt.Fprintf(w, "  %d  %s\n", a.Index, a.PublicKey)
	}
	if len(doc.Pending) == 0 {
		fmt.Fprintln(w, "no hand-off scheduled")
	}
	for _, p := range doc.Pending {
		fmt.Fprintf(w, "set %d takes over once set %d finalizes checkpoint %d or above (%d keys)\n", p.SetID, p.SetID-1, p.HandOff, len(p.Authorities))
	}
	return nil
}
