//go:build linux && amd64

package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/recorder"
)

// recordFlags are record's flags; check says which go together.
type recordFlags struct {
	recordingFlags
	output, name                               string
	duration, progress, startup, stopTimeout   time.Duration
	pods                                       cli.StringSlice
	selector, namespace, node, runtimeEndpoint string
	allNamespaces, restart                     bool
	cluster                                    clusterRecordFlags
	kube                                       kubeFlags
	events                                     eventsFlags
}

func recordCommand() *cli.Command {
	var f recordFlags
	return &cli.Command{
		Name:         "record",
		OnUsageError: usageError,
		Usage:        "record the capability use of pods on this node, or of a command (needs root)",
		ArgsUsage:    "(--pods NAME[,NAME...] | -l SELECTOR) | --cluster (KIND/NAME | -l SELECTOR) | -- COMMAND [ARGS...]",
		Description: "With --pods or -l, records the selected pods' containers on this node until --duration\n" +
			"or Ctrl-C. Each selected pod is armed in the kernel as soon as it is known, so containers\n" +
			"that start or restart, and pods that come to match, are recorded from their first\n" +
			"instruction; containers already running join when found, and the profile says their\n" +
			"start was missed (--restart restarts their Deployments, StatefulSets and DaemonSets once\n" +
			"armed). With nothing matching yet it waits. Pods come from the Kubernetes API (kubectl's\n" +
			"--kubeconfig/--context rules), or from the container runtime with --runtime-endpoint.\n\n" +
			"With -- COMMAND, starts COMMAND in a fresh cgroup, records it and every descendant, and\n" +
			"saves a profile when it exits (or at --duration, or on Ctrl-C, which stop it).\n" +
			"capprof then exits with COMMAND's exit code.\n\n" +
			"With --cluster, creates a CapabilityRecording of a workload (deploy/web) or of the pods -l\n" +
			"selects, in -n's namespace: capprof's node agents record its pods on every node, and its\n" +
			"controller keeps one CapabilityProfile per workload current. It prints the recording's\n" +
			"name; --wait waits until it is Complete and prints its profiles.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Destination: &f.output, Usage: "profile `FILE` (JSON; YAML if it ends in .yaml/.yml), or - for stdout; a file appears, complete, when recording stops (required but with --cluster)"},
			&cli.DurationFlag{Name: "duration", Destination: &f.duration, Usage: "stop recording after this long (0: until Ctrl-C, or until the command exits)"},
			&cli.DurationFlag{Name: "progress", Value: 10 * time.Second, Destination: &f.progress, Usage: "interval of progress lines on stderr (0: none)"},
			probeFlag(&f.probe),
			eventBufferFlag(&f.recordingFlags),
			&cli.DurationFlag{Name: "startup", Value: 10 * time.Second, Destination: &f.startup, Usage: "startup window: checks this soon after a container (or the command) starts are labelled startup, later ones steady"},
			&cli.StringSliceFlag{Name: "pods", Destination: &f.pods, Usage: "record the pods with these `NAMES` (comma-separated)", Category: "Pods"},
			&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Destination: &f.selector, Usage: "record the pods matching this label `SELECTOR` (app=web,tier!=db)", Category: "Pods"},
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Destination: &f.namespace, Usage: "the pods' `NAMESPACE` (default: the kubeconfig context's, or default)", Category: "Pods"},
			&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Destination: &f.allNamespaces, Usage: "select pods in every namespace", Category: "Pods"},
			nodeFlag(&f.node, "this node's `NAME` in the cluster"),
			kubeconfigFlag(&f.kube, "Pods"), contextFlag(&f.kube, "Pods"),
			&cli.StringFlag{Name: "runtime-endpoint", Destination: &f.runtimeEndpoint, Usage: "find pods through this CRI `SOCKET` instead of the API (unix:///run/containerd/containerd.sock)", Category: "Pods"},
			&cli.BoolFlag{Name: "restart", Destination: &f.restart, Usage: "once recording, restart the selected pods' Deployments, StatefulSets and DaemonSets as kubectl rollout restart does, so that their startup is recorded (needs patch on them)", Category: "Pods"},
			&cli.StringFlag{Name: "name", Value: "main", Destination: &f.name, Usage: "container name to record the command as", Category: "Command"},
			&cli.DurationFlag{Name: "stop-timeout", Value: 5 * time.Second, Destination: &f.stopTimeout, Usage: "how long the command has to exit when stopped before it is killed", Category: "Command"},
			&cli.BoolFlag{Name: "cluster", Destination: &f.cluster.enabled, Usage: "record across the cluster: create a CapabilityRecording for capprof's node agents", Category: "Cluster"},
			&cli.BoolFlag{Name: "wait", Destination: &f.cluster.wait, Usage: "wait until the recording is Complete (needs --duration) and print its profiles", Category: "Cluster"},
			&cli.StringSliceFlag{Name: "containers", Destination: &f.cluster.containers, Usage: "record only these container `NAMES` (comma-separated)", Category: "Cluster"},
			&cli.StringSliceFlag{Name: "exclude-containers", Destination: &f.cluster.exclude, Usage: "leave out these container `NAMES` (a sidecar)", Category: "Cluster"},
			redactFlag(&f.recordingFlags, "mask what the capture groups of this RE2 `REGEX` match in every argument, in the profile's command and in events (repeatable): --redact '--license=(\\S+)'"),
			defaultRedactionFlag(&f.recordingFlags, "also mask obvious secrets: values of arguments named like a password, secret, token, API, access or private key or credentials (--db-password=X, --token X, DB_TOKEN=X), URL passwords, Authorization headers (--default-redaction=false: none)"),
		}, f.events.flags("also write live events (execs, exits, capability checks, credential changes) to `FILE`, or - for stdout; a file appears when recording stops")...),
		Action: func(c *cli.Context) error {
			if f.cluster.enabled {
				if err := f.checkCluster(c); err != nil {
					return err
				}
				return f.recordCluster(c)
			}
			if err := f.check(c); err != nil {
				return err
			}
			probe, redactor, err := f.recordingFlags.parse()
			if err != nil {
				return err
			}
			eventsCfg, err := f.events.config(c, redactor)
			if err != nil {
				return err
			}
			signals, stopSignals := stopSignals()
			defer stopSignals()
			// A closed stdout (record --events - | head) fails the writes
			// with EPIPE instead of killing capprof. Notified, not ignored:
			// an ignored signal would stay ignored in the recorded command.
			pipes := make(chan os.Signal, 1)
			signal.Notify(pipes, syscall.SIGPIPE)
			defer signal.Stop(pipes)
			if f.podMode(c) {
				return f.recordPods(c, probe, signals, eventsCfg)
			}
			code, err := recorder.RecordCommand(recorder.CommandConfig{
				Command:        c.Args().Slice(),
				Redact:         redactor,
				Name:           f.name,
				Output:         f.output,
				Duration:       f.duration,
				Startup:        f.startup,
				Probe:          probe,
				EventBufferMiB: f.eventBufferMiB,
				StopTimeout:    f.stopTimeout,
				Signals:        signals,
				Stdin:          c.App.Reader,
				Stdout:         c.App.Writer,
				Stderr:         commandStderr(c),
				Progress:       c.App.ErrWriter,
				ProgressPeriod: f.progress,
				Version:        version,
				Events:         eventsCfg,
			})
			if err != nil {
				return err
			}
			if code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}

