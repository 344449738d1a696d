package profile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/capprof/capprof/api/v1alpha1"
)

// workloadsProfile is a pod recording of two workloads in one namespace:
// a Deployment with two containers and a StatefulSet.
func workloadsProfile() *v1alpha1.Profile {
	p := sampleProfile()
	p.Metadata.Command, p.Metadata.Selector = nil, "-l tier=front in namespace shop"
	web := p.Containers[0]
	web.Namespace, web.Owner = "shop", &v1alpha1.Owner{Kind: "Deployment", Name: "web"}
	web.Coverage = &v1alpha1.Coverage{Instances: 2, FromStart: 1, Late: []v1alpha1.LateInstance{{Pod: "web-1"}}}
	sidecar := v1alpha1.Container{Identity: v1alpha1.Identity{Name: "sidecar", Namespace: "shop", Owner: web.Owner},
		Capabilities: []v1alpha1.CapabilityChecks{}, Execs: []v1alpha1.Exec{}, CredentialChanges: []v1alpha1.CredentialChange{}, UIDs: []uint32{},
		Coverage: &v1alpha1.Coverage{Instances: 2, FromStart: 2}}
	db := sampleProfile().Containers[0]
	db.Name, db.Namespace, db.Owner = "db", "shop", &v1alpha1.Owner{Kind: "StatefulSet", Name: "web"}
	p.Containers = []v1alpha1.Container{db, web, sidecar}
	return p
}

func TestObjects(t *testing.T) {
	p := workloadsProfile()
	objects, err := Objects(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(objects) != 2 {
		t.Fatalf("%d objects, want one per workload", len(objects))
	}
	type want struct {
		name, kind string
		containers []string
		status     v1alpha1.CapabilityProfileStatus
	}
	for i, w := range []want{
		{"deployment-web", "Deployment", []string{"main", "sidecar"}, v1alpha1.CapabilityProfileStatus{Required: "main=NET_BIND_SERVICE sidecar=none", PodSecurity: Baseline, Coverage: "3/4 from start"}},
		{"statefulset-web", "StatefulSet", []string{"db"}, v1alpha1.CapabilityProfileStatus{Required: "db=NET_BIND_SERVICE", PodSecurity: Baseline, Coverage: "unknown"}},
	} {
		o := objects[i]
		var names []string
		for _, c := range o.Spec.Containers {
			names = append(names, c.Name)
		}
		if o.Name != w.name || o.Namespace != "shop" || o.Spec.Workload.Kind != w.kind || !reflect.DeepEqual(names, w.containers) ||
			o.Labels[v1alpha1.WorkloadKindLabel] != w.kind || o.Labels[v1alpha1.WorkloadNameLabel] != "web" {
			t.Errorf("object %d: %s/%s workload %v labels %v containers %v; want shop/%s, %s web, %v", i, o.Namespace, o.Name, o.Spec.Workload, o.Labels, names, w.name, w.kind, w.containers)
		}
		if o.Status != w.status {
			t.Errorf("%s: status %+v, want %+v", o.Name, o.Status, w.status)
		}
		if o.APIVersion != v1alpha1.APIVersion || o.Kind != v1alpha1.Kind || !reflect.DeepEqual(o.Spec.Recording, p.Metadata) {
			t.Errorf("%s: %s %s recording %+v", o.Name, o.APIVersion, o.Kind, o.Spec.Recording)
		}
	}

	// What kubectl get -o yaml gives back reads as the workload's profile.
	data, err := json.Marshal(objects[0])
	if err != nil {
		t.Fatal(err)
	}
	asYAML, err := yaml.JSONToYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []struct {
		data   []byte
		isYAML bool
	}{{data, false}, {asYAML, true}, {[]byte(`{"apiVersion":"v1","kind":"List","items":[` + string(data) + `]}`), false}} {
		got, err := Parse(doc.data, doc.isYAML)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Containers, objects[0].Spec.Containers) || !reflect.DeepEqual(got.Metadata, p.Metadata) {
			t.Fatalf("parsed object: %+v", got)
		}
	}

	p.Containers = append(p.Containers, sampleProfile().Containers[0]) // a command's
	if _, err := Objects(p); err == nil || !strings.Contains(err.Error(), `container "main" belongs to no Kubernetes workload`) {
		t.Fatalf("Objects of a command's recording: %v", err)
	}
}

func TestParseObjectErrors(t *testing.T) {
	objects, err := Objects(workloadsProfile())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(objects[0])
	if err != nil {
		t.Fatal(err)
	}
	valid := string(data)
	for _, tt := range []struct{ name, doc, want string }{
		{"unknown spec field", strings.Replace(valid, `"recording":`, `"recordin":{},"recording":`, 1), `invalid profile: spec: unknown field "recordin"`},
		{"bad count", strings.Replace(valid, `"count":40`, `"count":-40`, 1), `CapabilityProfile shop/deployment-web: spec.containers[0] (main) capabilities[1].count: -40 is negative`},
		{"other apiVersion", strings.Replace(valid, `"apiVersion":"capprof.dev/v1alpha1"`, `"apiVersion":"capprof.dev/v2"`, 1), `unsupported object CapabilityProfile of apiVersion "capprof.dev/v2"`},
		{"list of two", `{"apiVersion":"v1","kind":"List","items":[` + valid + `,` + valid + `]}`, `a List of 2 objects: capprof reads one CapabilityProfile per file`},
		{"empty list", `{"apiVersion":"capprof.dev/v1alpha1","kind":"CapabilityProfileList","items":[]}`, `a CapabilityProfileList of 0 objects`},
		{"items not a list", `{"kind":"List","items":{}}`, `invalid profile: items: a JSON {`},
	} {
		_, err := Parse([]byte(tt.doc), false)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: Parse error %v, want one line containing %q", tt.name, err, tt.want)
		}
	}
}

// TestRecordingByItsNames: a recording is told from an object or a list by
// its first deciding name, without reading on.
func TestRecordingByItsNames(t *testing.T) {
	for _, tt := range []struct {
		doc  string
		want bool
	}{
		{`{"apiVersion":"capprof.dev/v1alpha1","kind":"CapabilityProfile","metadata":{"node":"n"},"containers":[]}`, true},
		{`{"containers":[], "spec":{}}`, true}, // strict decoding refuses its spec
		{`{"apiVersion":"capprof.dev/v1alpha1","kind":"CapabilityProfile","metadata":{"name":"x"},"spec":{}}`, false},
		{`{"apiVersion":"v1","items":[{"containers":[]}],"kind":"List"}`, false},
		{`{"apiVersion":"capprof.dev/v1alpha1","kind":"CapabilityProfile"}`, false},
		{`{"metadata":{"containers":[]},`, false},
		{`[]`, false},
	} {
		if got := recordingByItsNames([]byte(tt.doc)); got != tt.want {
			t.Errorf("recordingByItsNames(%s) = %v, want %v", tt.doc, got, tt.want)
		}
	}
}
