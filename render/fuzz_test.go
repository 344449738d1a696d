package render

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/capprof/capprof/profile"
)

// FuzzProfile feeds any bytes, as JSON and as YAML, through what a profile
// from a pull request meets: parsing and validation, analyze in every
// format, and diff in every format. A bad profile must get an error, never
// a panic; a good one must render.
func FuzzProfile(f *testing.F) {
	for _, name := range []string{"web.json", "web-replica.yaml", "empty.json", "hostile.json", "../../manifest/testdata/shop.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, filepath.Ext(name) == ".yaml")
	}
	f.Add([]byte("apiVersion: capprof.dev/v1alpha1\nkind: CapabilityProfile\ncontainers: []\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, isYAML bool) {
		p, err := profile.Parse(data, isYAML)
		if err != nil {
			return
		}
		a := profile.Analyze([]profile.Input{{Source: "fuzz.json", Profile: p}})
		for _, format := range Formats {
			if err := Analysis(&bytes.Buffer{}, a, format); err != nil {
				t.Fatalf("analyze -o %s: %v", format, err)
			}
		}
		d := profile.DiffAnalyses("base.json", profile.Analysis{}, "fuzz.json", a)
		for _, format := range DiffFormats {
			if err := Diff(&bytes.Buffer{}, d, format); err != nil {
				t.Fatalf("diff -o %s: %v", format, err)
			}
		}
	})
}
