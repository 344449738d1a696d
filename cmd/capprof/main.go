// Command capprof records which Linux capabilities a workload really uses,
// with eBPF, and turns that into the smallest securityContext that works.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/internal/redact"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/recorder"
	"github.com/capprof/capprof/render"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitCode carries a status to main without printing anything: record
// exits with its command's code.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// statusError ends capprof with code after printing err as usual: a CI
// condition that holds (1) or, for diff, bad input (2).
type statusError struct {
	code int
	err  error
}

func (e statusError) Error() string { return e.err.Error() }

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes one capprof invocation and returns its exit status; errors
// are printed as one line on stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// capprof's messages name what workloads and profiles name: escaped.
	stderr = escape.NewWriter(stderr)
	app := newApp(stdin, stdout, stderr)
	err := app.Run(flagsFirst(app, args))
	var code exitCode
	var status statusError
	var quit recorder.QuitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &quit):
		fmt.Fprintf(stderr, "capprof: %s\n", err)
		return 128 + int(quit.Signal)
	case errors.As(err, &status):
		fmt.Fprintf(stderr, "capprof: %s\n", status.err)
		return status.code
	default:
		fmt.Fprintf(stderr, "capprof: %s\n", err)
		return 1
	}
}

// commandStderr is the recorded command's stderr: capprof's own, not escaped.
func commandStderr(c *cli.Context) io.Writer {
	if w, ok := c.App.ErrWriter.(*escape.Writer); ok {
		return w.Raw()
	}
	return c.App.ErrWriter
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "capprof",
		Usage:           "record the Linux capabilities a workload uses and derive the smallest securityContext it needs; verify proves it",
		Version:         version,
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// Errors are printed once, by main; cli must not exit by itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Commands:       []*cli.Command{recordCommand(), verifyCommand(), analyzeCommand(), patchCommand(), diffCommand(), probesCommand()},
	}
}

// flagsFirst lets flags follow positional arguments, as in
// "capprof analyze web.json -o yaml": urfave/cli stops parsing flags at the
// first positional argument, so the subcommand's flags (with their values)
// are moved in front of its positional arguments. Everything after "--" is
// left alone: it is the recorded command's own.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, name := range f.Names() {
			takesValue[name] = !isBool
		}
	}
	var flags, positional []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	if keepsSeparator[cmd.Name] {
		// The flag parser takes this "--", so the user's stays among the
		// arguments and tells what comes before it from the command.
		out = append(out, "--")
	}
	return append(out, positional...)
}

// keepsSeparator are the commands whose arguments keep their "--": verify
// takes a profile before it and a command after.
var keepsSeparator = map[string]bool{"verify": true}

// usageError keeps a usage mistake to one line on stderr instead of the
// help text on stdout.
func usageError(c *cli.Context, err error, _ bool) error {
	name := "capprof"
	if c.Command != nil && c.Command.Name != "" {
		name += " " + c.Command.Name
	}
	return fmt.Errorf("%w (see %s --help)", err, name)
}

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

// loadAnalysis loads the profiles named by the arguments and analyzes
// them together; warnings go to stderr.
func loadAnalysis(c *cli.Context, usage string) (profile.Analysis, error) {
	if c.NArg() == 0 {
		return profile.Analysis{}, fmt.Errorf("no profile given: %s", usage)
	}
	return analyzeFiles(c, c.Args().Slice())
}

// analyzeFiles loads profiles and analyzes them together; warnings go to
// stderr.
func analyzeFiles(c *cli.Context, paths []string) (profile.Analysis, error) {
	var inputs []profile.Input
	for _, path := range paths {
		p, err := profile.Load(path)
		if err != nil {
			return profile.Analysis{}, err
		}
		inputs = append(inputs, profile.Input{Source: path, Profile: p})
	}
	a := profile.Analyze(inputs)
	for _, w := range a.Warnings {
		fmt.Fprintf(c.App.ErrWriter, "capprof: warning: %s\n", w)
	}
	return a, nil
}

// printContainerWarnings writes each container's warnings to w, for the
// outputs that do not carry them (the table does).
func printContainerWarnings(w io.Writer, a profile.Analysis) {
	for _, ca := range a.Containers {
		for _, warning := range ca.Warnings {
			fmt.Fprintf(w, "capprof: warning: %s: %s\n", ca.Key(), warning)
		}
	}
}

