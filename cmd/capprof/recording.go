//go:build linux && amd64

package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/internal/redact"
	"github.com/capprof/capprof/kube"
)

// recordingFlags are the flags of every verb that records (record,
// verify): the probe and redaction.
type recordingFlags struct {
	probe            string
	redact           cli.StringSlice
	defaultRedaction bool
	eventBufferMiB   int // of the verbs that record for long (record, agent); 0 for the others
}

// parse reads --probe and the redaction flags.
func (f *recordingFlags) parse() (bpf.Backend, *redact.Redactor, error) {
	probe, err := bpf.ParseBackend(f.probe)
	if err != nil {
		return "", nil, fmt.Errorf("--probe: %w", err)
	}
	redactor, err := redact.New(f.redact.Value(), f.defaultRedaction)
	return probe, redactor, err
}

// probeFlag is --probe, of the commands that record.
func probeFlag(dest *string) cli.Flag {
	return &cli.StringFlag{Name: "probe", Value: string(bpf.Auto), EnvVars: []string{"CAPPROF_PROBE"}, Destination: dest,
		Usage: "kernel hooks: auto (the first that works here), tracepoint (Linux 6.14+), fexit or kprobe; see capprof probes"}
}

// maxEventBufferMiB bounds --event-buffer-mb: the kernel charges the
// buffer to capprof's memory cgroup.
const maxEventBufferMiB = 1024

// eventBufferFlag is --event-buffer-mb, of the verbs that record for long.
func eventBufferFlag(f *recordingFlags) cli.Flag {
	return &cli.IntFlag{Name: "event-buffer-mb", Value: 4, Destination: &f.eventBufferMiB,
		Action: func(_ *cli.Context, n int) error {
			if n < 1 || n > maxEventBufferMiB || n&(n-1) != 0 {
				return fmt.Errorf("--event-buffer-mb %d: must be a power of two from 1 to %d", n, maxEventBufferMiB)
			}
			return nil
		},
		Usage: "the kernel's buffer of exec, fork and exit events, in MiB (a power of two): it holds what comes while capprof waits for a CPU; " +
			"on a saturated node a larger one drops fewer events, and costs its size in memory"}
}

func redactFlag(f *recordingFlags, usage string) cli.Flag {
	return &cli.StringSliceFlag{Name: "redact", Destination: &f.redact, Usage: usage, Category: "Redaction"}
}

func defaultRedactionFlag(f *recordingFlags, usage string) cli.Flag {
	return &cli.BoolFlag{Name: "default-redaction", Value: true, Destination: &f.defaultRedaction, Usage: usage, Category: "Redaction"}
}

// nodeFlag is --node: this node's name in the cluster.
func nodeFlag(dest *string, usage string) cli.Flag {
	return &cli.StringFlag{Name: "node", Value: kube.DefaultNode(), DefaultText: "$NODE_NAME, else the hostname", Destination: dest, Usage: usage, Category: "Pods"}
}

// durationFlag is a duration flag's name and value, for nonNegative.
type durationFlag struct {
	name  string
	value time.Duration
}

// nonNegative refuses the first negative duration.
func nonNegative(durations ...durationFlag) error {
	for _, d := range durations {
		if d.value < 0 {
			return fmt.Errorf("--%s %s: must not be negative", d.name, d.value)
		}
	}
	return nil
}

// commandStderr is the recorded command's stderr: capprof's own, not escaped.
func commandStderr(c *cli.Context) io.Writer {
	if w, ok := c.App.ErrWriter.(*escape.Writer); ok {
		return w.Raw()
	}
	return c.App.ErrWriter
}

// stopSignals delivers the signals that stop a recording: SIGINT, SIGTERM,
// and SIGHUP (the terminal or SSH session went away), handled as SIGTERM.
func stopSignals() (<-chan os.Signal, func()) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	return signals, func() { signal.Stop(signals) }
}
