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

	"github.com/capprof/capprof/kube"
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

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes one capprof invocation and returns its exit status; errors
// are printed as one line on stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.Run(flagsFirst(app, args))
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	default:
		fmt.Fprintf(stderr, "capprof: %s\n", err)
		return 1
	}
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "capprof",
		Usage:           "record the Linux capabilities a workload uses and derive its minimal securityContext",
		Version:         version,
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// Errors are printed once, by main; cli must not exit by itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Commands:       []*cli.Command{recordCommand(), analyzeCommand()},
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
	return append(out, positional...)
}

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
			"or Ctrl-C; containers that start or restart, and pods that come to match, join as they\n" +
			"appear. Pods come from the Kubernetes API (kubectl's --kubeconfig/--context rules), or\n" +
			"from the container runtime with --runtime-endpoint.\n\n" +
			"With -- COMMAND, starts COMMAND in a fresh cgroup, records it and every descendant, and\n" +
			"saves a profile when it exits (or at --duration, or on Ctrl-C, which stop it).\n" +
			"capprof then exits with COMMAND's exit code.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "profile `FILE` (JSON; YAML if it ends in .yaml/.yml)", Required: true},
			&cli.DurationFlag{Name: "duration", Usage: "stop recording after this long (0: until Ctrl-C, or until the command exits)"},
			&cli.DurationFlag{Name: "progress", Value: 10 * time.Second, Usage: "interval of progress lines on stderr (0: none)"},
			&cli.DurationFlag{Name: "startup", Value: 10 * time.Second, Usage: "startup window: checks this soon after a container (or the command) starts are labelled startup, later ones steady"},
			&cli.StringSliceFlag{Name: "pods", Usage: "record the pods with these `NAMES` (comma-separated)", Category: "Pods"},
			&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "record the pods matching this label `SELECTOR` (app=web,tier!=db)", Category: "Pods"},
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "the pods' `NAMESPACE` (default: the kubeconfig context's, or default)", Category: "Pods"},
			&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "select pods in every namespace", Category: "Pods"},
			&cli.StringFlag{Name: "node", Value: kube.DefaultNode(), DefaultText: "$NODE_NAME, else the hostname", Usage: "this node's `NAME` in the cluster", Category: "Pods"},
			&cli.StringFlag{Name: "kubeconfig", Usage: "kubeconfig `FILE` (default: $KUBECONFIG, ~/.kube/config, or in-cluster)", Category: "Pods"},
			&cli.StringFlag{Name: "context", Usage: "kubeconfig `CONTEXT` (default: the current one)", Category: "Pods"},
			&cli.StringFlag{Name: "runtime-endpoint", Usage: "find pods through this CRI `SOCKET` instead of the API (unix:///run/containerd/containerd.sock)", Category: "Pods"},
			&cli.StringFlag{Name: "name", Value: "main", Usage: "container name to record the command as", Category: "Command"},
			&cli.DurationFlag{Name: "stop-timeout", Value: 5 * time.Second, Usage: "how long the command has to exit when stopped before it is killed", Category: "Command"},
		},
		Action: func(c *cli.Context) error {
			for _, f := range []string{"duration", "startup"} {
				if c.Duration(f) < 0 {
					return fmt.Errorf("--%s %s: must not be negative", f, c.Duration(f))
				}
			}
			signals := make(chan os.Signal, 2)
			signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(signals)
			if c.IsSet("pods") || c.IsSet("selector") {
				return recordPods(c, signals)
			}
			for _, f := range []string{"namespace", "all-namespaces", "kubeconfig", "context", "runtime-endpoint"} {
				if c.IsSet(f) {
					return fmt.Errorf("--%s selects pods: give --pods or -l too, or leave it out to record a command", f)
				}
			}
			if c.String("name") == "" {
				return errors.New("--name must not be empty")
			}
			code, err := recorder.RecordCommand(recorder.CommandConfig{
				Command:        c.Args().Slice(),
				Name:           c.String("name"),
				Output:         c.String("output"),
				Duration:       c.Duration("duration"),
				Startup:        c.Duration("startup"),
				StopTimeout:    c.Duration("stop-timeout"),
				Signals:        signals,
				Stdin:          c.App.Reader,
				Stdout:         c.App.Writer,
				Stderr:         c.App.ErrWriter,
				Progress:       c.App.ErrWriter,
				ProgressPeriod: c.Duration("progress"),
				Version:        version,
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

// recordPods is record's pod mode.
func recordPods(c *cli.Context, signals <-chan os.Signal) error {
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
	if endpoint := c.String("runtime-endpoint"); endpoint != "" {
		for _, f := range []string{"kubeconfig", "context"} {
			if c.IsSet(f) {
				return fmt.Errorf("--%s and --runtime-endpoint exclude each other: the runtime is asked instead of the API", f)
			}
		}
		cri, err := kube.NewCRISource(c.Context, kube.CRIConfig{Selection: sel, Endpoint: endpoint})
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
	}
	return recorder.RecordPods(recorder.PodsConfig{
		Source:         source,
		Node:           sel.Node,
		Output:         c.String("output"),
		Duration:       c.Duration("duration"),
		Startup:        c.Duration("startup"),
		Signals:        signals,
		Progress:       c.App.ErrWriter,
		ProgressPeriod: c.Duration("progress"),
		Version:        version,
	})
}

func analyzeCommand() *cli.Command {
	return &cli.Command{
		Name:         "analyze",
		OnUsageError: usageError,
		Usage:        "merge profiles and show what each container needs",
		ArgsUsage:    "PROFILE...",
		Description: "Merges the profiles (entries with the same namespace, owner and container name are one\n" +
			"container: replicas, nodes and runs combine) and shows,\n" +
			"per container, each capability checked and the decision: required, denied or not needed.\n" +
			"-o yaml prints the minimal securityContext; -o json prints both.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "output format: " + strings.Join(render.Formats, ", ")},
		},
		Action: func(c *cli.Context) error {
			format := c.String("output")
			if !slices.Contains(render.Formats, format) {
				return fmt.Errorf("-o %q: unknown output format (valid: %s)", format, strings.Join(render.Formats, ", "))
			}
			if c.NArg() == 0 {
				return errors.New("no profile given: capprof analyze PROFILE...")
			}
			var inputs []profile.Input
			for _, path := range c.Args().Slice() {
				p, err := profile.Load(path)
				if err != nil {
					return err
				}
				inputs = append(inputs, profile.Input{Source: path, Profile: p})
			}
			a := profile.Analyze(inputs)
			for _, w := range a.Warnings {
				fmt.Fprintf(c.App.ErrWriter, "capprof: warning: %s\n", w)
			}
			return render.Analysis(c.App.Writer, a, format)
		},
	}
}
