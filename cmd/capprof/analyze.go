package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/render"
)

var failOnValues = []string{"missing", "excess", "any"}

// analyzeFlags are analyze's flags; check says which go together.
type analyzeFlags struct {
	output, manifest, runtimeDefaults, failOn string
	cluster                                   clusterFlags
}

func analyzeCommand() *cli.Command {
	var f analyzeFlags
	return &cli.Command{
		Name:         "analyze",
		OnUsageError: usageError,
		Usage:        "merge profiles and show what each container needs",
		ArgsUsage:    "PROFILE... | --from-cluster KIND/NAME...",
		Description: "Merges the profiles (entries with the same namespace, owner and container name are one\n" +
			"container: replicas, nodes and runs combine) and shows, per container, each capability\n" +
			"checked and the decision (required, denied or not needed), the advised securityContext,\n" +
			"the Pod Security Standards level it reaches, and warnings for a reviewer.\n" +
			"With --from-cluster, the arguments are workloads (deploy/web) whose CapabilityProfile\n" +
			"objects are read from the cluster.\n" +
			"-o yaml prints the advised securityContexts; -o json prints everything.\n\n" +
			"With --manifest, also compares each container of the manifest's workloads with its\n" +
			"profile: what it is granted today (its securityContext over the runtime's defaults),\n" +
			"what it can drop and what it misses; --fail-on turns findings into exit status 1.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Destination: &f.output, Usage: "output format: " + strings.Join(render.Formats, ", ")},
			&cli.StringFlag{Name: "manifest", Destination: &f.manifest, Usage: "compare with the workloads in this Kubernetes manifest `FILE` (multi-document YAML)"},
			&cli.StringFlag{Name: "runtime-defaults", Value: "containerd", Destination: &f.runtimeDefaults, Usage: "the container runtime whose default capabilities the manifest's containers get: " + strings.Join(manifest.Runtimes, ", ")},
			&cli.StringFlag{Name: "fail-on", Destination: &f.failOn, Usage: "with --manifest, exit 1 when a container misses a needed capability (missing), is granted one it never needed (excess), or either (any)"},
		}, f.cluster.flags("analyze")...),
		Action: func(c *cli.Context) error {
			if err := f.check(c); err != nil {
				return err
			}
			a, err := loadAnalysis(c, &f.cluster, "capprof analyze PROFILE..., or --from-cluster KIND/NAME...")
			if err != nil {
				return err
			}
			var comparison *manifest.Comparison
			if f.manifest != "" {
				m, err := loadManifest(c, f.manifest)
				if err != nil {
					return fmt.Errorf("--manifest: %w", err)
				}
				if comparison, err = manifest.Compare(m, &a, f.runtimeDefaults); err != nil {
					return fmt.Errorf("--manifest: %w", err)
				}
			}
			if f.output != "table" {
				printContainerWarnings(c.App.ErrWriter, a)
			}
			if err := render.Report(c.App.Writer, a, comparison, f.output); err != nil {
				return err
			}
			if comparison == nil {
				return nil
			}
			missing, excess := comparison.HasMissing(), comparison.HasExcess()
			switch {
			case missing && (f.failOn == "missing" || f.failOn == "any"):
				return statusError{1, errors.New("--fail-on " + f.failOn + ": a container of the manifest lacks a capability it needs")}
			case excess && (f.failOn == "excess" || f.failOn == "any"):
				return statusError{1, errors.New("--fail-on " + f.failOn + ": a container of the manifest is granted capabilities it never needed")}
			}
			return nil
		},
	}
}

// check refuses values out of their lists, and manifest flags without
// --manifest.
func (f *analyzeFlags) check(c *cli.Context) error {
	if err := f.cluster.check(c); err != nil {
		return err
	}
	if err := oneOf(c, "output", render.Formats); err != nil {
		return err
	}
	if err := oneOf(c, "runtime-defaults", manifest.Runtimes); err != nil {
		return err
	}
	if err := oneOf(c, "fail-on", failOnValues); err != nil {
		return err
	}
	if !c.IsSet("manifest") {
		for _, name := range []string{"fail-on", "runtime-defaults"} {
			if c.IsSet(name) {
				return fmt.Errorf("--%s compares with a manifest: give --manifest too", name)
			}
		}
	}
	return nil
}

// loadAnalysis loads the profiles named by the arguments (files, or with
// --from-cluster workloads) and analyzes them together; warnings go to
// stderr.
func loadAnalysis(c *cli.Context, cf *clusterFlags, usage string) (profile.Analysis, error) {
	if c.NArg() == 0 {
		return profile.Analysis{}, fmt.Errorf("no profile given: %s", usage)
	}
	if err := oneStdin(c); err != nil {
		return profile.Analysis{}, err
	}
	return analyzeSources(c, cf, cf.sources(c.Args().Slice()))
}

// analyzeSources loads profiles and analyzes them together; warnings go
// to stderr.
func analyzeSources(c *cli.Context, cf *clusterFlags, sources []source) (profile.Analysis, error) {
	var inputs []profile.Input
	for _, s := range sources {
		p, name, err := cf.load(c, s)
		if err != nil {
			return profile.Analysis{}, err
		}
		inputs = append(inputs, profile.Input{Source: name, Profile: p})
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
