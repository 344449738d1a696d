package render

import (
	"bytes"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/capprof/capprof/internal/golden"
	"github.com/capprof/capprof/profile"
)

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
		// capprof verify's result: FSETID removable, NET_BIND_SERVICE needed.
		{"verified", []string{"verified.json"}},
		// Names with terminal escapes, a carriage return that would draw
		// a fake row, a bidi override, markdown and a newline.
		{"hostile", []string{"hostile.json"}},
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
				golden.Check(t, filepath.Join("testdata", tc.name+"."+format+".golden"), buf.Bytes())
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

// TestDiffGolden renders the diff of two shop profiles in every format:
// a capability newly required, one no longer required, a new privilege
// gain, a container added and one removed.
func TestDiffGolden(t *testing.T) {
	analyze := func(name string) profile.Analysis {
		p, err := profile.Load(filepath.Join("..", "manifest", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return profile.Analyze([]profile.Input{{Source: name, Profile: p}})
	}
	d := profile.DiffAnalyses("shop.json", analyze("shop.json"), "shop-head.json", analyze("shop-head.json"))
	same := profile.DiffAnalyses("shop.json", analyze("shop.json"), "shop.json", analyze("shop.json"))
	hostile, err := profile.Load(filepath.Join("testdata", "hostile.json"))
	if err != nil {
		t.Fatal(err)
	}
	injected := profile.DiffAnalyses("main.json", profile.Analysis{}, "pr\x1b[1m](x).json",
		profile.Analyze([]profile.Input{{Source: "pr", Profile: hostile}}))
	for _, format := range DiffFormats {
		for name, diff := range map[string]profile.Diff{"diff": d, "diff-none": same, "diff-hostile": injected} {
			t.Run(name+"/"+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := Diff(&buf, diff, format); err != nil {
					t.Fatal(err)
				}
				golden.Check(t, filepath.Join("testdata", name+"."+format+".golden"), buf.Bytes())
			})
		}
	}
}

// TestObjectsGolden writes a two-workload profile as CapabilityProfile
// objects in each format; every document reads back as its workload's part
// of the profile.
func TestObjectsGolden(t *testing.T) {
	p, err := profile.Load(filepath.Join("..", "manifest", "testdata", "shop.json"))
	if err != nil {
		t.Fatal(err)
	}
	objects, err := profile.Objects(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(objects) < 2 {
		t.Fatalf("shop.json gave %d objects, want one per workload (2 or more)", len(objects))
	}
	for _, format := range ObjectFormats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Objects(&buf, objects, format); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "shop-objects."+format+".golden"), buf.Bytes())
			if format != "yaml" {
				return
			}
			docs := strings.Split(strings.TrimPrefix(buf.String(), "---\n"), "\n---\n")
			if len(docs) != len(objects) {
				t.Fatalf("%d YAML documents, want %d", len(docs), len(objects))
			}
			for i, doc := range docs {
				back, err := profile.Parse([]byte(doc), true)
				if err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				if !reflect.DeepEqual(back.Containers, objects[i].Spec.Containers) {
					t.Errorf("document %d reads back as other containers", i)
				}
			}
		})
	}
	if err := Objects(io.Discard, objects, "table"); err == nil || !strings.Contains(err.Error(), `"table"`) {
		t.Errorf("format table: err %v, want unknown format", err)
	}
}
