package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/internal/pprofserver"
)

// pprofFlag is --pprof-address of the long-running verbs (agent, controller).
func pprofFlag(address *string) cli.Flag {
	return &cli.StringFlag{Name: "pprof-address", Destination: address, Category: "Debugging",
		Usage: "serve Go's profiles (heap, CPU, goroutines) under /debug/pprof/ on `HOST:PORT`, such as 127.0.0.1:6060; whoever reaches it can read them, so keep it on loopback"}
}

// startProfiles serves the profiles when --pprof-address is given, until
// ctx ends; the returned function stops serving them.
func startProfiles(ctx context.Context, address string, log io.Writer) (func(), error) {
	if address == "" {
		return func() {}, nil
	}
	addr, stop, err := pprofserver.Start(ctx, address)
	if err != nil {
		return nil, fmt.Errorf("--pprof-address %q: %w", address, err)
	}
	fmt.Fprintf(log, "capprof: serving Go's profiles on http://%s/debug/pprof/\n", addr)
	return stop, nil
}
