package node

import (
	"fmt"
	"path/filepath"

	"github.com/flarechain/flare-node/internal/storagefault"
)

// checkHWMWritable refuses a start whose checkpoint high-water mark
// (checkpointdb.HWMPath, next to the database directory) could not be
// written: the file itself where it exists (the database rewrites it in
// place after every synced write, the first one at the first vote) and its
// directory (a temporary file is created and renamed there when the file is
// created or grows). Without the check the node would start and stop with
// exit 1 at its first vote.
func checkHWMWritable(hwm string) error {
	for _, check := range []func() error{
		func() error { return storagefault.CheckWritable(filepath.Dir(hwm)) },
		func() error { return storagefault.CheckWritableFile(hwm) },
	} {
		if err := check(); err != nil {
			return fmt.Errorf("%w: cannot write the checkpoint database's high-water mark %s (rewritten after every vote and finalized checkpoint): %w", ErrStartup, hwm, err)
		}
	}
	return nil
}