func (f *recordFlags) podMode(c *cli.Context) bool { return c.IsSet("pods") || c.IsSet("selector") }

// check refuses flags that do not go together, or with the mode (pods or
// a command) the others choose.
func (f *recordFlags) check(c *cli.Context) error {
	if err := nonNegative(durationFlag{"duration", f.duration}, durationFlag{"startup", f.startup}); err != nil {
		return err
	}
	for _, name := range []string{"wait", "containers", "exclude-containers"} {
		if c.IsSet(name) {
			return fmt.Errorf("--%s applies to a cluster recording: give --cluster too", name)
		}
	}
	if !c.IsSet("output") {
		return errors.New(`Required flag "output" not set: give -o FILE (or - for stdout) for the profile`)
	}
	if !f.podMode(c) {
		for _, name := range []string{"namespace", "all-namespaces", "kubeconfig", "context", "runtime-endpoint", "restart"} {
			if c.IsSet(name) {
				return fmt.Errorf("--%s selects pods: give --pods or -l too, or leave it out to record a command", name)
			}
		}
		if f.name == "" {
			return errors.New("--name must not be empty")
		}
		return nil
	}
	if c.NArg() > 0 {
		return fmt.Errorf("both pods and a command (%q) given: record one or the other", c.Args().First())
	}
	for _, name := range []string{"name", "stop-timeout"} {
		if c.IsSet(name) {
			return fmt.Errorf("--%s applies to recording a command, not pods", name)
		}
	}
	if c.IsSet("pods") && len(f.pods.Value()) == 0 {
		return errors.New("--pods: no pod name given")
	}
	if f.runtimeEndpoint != "" {
		for _, name := range []string{"kubeconfig", "context", "restart"} {
			if c.IsSet(name) {
				return fmt.Errorf("--%s and --runtime-endpoint exclude each other: the runtime is asked instead of the API", name)
			}
		}
	}
	return nil
}

// recordPods is record's pod mode.
func (f *recordFlags) recordPods(c *cli.Context, probe bpf.Backend, signals <-chan os.Signal, eventsCfg *recorder.EventsConfig) error {
	sel := kube.Selection{
		Names:         f.pods.Value(),
		Namespace:     f.namespace,
		AllNamespaces: f.allNamespaces,
		LabelSelector: f.selector,
		Node:          f.node,
	}
	var source kube.Source
	var restarter recorder.Restarter
	if f.runtimeEndpoint != "" {
		cri, err := kube.NewCRISource(c.Context, kube.CRIConfig{Selection: sel, Endpoint: f.runtimeEndpoint, Warnings: c.App.ErrWriter})
		if err != nil {
			return err
		}
		defer cri.Close()
		source = cri
	} else {
		api, err := kube.NewAPISource(kube.APIConfig{Selection: sel, Kubeconfig: f.kube.kubeconfig,
			Context: f.kube.context, Warnings: c.App.ErrWriter})
		if err != nil {
			return err
		}
		source = api
		if f.restart {
			restarter = api
		}
	}
	return recorder.RecordPods(recorder.PodsConfig{
		Source:         source,
		Node:           sel.Node,
		Output:         f.output,
		Stdout:         c.App.Writer,
		Duration:       f.duration,
		Startup:        f.startup,
		Probe:          probe,
		EventBufferMiB: f.eventBufferMiB,
		Signals:        signals,
		Progress:       c.App.ErrWriter,
		ProgressPeriod: f.progress,
		Version:        version,
		Events:         eventsCfg,
		Restarter:      restarter,
	})
}
