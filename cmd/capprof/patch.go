package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
)

// patchFlags are patch's flags.
type patchFlags struct {
	manifest, output string
	allowEmpty       bool
	cluster          clusterFlags
}

func patchCommand() *cli.Command {
	var f patchFlags
	return &cli.Command{
		Name:         "patch",
		OnUsageError: usageError,
		Usage:        "apply the advice to a manifest, or write the patches that apply it",
		ArgsUsage:    "--manifest FILE PROFILE... | --from-cluster KIND/NAME...",
		Description: "Writes the manifest with each profiled container's securityContext set to the advice\n" +
			"(capabilities, privileged, allowPrivilegeEscalation, runAsNonRoot/runAsUser where\n" +
			"advised, seccompProfile unless one is set); its other fields, the order and comments\n" +
			"are kept, and stderr says what was not. Containers with no profile are left alone and\n" +
			"listed on stderr. -o json6902 writes one JSON patch per object, a line each, for\n" +
			"kubectl patch --type json, and stderr names each line's object and command;\n" +
			"-o strategic and -o json6902-yaml write one YAML patch per object, each headed by its\n" +
			"kubectl command (--type strategic|json); -o kustomize writes a Kustomization whose\n" +
			"patches carry their targets.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "manifest", Destination: &f.manifest, Usage: "the Kubernetes manifest `FILE` to patch", Required: true},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "manifest", Destination: &f.output, Usage: "what to write: " + strings.Join(manifest.PatchFormats, ", ")},
			&cli.BoolFlag{Name: "allow-empty", Destination: &f.allowEmpty, Usage: "also write the advice (drop [ALL], add []) for containers no process of which was observed"},
		}, f.cluster.flags("apply the advice of")...),
		Action: func(c *cli.Context) error {
			if err := oneOf(c, "output", manifest.PatchFormats); err != nil {
				return err
			}
			if err := f.cluster.check(c); err != nil {
				return err
			}
			a, err := loadAnalysis(c, &f.cluster, "capprof patch --manifest FILE PROFILE..., or --from-cluster KIND/NAME...")
			if err != nil {
				return err
			}
			all := a
			var unobserved []string
			if !f.allowEmpty {
				a.Containers = slices.DeleteFunc(slices.Clone(a.Containers), func(ca profile.ContainerAnalysis) bool {
					if ca.NothingObserved {
						unobserved = append(unobserved, fmt.Sprintf("capprof: %s: no process of it was observed, so its advice rests on no evidence: left alone (record while it runs, or give --allow-empty)", ca.Key()))
					}
					return ca.NothingObserved
				})
			}
			m, err := loadManifest(c, f.manifest)
			if err != nil {
				return fmt.Errorf("--manifest: %w", err)
			}
			notes, err := manifest.Patch(c.App.Writer, m, &a, f.output)
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
