package cluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
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
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch})
	}
	file := func(name, src string) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	}
	for _, d := range []string{"bin/", "tmp/", "data/", "etc/"} {
		if err := dir(d); err != nil {
			return err
		}
	}
	// root:luke, and root is not in luke's group: setting its set-group-ID
	// bit asks for CAP_FSETID, whose denial only clears the bit.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "shared/", Mode: 0o755, Gid: 1000, ModTime: epoch}); err != nil {
		return err
	}
	for _, name := range []string{"etc/passwd", "etc/group"} {
		data := accounts[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			return err
		}
	}
	if err := file("bin/busybox", busybox); err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch}); err != nil {
			return err
		}
	}
	if err := file("workload", workload); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}

	blobs := map[string][]byte{}
	blob := func(mediaType string, data []byte) map[string]any {
		sum := sha256.Sum256(data)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		blobs[hex.EncodeToString(sum[:])] = data
		return map[string]any{"mediaType": mediaType, "digest": digest, "size": len(data)}
	}
	layerDesc := blob("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{"/bin/sleep", "1000000"}, "Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDesc["digest"].(string)}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        blob("application/vnd.oci.image.config.v1+json", config),
		"layers":        []any{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc := blob("application/vnd.oci.image.manifest.v1+json", manifest)
	var manifests []any
	for _, name := range []string{ImageName, sandboxImageName} {
		d := map[string]any{}
		for k, v := range manifestDesc {
			d[k] = v
		}
		d["annotations"] = map[string]string{"io.containerd.image.name": name}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": manifests})
	if err != nil {
		return err
	}

	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	put := func(name string, data []byte) error {
		if err := aw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := aw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	for digest, data := range blobs {
		if err := put("blobs/sha256/"+digest, data); err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path, archive.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write image archive: %w", err)
	}
	return nil
}
