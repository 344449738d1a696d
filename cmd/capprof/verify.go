//go:build linux && amd64

package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/internal/outfile"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/verify"
)

// verifyFlags are verify's flags; check says which go together.
type verifyFlags struct {
	recordingFlags
	output, setup, name                    string
	runs                                   int
	duration, stopTimeout, startup, window time.Duration
	manifest, namespace, node              string
	kube                                   kubeFlags
}

// verifyArgs is what verify's arguments say.
type verifyArgs struct {
	input   string // the profile to verify; empty: record first
	command []string
}

// args splits verify's arguments at their "--" (flagsFirst keeps it, see
// keepsSeparator): the profile before, the command after. With --manifest
// there is a profile and no command.
func (f *verifyFlags) args(c *cli.Context) (verifyArgs, error) {
	var cfg verifyArgs
	args := c.Args().Slice()
	sep := slices.Index(args, "--")
	if c.IsSet("manifest") {
		switch {
		case sep >= 0 && sep < len(args)-1:
			return cfg, fmt.Errorf("--manifest verifies with canary pods, not a command (%q): leave out one or the other", args[sep+1])
		case sep >= 0:
			args = args[:sep]
		}
		if len(args) != 1 {
			return cfg, fmt.Errorf("--manifest: give the one profile to verify, got %d arguments", len(args))
		}
		cfg.input = args[0]
		return cfg, nil
	}
	if sep < 0 || sep == len(args)-1 {
		return cfg, errors.New("no command to verify with: give -- COMMAND [ARGS...] (a test that exits 0 when the workload works)")
	}
	switch sep {
	case 0:
	case 1:
		cfg.input = args[0]
	default:
		return cfg, fmt.Errorf("one profile to verify, got %d (%s): merge them with capprof analyze first, or verify each", sep, strings.Join(args[:sep], ", "))
	}
	cfg.command = args[sep+1:]
	return cfg, nil
}

func verifyCommand() *cli.Command {
	var f verifyFlags
	return &cli.Command{
		Name:         "verify",
		OnUsageError: usageError,
		Usage:        "prove the advice by experiment: run a command with the advised capabilities and without each (needs root)",
		ArgsUsage:    "[PROFILE] -- COMMAND [ARGS...] | --manifest FILE -n NAMESPACE PROFILE",
		Description: "Runs COMMAND (typically a test around the workload) as root with exactly the capabilities the\n" +
			"advice adds (bounding, permitted and effective sets; no_new_privs when the advice sets\n" +
			"allowPrivilegeEscalation: false), recording it: a run passes when COMMAND exits 0 and no\n" +
			"capability check was denied with its syscall failing. Then, for each advised capability in\n" +
			"turn, it runs without it (and without those found removable before it): the capability is\n" +
			"removable when such a run passes, needed when one fails with it denied. Each set runs --runs\n" +
			"times, so a flaky command does not decide; COMMAND runs --runs × (1 + advised) times.\n\n" +
			"PROFILE is the recording to verify (one container: the command's, or the one --name names);\n" +
			"without it, COMMAND is recorded first with capprof's privileges. The profile is written to\n" +
			"-o with the verification: analyze, patch and diff then drop the removable capabilities and\n" +
			"say which decisions were verified. Exits 1 when the advised capabilities failed every run.\n\n" +
			"With --manifest, verifies the manifest's profiled workloads with canary pods in NAMESPACE\n" +
			"(never a default one), bound to this node: per workload, one from its pod template with\n" +
			"the advice and one per advised capability of each profiled container with it taken away,\n" +
			"renamed and labelled capprof.dev/verify=ID only, so no Service routes to them. Each runs for\n" +
			"--window while capprof records it; it passes with no container restarted or ended (exit 0\n" +
			"for pods that run to completion), Ready where readiness is reported, and no check denied\n" +
			"with its syscall failing. capprof says what it creates first and deletes every canary\n" +
			"afterwards, also on Ctrl-C.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Destination: &f.output, Usage: "verified profile `FILE` (JSON; YAML if it ends in .yaml/.yml), or - for stdout; it may be PROFILE itself", Required: true},
			&cli.IntFlag{Name: "runs", Value: 1, Destination: &f.runs, Usage: "runs of each set of capabilities"},
			&cli.StringFlag{Name: "setup", Destination: &f.setup, Usage: "shell `COMMAND` run before every run, with capprof's privileges and not recorded (reset fixtures)"},
			&cli.StringFlag{Name: "name", Value: "main", Destination: &f.name, Usage: "the container to verify and record the command as"},
			&cli.DurationFlag{Name: "duration", Destination: &f.duration, Usage: "stop each run after this long (0: the advised runs go until the command exits, and a run without a capability is stopped after 10 times the longest of them, at least 30s: a hang fails it)"},
			&cli.DurationFlag{Name: "stop-timeout", Value: 5 * time.Second, Destination: &f.stopTimeout, Usage: "how long a stopped run has to exit before it is killed"},
			probeFlag(&f.probe),
			&cli.DurationFlag{Name: "startup", Value: 10 * time.Second, Destination: &f.startup, Usage: "startup window of each run's recording"},
			&cli.StringFlag{Name: "manifest", Destination: &f.manifest, Usage: "verify this manifest's profiled workloads with canary pods (`FILE`, multi-document YAML)", Category: "Pods"},
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Destination: &f.namespace, Usage: "the `NAMESPACE` the canaries run in: required with --manifest", Category: "Pods"},
			&cli.DurationFlag{Name: "window", Value: time.Minute, Destination: &f.window, Usage: "how long each canary runs while it is recorded", Category: "Pods"},
			nodeFlag(&f.node, "this node's `NAME`: the canaries are bound to it"),
			kubeconfigFlag(&f.kube, "Pods"), contextFlag(&f.kube, "Pods"),
			redactFlag(&f.recordingFlags, "mask what the capture groups of this RE2 `REGEX` match in the command kept in the profile (repeatable)"),
			defaultRedactionFlag(&f.recordingFlags, "also mask obvious secrets (see capprof record --help)"),
		},
		Action: func(c *cli.Context) error {
			args, err := f.args(c)
			if err != nil {
				return err
			}
			if err := oneStdin(c); err != nil {
				return err
			}
			if err := f.check(c); err != nil {
				return err
			}
			probe, redactor, err := f.recordingFlags.parse()
			if err != nil {
				return err
			}
			var input *v1alpha1.Profile
			if args.input != "" {
				if input, err = loadProfile(c, args.input); err != nil {
					return err
				}
			}
			if err := outfile.Check("-o", f.output); err != nil {
				return err
			}
			signals, stopSignals := stopSignals()
			defer stopSignals()
			var p *v1alpha1.Profile
			if c.IsSet("manifest") {
				p, err = f.verifyPods(c, input, args.input, probe, signals)
			} else {
				p, err = verify.Command(verify.CommandConfig{
					Command: args.command, Profile: input, Source: args.input, Name: f.name, Runs: f.runs,
					Setup: f.setup, Duration: f.duration, Startup: f.startup, Probe: probe,
					StopTimeout: f.stopTimeout, Redact: redactor, Signals: signals,
					Output: commandStderr(c), Progress: c.App.ErrWriter, Version: version,
				})
			}
			if p == nil {
				return err
			}
			if err := profile.Write(p, "-o", f.output, c.App.Writer); err != nil {
				return err
			}
			summary := verifiedSummary(p, f.output)
			if summary == "" {
				summary = "no capability to verify: none advised"
			}
			if errors.Is(err, verify.ErrAdviceFailed) {
				summary = "the advised capabilities failed"
			}
			fmt.Fprintf(c.App.ErrWriter, "capprof: verify: %s; saved %s (capprof analyze %s shows the advice)\n", summary, f.output, f.output)
			if errors.Is(err, verify.ErrAdviceFailed) {
				return statusError{1, err}
			}
			return err
		},
	}
}

