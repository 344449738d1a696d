//go:build linux && amd64

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/internal/redact"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/recorder"
)

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:         "record",
		OnUsageError: usageError,
		Usage:        "record the capability use of pods on this node, or of a command (needs root)",
		ArgsUsage:    "(--pods NAME[,NAME...] | -l SELECTOR) | -- COMMAND [ARGS...]",
		Description: "With --pods or -l, records the selected pods' containers on this node until --duration\n" +
			"or Ctrl-C. Each selected pod is armed in the kernel as soon as it is known, so containers\n" +
			"that start or restart, and pods that come to match, are recorded from their first\n" +
			"instruction; containers already running join when found, and the profile says their\n" +
			"start was missed (--restart restarts their Deployments, StatefulSets and DaemonSets once\n" +
			"armed). With nothing matching yet it waits. Pods come from the Kubernetes API (kubectl's\n" +
			"--kubeconfig/--context rules), or from the container runtime with --runtime-endpoint.\n\n" +
			"With -- COMMAND, starts COMMAND in a fresh cgroup, records it and every descendant, and\n" +
			"saves a profile when it exits (or at --duration, or on Ctrl-C, which stop it).\n" +
			"capprof then exits with COMMAND's exit code.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "profile `FILE` (JSON; YAML if it ends in .yaml/.yml), or - for stdout; a file appears, complete, when recording stops", Required: true},
			&cli.DurationFlag{Name: "duration", Usage: "stop recording after this long (0: until Ctrl-C, or until the command exits)"},
			&cli.DurationFlag{Name: "progress", Value: 10 * time.Second, Usage: "interval of progress lines on stderr (0: none)"},
			probeFlag(),
			&cli.DurationFlag{Name: "startup", Value: 10 * time.Second, Usage: "startup window: checks this soon after a container (or the command) starts are labelled startup, later ones steady"},
			&cli.StringSliceFlag{Name: "pods", Usage: "record the pods with these `NAMES` (comma-separated)", Category: "Pods"},
			&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "record the pods matching this label `SELECTOR` (app=web,tier!=db)", Category: "Pods"},
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "the pods' `NAMESPACE` (default: the kubeconfig context's, or default)", Category: "Pods"},
			&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "select pods in every namespace", Category: "Pods"},
			&cli.StringFlag{Name: "node", Value: kube.DefaultNode(), DefaultText: "$NODE_NAME, else the hostname", Usage: "this node's `NAME` in the cluster", Category: "Pods"},
			kubeconfigFlag(), contextFlag(),
			&cli.StringFlag{Name: "runtime-endpoint", Usage: "find pods through this CRI `SOCKET` instead of the API (unix:///run/containerd/containerd.sock)", Category: "Pods"},
			&cli.BoolFlag{Name: "restart", Usage: "once recording, restart the selected pods' Deployments, StatefulSets and DaemonSets as kubectl rollout restart does, so that their startup is recorded (needs patch on them)", Category: "Pods"},
			&cli.StringFlag{Name: "name", Value: "main", Usage: "container name to record the command as", Category: "Command"},
			&cli.DurationFlag{Name: "stop-timeout", Value: 5 * time.Second, Usage: "how long the command has to exit when stopped before it is killed", Category: "Command"},
			&cli.StringFlag{Name: "events", Usage: "also write live events (execs, exits, capability checks, credential changes) to `FILE`, or - for stdout; a file appears when recording stops", Category: "Events"},
			&cli.StringFlag{Name: "events-format", Value: "json", Usage: "events as JSON lines (Tetragon's field names) or compact lines: " + strings.Join(events.Formats, ", "), Category: "Events"},
			&cli.StringSliceFlag{Name: "events-filter", Usage: "write only events matching `KEY=VALUE` (type=exec|exit|cap|creds, pod=[NAMESPACE/]NAME, container=NAME, cap=NAME, verdict=allowed|denied); repeat a key for either value", Category: "Events"},
			&cli.DurationFlag{Name: "events-rate-limit", Value: time.Second, Usage: "at most one capability-check event per process, capability and verdict per this interval; the rest are counted in the next (0: every check)", Category: "Events"},
			&cli.StringSliceFlag{Name: "redact", Usage: "mask what the capture groups of this RE2 `REGEX` match in every argument, in the profile's command and in events (repeatable): --redact '--license=(\\S+)'", Category: "Redaction"},
			&cli.BoolFlag{Name: "default-redaction", Value: true, Usage: "also mask obvious secrets: values of arguments named like a password, secret, token, API, access or private key or credentials (--db-password=X, --token X, DB_TOKEN=X), URL passwords, Authorization headers (--default-redaction=false: none)", Category: "Redaction"},
		},
		Action: func(c *cli.Context) error {
			probe, redactor, err := recordingFlags(c, "duration", "startup")
			if err != nil {
				return err
			}
			eventsCfg, err := eventsConfig(c, redactor)
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
			if c.IsSet("pods") || c.IsSet("selector") {
				return recordPods(c, probe, signals, eventsCfg)
			}
			for _, f := range []string{"namespace", "all-namespaces", "kubeconfig", "context", "runtime-endpoint", "restart"} {
				if c.IsSet(f) {
					return fmt.Errorf("--%s selects pods: give --pods or -l too, or leave it out to record a command", f)
				}
			}
			if c.String("name") == "" {
				return errors.New("--name must not be empty")
			}
			code, err := recorder.RecordCommand(recorder.CommandConfig{
				Command:        c.Args().Slice(),
				Redact:         redactor,
				Name:           c.String("name"),
				Output:         c.String("output"),
				Duration:       c.Duration("duration"),
				Startup:        c.Duration("startup"),
				Probe:          probe,
				StopTimeout:    c.Duration("stop-timeout"),
				Signals:        signals,
				Stdin:          c.App.Reader,
				Stdout:         c.App.Writer,
				Stderr:         commandStderr(c),
				Progress:       c.App.ErrWriter,
				ProgressPeriod: c.Duration("progress"),
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

// eventsConfig reads the --events flags; nil when no events are asked for.
func eventsConfig(c *cli.Context, redactor *redact.Redactor) (*recorder.EventsConfig, error) {
	if !c.IsSet("events") {
		for _, f := range []string{"events-format", "events-filter", "events-rate-limit"} {
			if c.IsSet(f) {
				return nil, fmt.Errorf("--%s shapes live events: give --events FILE (or - for stdout) too", f)
			}
		}
		return nil, nil
	}
	if c.String("events") == "" {
		return nil, errors.New("--events: give a file, or - for stdout")
	}
	if err := oneOf(c, "events-format", events.Formats); err != nil {
		return nil, err
	}
	if d := c.Duration("events-rate-limit"); d < 0 {
		return nil, fmt.Errorf("--events-rate-limit %s: must not be negative", d)
	}
	filter, err := events.ParseFilter(c.StringSlice("events-filter"))
	if err != nil {
		return nil, fmt.Errorf("--events-filter %w", err)
	}
	return &recorder.EventsConfig{Output: c.String("events"), Stdout: c.App.Writer, Format: c.String("events-format"),
		Filter: filter, RateLimit: c.Duration("events-rate-limit"), Redact: redactor}, nil
}

// recordPods is record's pod mode.
func recordPods(c *cli.Context, probe bpf.Backend, signals <-chan os.Signal, eventsCfg *recorder.EventsConfig) error {
	if c.NArg() > 0 {
		return fmt.Errorf("both pods and a command (%q) given: record one or the other", c.Args().First())
	}
	for _, f := range []string{"name", "stop-timeout"} {
		if c.IsSet(f) {
			return fmt.Errorf("--%s applies to recording a command, not pods", f)
		}
	}
	sel := kube.Selection{
		Names:         c.StringSlice("pods"),
		Namespace:     c.String("namespace"),
		AllNamespaces: c.Bool("all-namespaces"),
		LabelSelector: c.String("selector"),
		Node:          c.String("node"),
	}
	if c.IsSet("pods") && len(sel.Names) == 0 {
		return errors.New("--pods: no pod name given")
	}
	var source kube.Source
	var restarter recorder.Restarter
	if endpoint := c.String("runtime-endpoint"); endpoint != "" {
		for _, f := range []string{"kubeconfig", "context", "restart"} {
			if c.IsSet(f) {
				return fmt.Errorf("--%s and --runtime-endpoint exclude each other: the runtime is asked instead of the API", f)
			}
		}
		cri, err := kube.NewCRISource(c.Context, kube.CRIConfig{Selection: sel, Endpoint: endpoint, Warnings: c.App.ErrWriter})
		if err != nil {
			return err
		}
		defer cri.Close()
		source = cri
	} else {
		api, err := kube.NewAPISource(kube.APIConfig{Selection: sel, Kubeconfig: c.String("kubeconfig"),
			Context: c.String("context"), Warnings: c.App.ErrWriter})
		if err != nil {
			return err
		}
		source = api
		if c.Bool("restart") {
			restarter = api
		}
	}
	return recorder.RecordPods(recorder.PodsConfig{
		Source:         source,
		Node:           sel.Node,
		Output:         c.String("output"),
		Stdout:         c.App.Writer,
		Duration:       c.Duration("duration"),
		Startup:        c.Duration("startup"),
		Probe:          probe,
		Signals:        signals,
		Progress:       c.App.ErrWriter,
		ProgressPeriod: c.Duration("progress"),
		Version:        version,
		Events:         eventsCfg,
		Restarter:      restarter,
	})
}

// commandStderr is the recorded command's stderr: capprof's own, not escaped.
func commandStderr(c *cli.Context) io.Writer {
	if w, ok := c.App.ErrWriter.(*escape.Writer); ok {
		return w.Raw()
	}
	return c.App.ErrWriter
}

// recordingFlags checks the flags of the commands that record: the given
// durations, --probe and the redaction flags.
func recordingFlags(c *cli.Context, durations ...string) (bpf.Backend, *redact.Redactor, error) {
	for _, f := range durations {
		if c.Duration(f) < 0 {
			return "", nil, fmt.Errorf("--%s %s: must not be negative", f, c.Duration(f))
		}
	}
	probe, err := bpf.ParseBackend(c.String("probe"))
	if err != nil {
		return "", nil, fmt.Errorf("--probe: %w", err)
	}
	redactor, err := redact.New(c.StringSlice("redact"), c.Bool("default-redaction"))
	return probe, redactor, err
}

// stopSignals delivers the signals that stop a recording: SIGINT, SIGTERM,
// and SIGHUP (the terminal or SSH session went away), handled as SIGTERM.
func stopSignals() (<-chan os.Signal, func()) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	return signals, func() { signal.Stop(signals) }
}

// probeFlag is --probe, of the commands that record.
func probeFlag() cli.Flag {
	return &cli.StringFlag{Name: "probe", Value: string(bpf.Auto), EnvVars: []string{"CAPPROF_PROBE"}, Usage: "kernel hooks: auto (the first that works here), tracepoint (Linux 6.14+), fexit or kprobe; see capprof probes"}
}

// kubeconfigFlag and contextFlag choose the cluster, kubectl's way.
func kubeconfigFlag() cli.Flag {
	return &cli.StringFlag{Name: "kubeconfig", Usage: "kubeconfig `FILE` (default: $KUBECONFIG, ~/.kube/config, or in-cluster)", Category: "Pods"}
}

func contextFlag() cli.Flag {
	return &cli.StringFlag{Name: "context", Usage: "kubeconfig `CONTEXT` (default: the current one)", Category: "Pods"}
}
