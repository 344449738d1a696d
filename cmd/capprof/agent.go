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
	"github.com/capprof/capprof/kube"
)

// agentFlags are agent's flags.
type agentFlags struct {
	recordingFlags
	node  string
	flush time.Duration
	kube  kubeFlags
}

func agentCommand() *cli.Command {
	var f agentFlags
	return &cli.Command{
		Name:         "agent",
		OnUsageError: usageError,
		Usage:        "the node agent of cluster mode (a DaemonSet; needs root): records this node's pods for every CapabilityRecording",
		Description: "Watches CapabilityRecordings and records the pods each selects on this node from their\n" +
			"containers' first instruction; writes what it recorded as this node's CapabilityNodeResult\n" +
			"every --flush, when a recorded container ends, and when the recording's duration is over.\n" +
			"Restarted, it goes on from its node's results: the time it was down is written as a gap.",
		Flags: []cli.Flag{
			nodeFlag(&f.node, "this node's `NAME` (in a pod: the downward API's spec.nodeName as $NODE_NAME)"),
			&cli.DurationFlag{Name: "flush", Value: 10 * time.Second, Destination: &f.flush, Usage: "how often to write this node's results while recording"},
			probeFlag(&f.probe),
			kubeconfigFlag(&f.kube, "Cluster"), contextFlag(&f.kube, "Cluster"),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("agent takes no arguments, got %q", c.Args().First())
			}
			if f.flush <= 0 {
				return fmt.Errorf("--flush %s: must be positive", f.flush)
			}
			probe, _, err := f.recordingFlags.parse()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return agent.Run(ctx, agent.Config{Node: f.node, Kube: kube.ClusterConfig{Kubeconfig: f.kube.kubeconfig, Context: f.kube.context},
				Flush: f.flush, Probe: probe, Version: version, Log: c.App.ErrWriter})
		},
	}
}
