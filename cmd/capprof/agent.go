//go:build linux && amd64

package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/agent"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/kube"
)

// agentFlags are agent's flags.
type agentFlags struct {
	recordingFlags
	node                              string
	flush                             time.Duration
	kube                              kubeFlags
	events                            eventsFlags
	eventsMaxSizeMB, eventsMaxBackups int
	pprofAddress                      string
}

func agentCommand() *cli.Command {
	var f agentFlags
	return &cli.Command{
		Name:         "agent",
		OnUsageError: usageError,
		Usage:        "the node agent of cluster mode (a DaemonSet; needs root): records this node's pods for every CapabilityRecording",
		Description: "Watches CapabilityRecordings and records the pods each selects on this node from their\n" +
			"containers' first instruction; writes what it recorded as this node's CapabilityNodeResult\n" +
			"every --flush (a workload whose counts alone grew, every sixth), when a recorded container\n" +
			"ends, and when the recording's duration is over.\n" +
			"Restarted, it goes on from its node's results: the time it was down is written as a gap.",
		Flags: append([]cli.Flag{
			nodeFlag(&f.node, "this node's `NAME` (in a pod: the downward API's spec.nodeName as $NODE_NAME)"),
			&cli.DurationFlag{Name: "flush", Value: 10 * time.Second, Destination: &f.flush, Usage: "how often to write this node's results while recording"},
			probeFlag(&f.probe),
			eventBufferFlag(&f.recordingFlags),
			kubeconfigFlag(&f.kube, "Cluster"), contextFlag(&f.kube, "Cluster"),
			&cli.IntFlag{Name: "events-max-size-mb", Value: 10, Destination: &f.eventsMaxSizeMB, Usage: "rotate the events file once it would grow past this many MiB", Category: "Events"},
			&cli.IntFlag{Name: "events-max-backups", Value: 5, Destination: &f.eventsMaxBackups, Usage: "keep this many rotated events files, named FILE-TIME (0: all)", Category: "Events"},
			redactFlag(&f.recordingFlags, "mask what the capture groups of this RE2 `REGEX` match in the arguments that events show (repeatable): --redact '--license=(\\S+)'"),
			pprofFlag(&f.pprofAddress),
			defaultRedactionFlag(&f.recordingFlags, "also mask obvious secrets in the arguments that events show: values of arguments named like a password, secret, token or key, URL passwords, Authorization headers (--default-redaction=false: none)"),
		}, f.events.flags("write every recording's live events (execs, exits, capability checks, credential changes, as Tetragon's JSON) to `FILE`, rotated as Tetragon rotates its export file, or - for stdout (the container's log)")...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("agent takes no arguments, got %q", c.Args().First())
			}
			if f.flush <= 0 {
				return fmt.Errorf("--flush %s: must be positive", f.flush)
			}
			probe, redactor, err := f.recordingFlags.parse()
			if err != nil {
				return err
			}
			eventsCfg, err := f.events.config(c, redactor, "events-max-size-mb", "events-max-backups")
			if err != nil {
				return err
			}
			if f.eventsMaxSizeMB < 1 {
				return fmt.Errorf("--events-max-size-mb %d: must be at least 1", f.eventsMaxSizeMB)
			}
			if f.eventsMaxBackups < 0 {
				return fmt.Errorf("--events-max-backups %d: must not be negative", f.eventsMaxBackups)
			}
			if eventsCfg != nil && eventsCfg.Output == "-" {
				for _, name := range []string{"events-max-size-mb", "events-max-backups"} {
					if c.IsSet(name) {
						return fmt.Errorf("--%s rotates an events file: stdout is the container runtime's to rotate", name)
					}
				}
			} else if eventsCfg != nil {
				if err := events.CheckRotatedFile(eventsCfg.Output); err != nil {
					return fmt.Errorf("--events %q: %w", eventsCfg.Output, err)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			stopProfiles, err := startProfiles(ctx, f.pprofAddress, c.App.ErrWriter)
			if err != nil {
				return err
			}
			defer stopProfiles()
			return agent.Run(ctx, agent.Config{Node: f.node, Kube: kube.ClusterConfig{Kubeconfig: f.kube.kubeconfig, Context: f.kube.context},
				Flush: f.flush, Probe: probe, EventBufferMiB: f.eventBufferMiB, Version: version, Log: c.App.ErrWriter,
				Events: eventsCfg, EventsMaxSizeMB: f.eventsMaxSizeMB, EventsMaxBackups: f.eventsMaxBackups})
		},
	}
}