// oneOf checks a flag's value against its valid values; a flag without a
// default that was not given is fine.
func oneOf(c *cli.Context, flag string, valid []string) error {
	if v := c.String(flag); !slices.Contains(valid, v) && (v != "" || c.IsSet(flag)) {
		return fmt.Errorf("--%s %q: must be one of %s", flag, v, strings.Join(valid, ", "))
	}
	return nil
}

var failOnValues = []string{"missing", "excess", "any"}

func analyzeCommand() *cli.Command {
	return &cli.Command{
		Name:         "analyze",
		OnUsageError: usageError,
		Usage:        "merge profiles and show what each container needs",
		ArgsUsage:    "PROFILE...",
		Description: "Merges the profiles (entries with the same namespace, owner and container name are one\n" +
			"container: replicas, nodes and runs combine) and shows, per container, each capability\n" +
			"checked and the decision (required, denied or not needed), the advised securityContext,\n" +
			"the Pod Security Standards level it reaches, and warnings for a reviewer.\n" +
			"-o yaml prints the advised securityContexts; -o json prints everything.\n\n" +
			"With --manifest, also compares each container of the manifest's workloads with its\n" +
			"profile: what it is granted today (its securityContext over the runtime's defaults),\n" +
			"what it can drop and what it misses; --fail-on turns findings into exit status 1.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "output format: " + strings.Join(render.Formats, ", ")},
			&cli.StringFlag{Name: "manifest", Usage: "compare with the workloads in this Kubernetes manifest `FILE` (multi-document YAML)"},
			&cli.StringFlag{Name: "runtime-defaults", Value: "containerd", Usage: "the container runtime whose default capabilities the manifest's containers get: " + strings.Join(manifest.Runtimes, ", ")},
			&cli.StringFlag{Name: "fail-on", Usage: "with --manifest, exit 1 when a container misses a needed capability (missing), is granted one it never needed (excess), or either (any)"},
		},
		Action: func(c *cli.Context) error {
			if err := oneOf(c, "output", render.Formats); err != nil {
				return err
			}
			if err := oneOf(c, "runtime-defaults", manifest.Runtimes); err != nil {
				return err
			}
			if err := oneOf(c, "fail-on", failOnValues); err != nil {
				return err
			}
			failOn := c.String("fail-on")
			if !c.IsSet("manifest") {
				for _, f := range []string{"fail-on", "runtime-defaults"} {
					if c.IsSet(f) {
						return fmt.Errorf("--%s compares with a manifest: give --manifest too", f)
					}
				}
			}
			a, err := loadAnalysis(c, "capprof analyze PROFILE...")
			if err != nil {
				return err
			}
			var comparison *manifest.Comparison
			if path := c.String("manifest"); path != "" {
				m, err := manifest.Load(path)
				if err != nil {
					return fmt.Errorf("--manifest: %w", err)
				}
				if comparison, err = manifest.Compare(m, &a, c.String("runtime-defaults")); err != nil {
					return fmt.Errorf("--manifest: %w", err)
				}
			}
			format := c.String("output")
			if format != "table" {
				printContainerWarnings(c.App.ErrWriter, a)
			}
			if err := render.Report(c.App.Writer, a, comparison, format); err != nil {
				return err
			}
			if comparison == nil {
				return nil
			}
			missing, excess := comparison.HasMissing(), comparison.HasExcess()
			switch {
			case missing && (failOn == "missing" || failOn == "any"):
				return statusError{1, errors.New("--fail-on " + failOn + ": a container of the manifest lacks a capability it needs")}
			case excess && (failOn == "excess" || failOn == "any"):
				return statusError{1, errors.New("--fail-on " + failOn + ": a container of the manifest is granted capabilities it never needed")}
			}
			return nil
		},
	}
}