// check refuses flags that do not go together, or with the mode (canary
// pods or a command) --manifest chooses.
func (f *verifyFlags) check(c *cli.Context) error {
	if f.runs < 1 {
		return fmt.Errorf("--runs %d: must be at least 1", f.runs)
	}
	if f.name == "" {
		return errors.New("--name must not be empty")
	}
	if err := nonNegative(durationFlag{"duration", f.duration}, durationFlag{"startup", f.startup}, durationFlag{"stop-timeout", f.stopTimeout}); err != nil {
		return err
	}
	if !c.IsSet("manifest") {
		for _, name := range []string{"namespace", "window", "node", "kubeconfig", "context"} {
			if c.IsSet(name) {
				return fmt.Errorf("--%s applies to verifying with canary pods: give --manifest too", name)
			}
		}
		return nil
	}
	for _, name := range []string{"runs", "setup", "name", "duration", "stop-timeout"} {
		if c.IsSet(name) {
			return fmt.Errorf("--%s applies to verifying with a command, not canary pods", name)
		}
	}
	if f.namespace == "" {
		return errors.New("--manifest: give the namespace the canary pods may run in with -n NAMESPACE (verify never picks one)")
	}
	if f.window <= 0 {
		return fmt.Errorf("--window %s: must be positive", f.window)
	}
	return nil
}

// verifyPods is verify's pod mode.
func (f *verifyFlags) verifyPods(c *cli.Context, input *v1alpha1.Profile, source string, probe bpf.Backend, signals <-chan os.Signal) (*v1alpha1.Profile, error) {
	m, err := loadManifest(c, f.manifest)
	if err != nil {
		return nil, fmt.Errorf("--manifest: %w", err)
	}
	return verify.Pods(verify.PodsConfig{Manifest: m, Profile: input, Source: source, Namespace: f.namespace,
		Window: f.window, Node: f.node, Kubeconfig: f.kube.kubeconfig, Context: f.kube.context,
		Probe: probe, Startup: f.startup, Signals: signals, Progress: c.App.ErrWriter, Version: version})
}

// verifiedSummary says, per verified container, which capabilities were
// verified needed and which removable.
func verifiedSummary(p *v1alpha1.Profile, source string) string {
	var verified []v1alpha1.Container
	for _, c := range p.Containers {
		if c.Verification != nil {
			verified = append(verified, c)
		}
	}
	a := profile.Analyze([]profile.Input{{Source: source, Profile: &v1alpha1.Profile{Containers: verified}}})
	var parts []string
	for _, ca := range a.Containers {
		summary := ca.VerificationSummary()
		if len(a.Containers) > 1 {
			summary = ca.Key().String() + ": " + summary
		}
		parts = append(parts, summary)
	}
	return strings.Join(parts, "; ")
}
