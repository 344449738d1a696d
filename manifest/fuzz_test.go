package manifest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/render"
)

// FuzzManifest feeds any bytes as a manifest through compare (analyze
// --manifest) and every patch format: an error, never a panic.
func FuzzManifest(f *testing.F) {
	for _, name := range Manifests {
		data, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	a := ShopAnalysis(f, "testdata")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if cmp, err := manifest.Compare(m, a, "containerd"); err == nil {
			if err := render.Comparison(&bytes.Buffer{}, cmp); err != nil {
				t.Fatal(err)
			}
		}
		for _, format := range manifest.PatchFormats {
			m, err := manifest.Parse("fuzz.yaml", data)
			if err != nil {
				t.Fatalf("the same bytes parsed once, not twice: %v", err)
			}
			manifest.Patch(&bytes.Buffer{}, m, a, format)
		}
	})
}
