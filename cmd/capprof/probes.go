//go:build linux && amd64

package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/recorder"
	"github.com/capprof/capprof/render"
)

// probeHooks says what each backend attaches to, for capprof probes.
var probeHooks = map[bpf.Backend]string{
	bpf.Tracepoint: "tracepoint capability:cap_capable, credentials compared at set*id/capset checks, exec, exit",
	bpf.Fexit:      "fexit cap_capable (with audit options), fentry commit_creds",
	bpf.Kprobe:     "kprobe+kretprobe cap_capable (with audit options), kprobe commit_creds",
}

func probesCommand() *cli.Command {
	return &cli.Command{
		Name:         "probes",
		OnUsageError: usageError,
		Usage:        "show which probe backends work on this kernel, and the one --probe auto uses (needs root)",
		Description: "Loads and attaches each backend's eBPF programs in turn, with nothing to record, and\n" +
			"detaches them at once. A backend that does not work says why (no tracepoint before\n" +
			"Linux 6.14, fentry refused, no kprobes). Exits 1 when none works.",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("probes takes no arguments, got %q", c.Args().First())
			}
			if err := recorder.NeedRoot("probes"); err != nil {
				return err
			}
			var statuses []render.ProbeStatus
			works := false
			for _, s := range bpf.Survey() {
				st := render.ProbeStatus{Backend: string(s.Backend), Hooks: probeHooks[s.Backend]}
				if s.Err != nil {
					// The first line: a verifier log follows it.
					st.Reason, _, _ = strings.Cut(s.Err.Error(), "\n")
				} else {
					works = true
				}
				statuses = append(statuses, st)
			}
			if err := render.Probes(c.App.Writer, bpf.KernelRelease(), statuses); err != nil {
				return err
			}
			if !works {
				return exitCode(1)
			}
			return nil
		},
	}
}
