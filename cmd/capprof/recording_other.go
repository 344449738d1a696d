//go:build !(linux && amd64)

package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

// The recording verbs need Linux on amd64 (eBPF objects and the syscall
// table are built for it); analyze, patch and diff work everywhere. Here
// they only say so: their flags are not parsed, so any invocation gets the
// same one line.

func recordCommand() *cli.Command { return needsLinux("record") }
func verifyCommand() *cli.Command { return needsLinux("verify") }
func probesCommand() *cli.Command { return needsLinux("probes") }
func agentCommand() *cli.Command  { return needsLinux("agent") }

func needsLinux(name string) *cli.Command {
	return &cli.Command{
		Name:            name,
		Usage:           "needs Linux on amd64 (this build is " + runtime.GOOS + "/" + runtime.GOARCH + ")",
		SkipFlagParsing: true,
		Action: func(*cli.Context) error {
			return fmt.Errorf("%s needs Linux on amd64: it records with eBPF; this capprof is built for %s/%s, where analyze, patch and diff work", name, runtime.GOOS, runtime.GOARCH)
		},
	}
}
