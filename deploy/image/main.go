// Command image writes capprof's container image as an OCI image-layout
// archive (make image): one layer holding the static capprof binary, whose
// entrypoint it is. No Docker daemon or registry is involved; the archive
// imports into containerd (ctr -n k8s.io images import) or copies to a
// registry (skopeo copy oci-archive:FILE docker://REF). It prints the
// image's reference with its digest, the same for the same binary.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/capprof/capprof/internal/oci"
	"github.com/capprof/capprof/internal/outfile"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binary := fs.String("binary", "", "the static capprof `FILE` (CGO_ENABLED=0)")
	ref := fs.String("ref", "", "the image's `REFERENCE`: ghcr.io/capprof/capprof:0.1.0")
	out := fs.String("o", "", "the archive `FILE` to write")
	revision := fs.String("revision", "", "the source's git `COMMIT`, as the image's org.opencontainers.image.revision")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *binary == "":
		return errors.New("-binary: give the static capprof binary")
	case *ref == "":
		return errors.New("-ref: give the image's reference")
	case *out == "":
		return errors.New("-o: give the archive's path")
	}
	data, err := os.ReadFile(*binary)
	if err != nil {
		return fmt.Errorf("-binary: %w", err)
	}
	if len(data) < 4 || string(data[:4]) != "\x7fELF" {
		return fmt.Errorf("-binary %q: not an ELF executable", *binary)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":  "capprof",
		"org.opencontainers.image.source": "https://github.com/capprof/capprof",
	}
	if *revision != "" {
		labels["org.opencontainers.image.revision"] = *revision
	}
	img := oci.Image{
		Names: []string{*ref},
		Files: []oci.File{
			{Name: "usr/", Mode: 0o755, Dir: true},
			{Name: "usr/bin/", Mode: 0o755, Dir: true},
			{Name: "usr/bin/capprof", Mode: 0o755, Data: data},
			// A writable /tmp for the few who run it with a writable root.
			{Name: "tmp/", Mode: 0o1777, Dir: true},
		},
		Entrypoint: []string{"/usr/bin/capprof"},
		Labels:     labels,
	}
	var written oci.Written
	if err := outfile.Write("o", *out, stdout, func(w io.Writer) error {
		written, err = oci.Write(w, img)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "image: wrote %s (%.1f MB)\n", *out, float64(written.Size)/1e6)
	fmt.Fprintf(stdout, "%s@%s\n", *ref, written.Digest)
	return nil
}
