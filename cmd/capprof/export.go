package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/render"
)

// exportFlags are export's flags.
type exportFlags struct {
	output string
}

func exportCommand() *cli.Command {
	var f exportFlags
	return &cli.Command{
		Name:         "export",
		OnUsageError: usageError,
		Usage:        "write a pod recording as CapabilityProfile objects for kubectl apply",
		ArgsUsage:    "PROFILE",
		Description: "Writes one CapabilityProfile object per workload (namespace and owner) of a pod\n" +
			"recording, with its status (required capabilities, Pod Security level, coverage) filled\n" +
			"in: capprof export web.json | kubectl apply -f - publishes it, and analyze, patch and\n" +
			"diff --from-cluster read it back (install capprof's CRDs first: deploy/capprof.yaml). A\n" +
			"command's recording belongs to no workload and is refused.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "yaml", Destination: &f.output, Usage: "output format: " + strings.Join(render.ObjectFormats, ", ")},
		},
		Action: func(c *cli.Context) error {
			if err := oneOf(c, "output", render.ObjectFormats); err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usageError(c, fmt.Errorf("want one profile, got %d arguments: capprof export PROFILE", c.NArg()), false)
			}
			path := c.Args().First()
			p, err := loadProfile(c, path)
			if err != nil {
				return err
			}
			objects, err := profile.Objects(p)
			if err != nil {
				return fmt.Errorf("%s: %w", inputName(path), err)
			}
			return render.Objects(c.App.Writer, objects, f.output)
		},
	}
}
