package manifest_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/internal/golden"
	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/render"
)

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
				golden.Check(t, filepath.Join("testdata", "golden", name+".analyze."+format), buf.Bytes())
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
					// Pods and Jobs cannot be patched in place.
					buf.WriteString("# error: " + err.Error() + "\n")
				}
				for _, n := range notes {
					buf.WriteString("# note: " + n + "\n")
				}
				golden.Check(t, filepath.Join("testdata", "golden", name+".patch."+format), buf.Bytes())
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

// TestBadManifests: each bad input gets an error naming the file and the
// problem, never a panic.
func TestBadManifests(t *testing.T) {
	a := ShopAnalysis(t, "testdata")
	tests := []struct {
		name, yaml, want string
	}{
		{"not YAML", "kind: [Deployment\n", "bad.yaml: document 1: not YAML"},
		{"not Kubernetes", "hello: world\n", "bad.yaml: document 1: not a Kubernetes object: apiVersion and kind must be set"},
		{"scalar", "just text\n", "bad.yaml: document 1: not a Kubernetes object"},
		{"list", "apiVersion: v1\nkind: List\nitems: []\n", "bad.yaml: document 1: kind List: capprof reads one object per document"},
		{"no workload", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n", "bad.yaml: no workload (Pod, Deployment"},
		{"wrong field type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: {name: x}\n", "bad.yaml: document 1: Deployment/web: spec.template.spec: field containers: want []v1.Container, got object"},
		{"no containers", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {}}}\n", "Deployment/web: the pod spec has no containers"},
		{"container missing", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec: {template: {spec: {containers: [{name: nginx}]}}}\n",
			`bad.yaml has no container for the profile's "shop/Deployment/web/init-perms" (it has: shop/Deployment/web [nginx])`},
		{"other workload", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {template: {spec: {containers: [{name: api}]}}}\n",
			"bad.yaml has none of the profiled containers"},
		{"other namespace", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate, namespace: prod}\nspec: {template: {spec: {containers: [{name: migrate}]}}}\n",
			"bad.yaml has none of the profiled containers"},
		{"unpatchable kind", "apiVersion: argoproj.io/v1alpha1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: nginx}]}}}\n",
			"bad.yaml: kind Deployment (argoproj.io/v1alpha1) cannot be patched"},
		{"bad capability", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec: {template: {spec: {containers: [{name: migrate, securityContext: {capabilities: {add: [SUPERPOWER]}}}]}}}\n",
			`bad.yaml: Job/migrate container migrate: securityContext.capabilities.add: unknown capability "SUPERPOWER"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Parse("bad.yaml", []byte(tt.yaml))
			if err == nil {
				_, err = manifest.Compare(m, a, "containerd")
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, tt.want)
			}
		})
	}
}

// TestCommandContainer: a recorded command's container matches by name
// alone, and must be unambiguous.
func TestCommandContainer(t *testing.T) {
	a := &profile.Analysis{Containers: []profile.ContainerAnalysis{{Identity: v1alpha1.Identity{Name: "app"},
		SecurityContext: ShopAnalysis(t, "testdata").Containers[0].SecurityContext}}}
	one := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app}]}\n"
	m, err := manifest.Parse("one.yaml", []byte(one))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.Compare(m, a, "crio"); err != nil {
		t.Fatal(err)
	}
	m, err = manifest.Parse("two.yaml", []byte(one+"---\n"+strings.ReplaceAll(one, "name: p}", "name: q}")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.Compare(m, a, "crio"); err == nil || !strings.Contains(err.Error(), `the profile's "app" matches containers in Pod/p and Pod/q`) {
		t.Fatalf("err = %v", err)
	}
}

// TestGranted follows the CRI runtimes' order: privileged, add ALL, drop
// ALL, named adds, named drops.
func TestGranted(t *testing.T) {
	containerd, err := manifest.RuntimeDefaults("containerd")
	if err != nil {
		t.Fatal(err)
	}
	crio, _ := manifest.RuntimeDefaults("crio")
	tests := []struct {
		name     string
		sc       *corev1.SecurityContext
		defaults v1alpha1.CapSet
		want     int
		has      []string
		lacks    []string
	}{
		{"none", nil, containerd, 14, []string{"NET_RAW", "MKNOD"}, []string{"SYS_ADMIN"}},
		{"crio", nil, crio, 9, []string{"KILL"}, []string{"NET_RAW", "MKNOD"}},
		{"privileged", &corev1.SecurityContext{Privileged: new(true)}, containerd, 41, []string{"SYS_ADMIN"}, nil},
		{"drop all add one", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"CAP_NET_ADMIN"}}}, containerd, 1, []string{"NET_ADMIN"}, []string{"CHOWN"}},
		{"add all drop one", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"all"}, Drop: []corev1.Capability{"SYS_ADMIN"}}}, containerd, 40, []string{"BPF"}, []string{"SYS_ADMIN"}},
		{"drop wins", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"KILL"}, Drop: []corev1.Capability{"KILL"}}}, containerd, 13, nil, []string{"KILL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := manifest.Granted(tt.sc, tt.defaults)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(got.List()); n != tt.want {
				t.Errorf("%d capabilities, want %d", n, tt.want)
			}
			for _, name := range tt.has {
				if c, _ := v1alpha1.ParseCapability(name); !got.Has(c) {
					t.Errorf("lacks %s", name)
				}
			}
			for _, name := range tt.lacks {
				if c, _ := v1alpha1.ParseCapability(name); got.Has(c) {
					t.Errorf("has %s", name)
				}
			}
		})
	}
}

// TestPatchHeaderOneLine: a workload named with a newline cannot start YAML
// of its own in a patch's header comment, nor a line of its own in the note
// that names the object of a JSON patch's line.
func TestPatchHeaderOneLine(t *testing.T) {
	const name = "web\nspec: {replicas: 0}"
	a := &profile.Analysis{Containers: []profile.ContainerAnalysis{{
		Identity:        v1alpha1.Identity{Name: "app", Namespace: "shop", Owner: &v1alpha1.Owner{Kind: "Deployment", Name: name}},
		SecurityContext: ShopAnalysis(t, "testdata").Containers[0].SecurityContext}}}
	doc := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: \"web\\nspec: {replicas: 0}\", namespace: shop}\nspec: {template: {spec: {containers: [{name: app}]}}}\n"
	const want = `kubectl patch deployment web\nspec: {replicas: 0} -n shop --type`
	for _, format := range []string{"strategic", "json6902-yaml", "json6902"} {
		m, err := manifest.Parse("evil.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		notes, err := manifest.Patch(&buf, m, a, format)
		if err != nil {
			t.Fatal(err)
		}
		header, body, _ := strings.Cut(buf.String(), "\n")
		if format == "json6902" {
			header, body = "", buf.String()
			for _, n := range notes {
				if _, cmd, ok := strings.Cut(n, "stdout line 1: "); ok {
					header = "# " + cmd
				}
			}
		}
		if !strings.HasPrefix(header, "# "+want) {
			t.Errorf("%s: header %q, want it to start %q", format, header, "# "+want)
		}
		if strings.Contains(body, "replicas") {
			t.Errorf("%s: the name's YAML is in the patch:\n%s", format, buf.String())
		}
	}
}
