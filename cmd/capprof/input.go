package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
)

// stdinName is how messages name standard input, given as "-".
const stdinName = "stdin"

// inputName is how messages name an input argument: "stdin" for "-".
func inputName(path string) string {
	if path == "-" {
		return stdinName
	}
	return path
}

// stdin reads standard input for the one argument that may be "-";
// another "-" in the same invocation is refused, not read empty.
func stdin(c *cli.Context, what string) ([]byte, error) {
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	if first, read := c.App.Metadata["stdin"].(string); read {
		return nil, fmt.Errorf("the %s from -: standard input was read already, for the %s; only one input can come from it", what, first)
	}
	c.App.Metadata["stdin"] = what
	data, err := io.ReadAll(c.App.Reader)
	if err != nil {
		return nil, fmt.Errorf("read the %s from standard input: %w", what, err)
	}
	return data, nil
}

// oneStdin refuses, before anything is read, a --manifest and a profile
// both from standard input.
func oneStdin(c *cli.Context) error {
	if c.String("manifest") == "-" && slices.Contains(c.Args().Slice(), "-") {
		return errors.New("--manifest - and a profile -: only one input can come from standard input")
	}
	return nil
}

// loadProfile reads a profile from a file, or from standard input for "-".
func loadProfile(c *cli.Context, path string) (*v1alpha1.Profile, error) {
	if path != "-" {
		return profile.Load(path)
	}
	data, err := stdin(c, "profile")
	if err != nil {
		return nil, err
	}
	p, err := profile.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stdinName, err)
	}
	return p, nil
}

// loadManifest reads a manifest from a file, or from standard input for "-".
func loadManifest(c *cli.Context, path string) (*manifest.Manifest, error) {
	if path != "-" {
		return manifest.Load(path)
	}
	data, err := stdin(c, "manifest")
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, errors.New("stdin: empty: no manifest")
	}
	return manifest.Parse(stdinName, data)
}
