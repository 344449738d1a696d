package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/render"
)

var diffFailOn = []string{"new-capabilities", "any-change"}

// diffFlags are diff's flags.
type diffFlags struct {
	output, failOn string
	cluster        clusterFlags
}

func diffCommand() *cli.Command {
	var f diffFlags
	return &cli.Command{
		Name:         "diff",
		OnUsageError: func(c *cli.Context, err error, sub bool) error { return statusError{2, usageError(c, err, sub)} },
		Usage:        "compare two profiles, for CI: what each container newly needs",
		ArgsUsage:    "BASE HEAD | BASE --from-cluster KIND/NAME",
		Description: "Analyzes both profiles and lists, per container, capabilities newly required or no\n" +
			"longer required, new denials, new privilege gains at exec and executables newly doing\n" +
			"privileged work. Exit status: 1 when the --fail-on condition holds, 0 otherwise, 2 on\n" +
			"bad input. -o markdown fits a pull-request comment. With --from-cluster, HEAD is a\n" +
			"workload (deploy/web) whose CapabilityProfile object is read from the cluster.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Destination: &f.output, Usage: "output format: " + strings.Join(render.DiffFormats, ", ")},
			&cli.StringFlag{Name: "fail-on", Destination: &f.failOn, Usage: "exit 1 when a container newly requires a capability (new-capabilities) or anything changed (any-change)"},
		}, f.cluster.flags("take HEAD from")...),
		Action: func(c *cli.Context) error {
			badInput := func(err error) error { return statusError{2, err} }
			if err := oneOf(c, "output", render.DiffFormats); err != nil {
				return badInput(err)
			}
			if err := oneOf(c, "fail-on", diffFailOn); err != nil {
				return badInput(err)
			}
			if err := f.cluster.check(c); err != nil {
				return badInput(err)
			}
			if c.NArg() != 2 {
				return badInput(fmt.Errorf("want two profiles, got %d: capprof diff BASE HEAD, or capprof diff BASE --from-cluster KIND/NAME", c.NArg()))
			}
			// BASE is a file; HEAD is the cluster's with --from-cluster.
			sources := []source{{c.Args().Get(0), false}, {c.Args().Get(1), f.cluster.fromCluster}}
			var analyses [2]profile.Analysis
			var names [2]string
			for i, s := range sources {
				a, err := analyzeSources(c, &f.cluster, []source{s})
				if err != nil {
					return badInput(err)
				}
				analyses[i], names[i] = a, inputName(s.arg)
				if s.fromCluster {
					names[i] = "cluster " + s.arg
				}
				for _, ca := range a.Containers {
					if w := profile.CoverageWarning(ca.Coverage); w != "" {
						fmt.Fprintf(c.App.ErrWriter, "capprof: warning: %s: %s: %s\n", names[i], ca.Key(), w)
					}
				}
			}
			d := profile.DiffAnalyses(names[0], analyses[0], names[1], analyses[1])
			if err := render.Diff(c.App.Writer, d, f.output); err != nil {
				return err
			}
			switch {
			case f.failOn == "new-capabilities" && d.NewCapabilities():
				return statusError{1, errors.New("--fail-on new-capabilities: a container newly requires capabilities")}
			case f.failOn == "any-change" && d.Changed():
				return statusError{1, errors.New("--fail-on any-change: the profiles differ")}
			}
			return nil
		},
	}
}
