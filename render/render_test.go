package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/capprof/capprof/profile"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden renders analyses of the profiles in testdata/ in every format
// and compares with testdata/<case>.<format>.golden.
func TestGolden(t *testing.T) {
	cases := []struct {
		name     string
		profiles []string
	}{
		{"web", []string{"web.json"}},
		{"replicas", []string{"web.json", "web-replica.yaml"}},
		{"empty", []string{"empty.json"}},
	}
	for _, tc := range cases {
		var inputs []profile.Input
		for _, name := range tc.profiles {
			p, err := profile.Load(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, profile.Input{Source: name, Profile: p})
		}
		a := profile.Analyze(inputs)
		for _, format := range Formats {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := Analysis(&buf, a, format); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", tc.name+"."+format+".golden")
				if *update {
					if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./render -update)", err)
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Fatalf("%s differs from %s (run go test ./render -update if the change is intended):\n%s", format, golden, buf.String())
				}
			})
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	err := Analysis(&bytes.Buffer{}, profile.Analysis{}, "xml")
	if err == nil || err.Error() != `unknown output format "xml" (valid: table, yaml, json)` {
		t.Fatalf("err = %v", err)
	}
}
