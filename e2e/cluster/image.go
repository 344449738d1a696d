package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/capprof/capprof/internal/oci"
	"github.com/capprof/capprof/internal/outfile"
)

// Image names: the test image, and the same image tagged as the pod sandbox
// ("pause") image, so that no registry is ever asked.
const (
	ImageName        = "docker.io/library/capprof-busybox:e2e"
	sandboxImageName = "registry.k8s.io/pause:3.9"
)

// busyboxApplets are the commands the test pods use.
var busyboxApplets = []string{"sh", "sleep", "chown", "touch", "true", "cat", "ls", "id", "whoami", "dmesg", "su"}

// accounts are the image's users and groups, for whoami and su.
var accounts = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nluke:x:1000:1000:Luke:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
	"etc/group":  "root:x:0:\nluke:x:1000:\nnogroup:x:65534:\n",
}

// buildImage writes an OCI image archive holding busybox (static), its
// applets, the workload binary at /workload and a directory /shared of
// group luke, for `ctr images import`.
func buildImage(path, busybox, workload string) error {
	files := []oci.File{
		{Name: "bin/", Mode: 0o755, Dir: true}, {Name: "tmp/", Mode: 0o755, Dir: true},
		{Name: "data/", Mode: 0o755, Dir: true}, {Name: "etc/", Mode: 0o755, Dir: true},
		// root:luke, and root is not in luke's group: setting its
		// set-group-ID bit asks for CAP_FSETID, whose denial only clears
		// the bit.
		{Name: "shared/", Mode: 0o755, Dir: true, GID: 1000},
	}
	for name, data := range accounts {
		files = append(files, oci.File{Name: name, Mode: 0o644, Data: []byte(data)})
	}
	for name, src := range map[string]string{"bin/busybox": busybox, "workload": workload} {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		files = append(files, oci.File{Name: name, Mode: 0o755, Data: data})
	}
	for _, a := range busyboxApplets {
		files = append(files, oci.File{Name: "bin/" + a, Mode: 0o777, Link: "busybox"})
	}
	img := oci.Image{Names: []string{ImageName, sandboxImageName}, Files: files,
		Entrypoint: []string{"/bin/sleep", "1000000"}, Env: []string{"PATH=/bin"}}
	return writeArchive(path, img)
}

// writeArchive writes img's archive to path, whole or not at all.
func writeArchive(path string, img oci.Image) error {
	if err := outfile.Write("image", path, nil, func(w io.Writer) error {
		_, err := oci.Write(w, img)
		return err
	}); err != nil {
		return fmt.Errorf("write image archive: %w", err)
	}
	return nil
}

// ImportImage imports an OCI image archive into the runtime's image store
// of Kubernetes (namespace k8s.io), as `ctr images import` does on a node.
func (c *Cluster) ImportImage(ctx context.Context, archive string) error {
	sock := filepath.Join(c.cfg.Dir, "containerd", "containerd.sock")
	out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "-n", "k8s.io", "images", "import", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import image %s: %v: %s", archive, err, out)
	}
	return nil
}
