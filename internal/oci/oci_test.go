package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func testImage() Image {
	return Image{
		Names: []string{"example.com/a:1", "example.com/a:latest"},
		Files: []File{
			{Name: "bin/tool", Mode: 0o755, Data: []byte("#!/bin/true\n")},
			{Name: "bin/", Mode: 0o755, Dir: true},
			{Name: "bin/alias", Mode: 0o777, Link: "tool"},
			{Name: "shared/", Mode: 0o755, Dir: true, GID: 1000},
		},
		Entrypoint: []string{"/bin/tool"},
		User:       "65534",
		Labels:     map[string]string{"org.opencontainers.image.revision": "abc"},
	}
}

// readArchive maps an OCI layout archive's entries to their contents.
func readArchive(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = b
	}
}

func blobOf(t *testing.T, entries map[string][]byte, d descriptor) []byte {
	t.Helper()
	b, ok := entries["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
	if !ok {
		t.Fatalf("no blob %s", d.Digest)
	}
	sum := sha256.Sum256(b)
	if "sha256:"+hex.EncodeToString(sum[:]) != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content does not match its descriptor", d.Digest)
	}
	return b
}

// TestWrite: the archive is an OCI layout whose index names the image by
// each name, whose blobs match their descriptors, whose config runs the
// entrypoint as the user, and whose layer holds the files in order, its
// digest the config's diff id; written twice, it is the same bytes.
func TestWrite(t *testing.T) {
	var first, second bytes.Buffer
	w1, err := Write(&first, testImage())
	if err != nil {
		t.Fatal(err)
	}
	w2, err := Write(&second, testImage())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) || w1 != w2 {
		t.Fatalf("not reproducible: %v vs %v", w1, w2)
	}
	if w1.Size != int64(first.Len()) {
		t.Errorf("size %d, wrote %d", w1.Size, first.Len())
	}
	entries := readArchive(t, first.Bytes())
	if string(entries["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %s", entries["oci-layout"])
	}
	var index imageIndex
	if err := json.Unmarshal(entries["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 2 || index.Manifests[1].Annotations["io.containerd.image.name"] != "example.com/a:latest" || index.Manifests[0].Digest != w1.Digest {
		t.Fatalf("index: %+v (digest %s)", index, w1.Digest)
	}
	var manifest imageManifest
	if err := json.Unmarshal(blobOf(t, entries, index.Manifests[0]), &manifest); err != nil {
		t.Fatal(err)
	}
	var config imageConfig
	if err := json.Unmarshal(blobOf(t, entries, manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if config.Config.User != "65534" || config.Config.Entrypoint[0] != "/bin/tool" || config.OS != "linux" {
		t.Errorf("config: %+v", config)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blobOf(t, entries, manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); config.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("diff id %s is not the layer's digest", config.RootFS.DiffIDs[0])
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "shared/" && h.Gid != 1000 || h.Name == "bin/alias" && h.Linkname != "tool" || !h.ModTime.Equal(config.Created) {
			t.Errorf("entry %+v", h)
		}
	}
	if got := strings.Join(names, " "); got != "bin/ bin/alias bin/tool shared/" {
		t.Errorf("layer: %s", got)
	}
}

// TestWriteRefuses: an image without a name, or with a file twice.
func TestWriteRefuses(t *testing.T) {
	img := testImage()
	img.Names = nil
	if _, err := Write(io.Discard, img); err == nil || err.Error() != "an image needs a name" {
		t.Errorf("no name: %v", err)
	}
	img = testImage()
	img.Files = append(img.Files, File{Name: "bin/tool", Data: []byte("x")})
	if _, err := Write(io.Discard, img); err == nil || !strings.Contains(err.Error(), `"bin/tool" given twice`) {
		t.Errorf("twice: %v", err)
	}
}
