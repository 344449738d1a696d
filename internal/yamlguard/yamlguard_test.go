package yamlguard

import (
	"fmt"
	"strings"
	"testing"
)

// laughs is a document with one long string referenced n times.
func laughs(n, length int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: capprof.dev/v1alpha1\nkind: CapabilityProfile\nx: &s %s\nlist:\n", strings.Repeat("a", length))
	for range n {
		b.WriteString("- *s\n")
	}
	return []byte(b.String())
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  []byte
		want string
	}{
		{"no aliases", []byte("a: 1\nb: [x, y]\n"), ""},
		{"ordinary anchors", []byte("env: &env [{name: A, value: b}]\nc1: {env: *env}\nc2: {env: *env}\n"), ""},
		{"long string, many aliases", laughs(20000, 20000), "YAML aliases expand the document to more than"},
		{"nested laughs", []byte(`a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`), "YAML aliases expand the document"},
		{"cycle", []byte("a: &a [1, *a]\n"), "refers to a node that contains it"},
		{"second document", []byte("a: 1\n---\n" + string(laughs(20000, 2000))), "YAML aliases expand"},
		{"not YAML", []byte("a: [\n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.doc)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}
