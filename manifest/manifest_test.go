package manifest_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/render"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden/")

// Manifests are the test manifests, one per workload kind, with init
// containers, pod-level securityContexts, existing add/drop lists, a
// privileged container, comments and an unprofiled container among them.
var Manifests = []string{"deployment", "statefulset", "daemonset", "cronjob", "job", "replicaset", "pod"}

// ShopAnalysis analyzes testdata/shop.json, the profile of every test
// manifest's containers.
func ShopAnalysis(t testing.TB, dir string) *profile.Analysis {
	t.Helper()
	p, err := profile.Load(filepath.Join(dir, "shop.json"))
	if err != nil {
		t.Fatal(err)
	}
	a := profile.Analyze([]profile.Input{{Source: "shop.json", Profile: p}})
	return &a
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./manifest -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from %s (run go test ./manifest -update if the change is intended):\n%s", golden, got)
	}
}

// TestGolden writes every output over every test manifest: analyze's table
// and JSON with --manifest, and each patch format, with patch's notes.
func TestGolden(t *testing.T) {
	a := ShopAnalysis(t, "testdata")
	for _, name := range Manifests {
		m, err := manifest.Load(filepath.Join("testdata", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cmp, err := manifest.Compare(m, a, "containerd")
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{"table", "json"} {
			t.Run(name+"/analyze-"+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := render.Report(&buf, profile.Analysis{Containers: matchedOnly(a, cmp)}, cmp, format); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, name+".analyze."+format, buf.Bytes())
			})
		}
		for _, format := range manifest.PatchFormats {
			t.Run(name+"/patch-"+format, func(t *testing.T) {
				m, err := manifest.Load(filepath.Join("testdata", name+".yaml"))
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				notes, err := manifest.Patch(&buf, m, a, format)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range notes {
					buf.WriteString("# note: " + n + "\n")
				}
				checkGolden(t, name+".patch."+format, buf.Bytes())
			})
		}
	}
}

// matchedOnly keeps the golden files about the manifest's own containers.
func matchedOnly(a *profile.Analysis, cmp *manifest.Comparison) []profile.ContainerAnalysis {
	var out []profile.ContainerAnalysis
	for _, c := range a.Containers {
		for _, w := range cmp.Workloads {
			for _, cc := range w.Containers {
				if cc.Profile == c.Key().String() {
					out = append(out, c)
				}
			}
		}
	}
	return out
}
