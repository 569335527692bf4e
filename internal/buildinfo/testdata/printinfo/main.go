// Command printinfo prints the build information (for buildinfo's tests).
package main

import (
	"fmt"

	"github.com/flarechain/flare-node/internal/buildinfo"
)

func main() { fmt.Println(buildinfo.Version(), buildinfo.Commit()) }
