// Command cleanup removes what crashed end-to-end test runs left behind:
// the processes, pod cgroups, mounts and state directories of every
// harness cluster (see package cluster). `make test` runs it after the tests.
package main

import (
	"fmt"
	"os"

	"github.com/capprof/capprof/e2e/cluster"
)

func main() {
	if err := cluster.CleanupAll(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
		os.Exit(1)
	}
}
