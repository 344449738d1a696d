package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/internal/outfile"
	"github.com/capprof/capprof/internal/redact"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/verify"
)

// verifyConfig is what verify's flags and arguments say.
type verifyConfig struct {
	input   string // the profile to verify; empty: record first
	output  string
	command []string
}

// verifyArgs splits verify's arguments at their "--" (flagsFirst keeps it,
// see keepsSeparator): the profile before, the command after.
func verifyArgs(c *cli.Context) (verifyConfig, error) {
	cfg := verifyConfig{output: c.String("output")}
	args := c.Args().Slice()
	sep := slices.Index(args, "--")
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
	return &cli.Command{
		Name:         "verify",
		OnUsageError: usageError,
		Usage:        "prove the advice by experiment: run a command with the advised capabilities and without each (needs root)",
		ArgsUsage:    "[PROFILE] -- COMMAND [ARGS...]",
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
			"say which decisions were verified. Exits 1 when the advised capabilities failed every run.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "verified profile `FILE` (JSON; YAML if it ends in .yaml/.yml), or - for stdout; it may be PROFILE itself", Required: true},
			&cli.IntFlag{Name: "runs", Value: 1, Usage: "runs of each set of capabilities"},
			&cli.StringFlag{Name: "setup", Usage: "shell `COMMAND` run before every run, with capprof's privileges and not recorded (reset fixtures)"},
			&cli.StringFlag{Name: "name", Value: "main", Usage: "the container to verify and record the command as"},
			&cli.DurationFlag{Name: "duration", Usage: "stop each run after this long (0: until the command exits)"},
			&cli.DurationFlag{Name: "stop-timeout", Value: 5 * time.Second, Usage: "how long a stopped run has to exit before it is killed"},
			&cli.StringFlag{Name: "probe", Value: string(bpf.Auto), EnvVars: []string{"CAPPROF_PROBE"}, Usage: "kernel hooks: auto, tracepoint, fexit or kprobe; see capprof probes"},
			&cli.DurationFlag{Name: "startup", Value: 10 * time.Second, Usage: "startup window of each run's recording"},
			&cli.StringSliceFlag{Name: "redact", Usage: "mask what the capture groups of this RE2 `REGEX` match in the command kept in the profile (repeatable)", Category: "Redaction"},
			&cli.BoolFlag{Name: "default-redaction", Value: true, Usage: "also mask obvious secrets (see capprof record --help)", Category: "Redaction"},
		},
		Action: func(c *cli.Context) error {
			args, err := verifyArgs(c)
			if err != nil {
				return err
			}
			if c.Int("runs") < 1 {
				return fmt.Errorf("--runs %d: must be at least 1", c.Int("runs"))
			}
			for _, f := range []string{"duration", "startup", "stop-timeout"} {
				if c.Duration(f) < 0 {
					return fmt.Errorf("--%s %s: must not be negative", f, c.Duration(f))
				}
			}
			if c.String("name") == "" {
				return errors.New("--name must not be empty")
			}
			probe, err := bpf.ParseBackend(c.String("probe"))
			if err != nil {
				return fmt.Errorf("--probe: %w", err)
			}
			redactor, err := redact.New(c.StringSlice("redact"), c.Bool("default-redaction"))
			if err != nil {
				return err
			}
			var input *profile.Profile
			if args.input != "" {
				if input, err = profile.Load(args.input); err != nil {
					return err
				}
			}
			if err := outfile.Check("-o", args.output); err != nil {
				return err
			}
			signals := make(chan os.Signal, 2)
			signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer signal.Stop(signals)
			p, err := verify.Command(verify.CommandConfig{
				Command: args.command, Profile: input, Source: args.input, Name: c.String("name"), Runs: c.Int("runs"),
				Setup: c.String("setup"), Duration: c.Duration("duration"), Startup: c.Duration("startup"), Probe: probe,
				StopTimeout: c.Duration("stop-timeout"), Redact: redactor, Signals: signals,
				Output: commandStderr(c), Progress: c.App.ErrWriter, Version: version,
			})
			if p == nil {
				return err
			}
			if err := p.Write("-o", args.output, c.App.Writer); err != nil {
				return err
			}
			summary := "the advised capabilities failed"
			if i := slices.IndexFunc(p.Containers, func(c profile.Container) bool { return c.Verification != nil }); i >= 0 && !errors.Is(err, verify.ErrAdviceFailed) {
				a := profile.Analyze([]profile.Input{{Source: args.output, Profile: &profile.Profile{Containers: p.Containers[i : i+1]}}})
				summary = a.Containers[0].VerificationSummary()
			}
			fmt.Fprintf(c.App.ErrWriter, "capprof: verify: %s; saved %s (capprof analyze %s shows the advice)\n", summary, args.output, args.output)
			if errors.Is(err, verify.ErrAdviceFailed) {
				return statusError{1, err}
			}
			return err
		},
	}
}
