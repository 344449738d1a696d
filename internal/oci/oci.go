// Package oci writes container images as OCI image-layout archives, the
// tarballs `ctr images import` and `skopeo copy oci-archive:` take, without
// a Docker daemon or a registry: capprof's own image (make image) and the
// e2e harness's test image.
//
// The archive is reproducible: the same files give the same bytes, and so
// the same digest. Every entry has the time 0 and root's owner unless told
// otherwise, blobs are written in a fixed order, and the layer is gzipped
// by the standard library, whose output depends only on its input.
package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Media types of the OCI image specification v1.1.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// File is one entry of the image's only layer: a directory (Dir), a
// symbolic link (Link) or a regular file (Data).
type File struct {
	Name     string // relative: bin/sh
	Mode     int64  // permission bits
	UID, GID int
	Dir      bool
	Link     string
	Data     []byte
}

// Image is what an image holds and how it runs.
type Image struct {
	// Names are the references it is imported as: ghcr.io/capprof/capprof:0.1.0.
	Names []string
	Files []File
	// Entrypoint, Cmd, Env, User and WorkingDir become its config.
	Entrypoint, Cmd, Env []string
	User, WorkingDir     string
	// Labels are the config's and the manifest's annotations
	// (org.opencontainers.image.source, .revision, ...).
	Labels map[string]string
}

// Written says what Write wrote.
type Written struct {
	// Digest is the manifest's, which names the image in every registry
	// and runtime: sha256:...
	Digest string
	// Size is the archive's size in bytes.
	Size int64
}

// Write writes img as an OCI image-layout archive to w.
func Write(w io.Writer, img Image) (Written, error) {
	if len(img.Names) == 0 {
		return Written{}, errors.New("an image needs a name")
	}
	layer, diffID, err := buildLayer(img.Files)
	if err != nil {
		return Written{}, err
	}
	var blobs []blob
	add := func(mediaType string, data []byte, annotations map[string]string) descriptor {
		b := newBlob(mediaType, data)
		blobs = append(blobs, b)
		b.desc.Annotations = annotations
		return b.desc
	}
	layerDesc := add(mediaTypeLayer, layer, nil)
	config, err := json.Marshal(imageConfig{
		Architecture: "amd64", OS: "linux", Created: time.Unix(0, 0).UTC(),
		Config: runConfig{Entrypoint: img.Entrypoint, Cmd: img.Cmd, Env: img.Env, User: img.User, WorkingDir: img.WorkingDir, Labels: img.Labels},
		RootFS: rootFS{Type: "layers", DiffIDs: []string{diffID}},
	})
	if err != nil {
		return Written{}, err
	}
	configDesc := add(mediaTypeConfig, config, nil)
	manifest, err := json.Marshal(imageManifest{SchemaVersion: 2, MediaType: mediaTypeManifest, Config: configDesc, Layers: []descriptor{layerDesc}, Annotations: img.Labels})
	if err != nil {
		return Written{}, err
	}
	manifestDesc := add(mediaTypeManifest, manifest, nil)
	index := imageIndex{SchemaVersion: 2, MediaType: mediaTypeIndex}
	for _, name := range img.Names {
		d := manifestDesc
		// containerd's import names the image by the first; the OCI
		// image layout by the second (a tag, or the whole reference).
		d.Annotations = map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}
		index.Manifests = append(index.Manifests, d)
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return Written{}, err
	}

	counter := &countingWriter{w: w}
	aw := tar.NewWriter(counter)
	put := func(name string, data []byte) error {
		if err := aw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := aw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return Written{}, err
	}
	if err := put("index.json", indexJSON); err != nil {
		return Written{}, err
	}
	for _, b := range blobs {
		if err := put("blobs/sha256/"+b.hex, b.data); err != nil {
			return Written{}, err
		}
	}
	if err := aw.Close(); err != nil {
		return Written{}, err
	}
	return Written{Digest: manifestDesc.Digest, Size: counter.n}, nil
}

// buildLayer is the gzipped tar of files, sorted by name so that a
// directory comes before what it holds, and the digest of the tar itself
// (the config's diff id).
func buildLayer(files []File) ([]byte, string, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(files); i++ {
		if files[i].Name == files[i-1].Name {
			return nil, "", fmt.Errorf("image file %q given twice", files[i].Name)
		}
	}
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag = tar.TypeDir
		case f.Link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", fmt.Errorf("image file %q: %w", f.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(raw.Bytes())
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), "sha256:" + hex.EncodeToString(sum[:]), nil
}

type blob struct {
	desc descriptor
	hex  string
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	return blob{desc: descriptor{MediaType: mediaType, Digest: "sha256:" + h, Size: int64(len(data))}, hex: h, data: data}
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type imageIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type imageManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type imageConfig struct {
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Created      time.Time `json:"created"`
	Config       runConfig `json:"config"`
	RootFS       rootFS    `json:"rootfs"`
}

type runConfig struct {
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	User       string            `json:"User,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
