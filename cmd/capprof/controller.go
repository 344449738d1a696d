package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/controller"
	"github.com/capprof/capprof/kube"
)

// controllerFlags are controller's flags.
type controllerFlags struct {
	leaderElect    bool
	leaseNamespace string
	finalGrace     time.Duration
	kube           kubeFlags
	pprofAddress   string
}

func controllerCommand() *cli.Command {
	var f controllerFlags
	return &cli.Command{
		Name:         "controller",
		OnUsageError: usageError,
		Usage:        "the controller of cluster mode (a Deployment): merges the agents' results into CapabilityProfiles",
		Description: "Merges each CapabilityRecording's CapabilityNodeResults into one CapabilityProfile per\n" +
			"workload whenever a node reports, keeps the recording's status (phase, pods observed and\n" +
			"from start, nodes, conditions), and deletes the node results of deleted recordings; the\n" +
			"profiles stay. With --leader-elect, only the holder of the Lease capprof-controller works.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "leader-elect", Destination: &f.leaderElect, Usage: "work only while holding the Lease " + controller.LeaseName + " (for more than one replica)"},
			&cli.StringFlag{Name: "lease-namespace", Destination: &f.leaseNamespace, Usage: "the Lease's `NAMESPACE` (default: the controller's own, in a pod)"},
			&cli.DurationFlag{Name: "final-grace", Value: time.Minute, Destination: &f.finalGrace, Usage: "how long after a recording's end to wait for the agents' final results"},
			kubeconfigFlag(&f.kube, "Cluster"), contextFlag(&f.kube, "Cluster"),
			pprofFlag(&f.pprofAddress),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("controller takes no arguments, got %q", c.Args().First())
			}
			if f.finalGrace < 0 {
				return fmt.Errorf("--final-grace %s: must not be negative", f.finalGrace)
			}
			if c.IsSet("lease-namespace") && !f.leaderElect {
				return fmt.Errorf("--lease-namespace places the leader-election Lease: give --leader-elect too")
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			stopProfiles, err := startProfiles(ctx, f.pprofAddress, c.App.ErrWriter)
			if err != nil {
				return err
			}
			defer stopProfiles()
			return controller.Run(ctx, controller.Config{Kube: kube.ClusterConfig{Kubeconfig: f.kube.kubeconfig, Context: f.kube.context},
				LeaderElection: f.leaderElect, LeaseNamespace: f.leaseNamespace, FinalGrace: f.finalGrace, Version: version, Log: c.App.ErrWriter})
		},
	}
}