func patchCommand() *cli.Command {
	return &cli.Command{
		Name:         "patch",
		OnUsageError: usageError,
		Usage:        "apply the advice to a manifest, or write the patches that apply it",
		ArgsUsage:    "--manifest FILE PROFILE...",
		Description: "Writes the manifest with each profiled container's securityContext set to the advice\n" +
			"(capabilities, privileged, allowPrivilegeEscalation, runAsNonRoot/runAsUser where\n" +
			"advised, seccompProfile unless one is set); its other fields, the order and comments\n" +
			"are kept, and stderr says what was not. Containers with no profile are left alone and\n" +
			"listed on stderr. -o strategic and -o json6902 write one kubectl patch per object\n" +
			"(kubectl patch --type strategic|json); -o kustomize writes a Kustomization whose\n" +
			"patches carry their targets.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "manifest", Usage: "the Kubernetes manifest `FILE` to patch", Required: true},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "manifest", Usage: "what to write: " + strings.Join(manifest.PatchFormats, ", ")},
			&cli.BoolFlag{Name: "allow-empty", Usage: "also write the advice (drop [ALL], add []) for containers no process of which was observed"},
		},
		Action: func(c *cli.Context) error {
			if err := oneOf(c, "output", manifest.PatchFormats); err != nil {
				return err
			}
			a, err := loadAnalysis(c, "capprof patch --manifest FILE PROFILE...")
			if err != nil {
				return err
			}
			all := a
			var unobserved []string
			if !c.Bool("allow-empty") {
				a.Containers = slices.DeleteFunc(slices.Clone(a.Containers), func(ca profile.ContainerAnalysis) bool {
					if ca.NothingObserved {
						unobserved = append(unobserved, fmt.Sprintf("capprof: %s: no process of it was observed, so its advice rests on no evidence: left alone (record while it runs, or give --allow-empty)", ca.Key()))
					}
					return ca.NothingObserved
				})
			}
			m, err := manifest.Load(c.String("manifest"))
			if err != nil {
				return fmt.Errorf("--manifest: %w", err)
			}
			notes, err := manifest.Patch(c.App.Writer, m, &a, c.String("output"))
			if err != nil {
				return fmt.Errorf("--manifest: %w", err)
			}
			printContainerWarnings(c.App.ErrWriter, all)
			for _, n := range unobserved {
				fmt.Fprintln(c.App.ErrWriter, n)
			}
			for _, n := range notes {
				fmt.Fprintf(c.App.ErrWriter, "capprof: %s\n", n)
			}
			return nil
		},
	}
}

var diffFailOn = []string{"new-capabilities", "any-change"}

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:         "diff",
		OnUsageError: func(c *cli.Context, err error, sub bool) error { return statusError{2, usageError(c, err, sub)} },
		Usage:        "compare two profiles, for CI: what each container newly needs",
		ArgsUsage:    "BASE HEAD",
		Description: "Analyzes both profiles and lists, per container, capabilities newly required or no\n" +
			"longer required, new denials, new privilege gains at exec and executables newly doing\n" +
			"privileged work. Exit status: 1 when the --fail-on condition holds, 0 otherwise, 2 on\n" +
			"bad input. -o markdown fits a pull-request comment.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "output format: " + strings.Join(render.DiffFormats, ", ")},
			&cli.StringFlag{Name: "fail-on", Usage: "exit 1 when a container newly requires a capability (new-capabilities) or anything changed (any-change)"},
		},
		Action: func(c *cli.Context) error {
			badInput := func(err error) error { return statusError{2, err} }
			if err := oneOf(c, "output", render.DiffFormats); err != nil {
				return badInput(err)
			}
			if err := oneOf(c, "fail-on", diffFailOn); err != nil {
				return badInput(err)
			}
			failOn := c.String("fail-on")
			if c.NArg() != 2 {
				return badInput(fmt.Errorf("want two profiles, got %d: capprof diff BASE HEAD", c.NArg()))
			}
			var analyses [2]profile.Analysis
			for i, path := range c.Args().Slice() {
				a, err := analyzeFiles(c, []string{path})
				if err != nil {
					return badInput(err)
				}
				analyses[i] = a
				for _, ca := range a.Containers {
					if w := profile.CoverageWarning(ca.Coverage); w != "" {
						fmt.Fprintf(c.App.ErrWriter, "capprof: warning: %s: %s: %s\n", path, ca.Key(), w)
					}
				}
			}
			d := profile.DiffAnalyses(c.Args().Get(0), analyses[0], c.Args().Get(1), analyses[1])
			if err := render.Diff(c.App.Writer, d, c.String("output")); err != nil {
				return err
			}
			switch {
			case failOn == "new-capabilities" && d.NewCapabilities():
				return statusError{1, errors.New("--fail-on new-capabilities: a container newly requires capabilities")}
			case failOn == "any-change" && d.Changed():
				return statusError{1, errors.New("--fail-on any-change: the profiles differ")}
			}
			return nil
		},
	}
}

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
			if os.Geteuid() != 0 {
				return errors.New("probes needs root: loading eBPF programs takes CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; run it with sudo")
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
