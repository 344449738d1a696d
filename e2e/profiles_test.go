package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/profile"
)

var (
	profileResource = schema.GroupVersionResource{Group: "capprof.dev", Version: "v1alpha1", Resource: "capabilityprofiles"}
)

// crdDir holds the CustomResourceDefinitions that controller-gen writes
// into the Helm chart.
const crdDir = "../deploy/helm/capprof/crds"

// installCRDs creates the CustomResourceDefinitions of the chart, as
// controller-gen generated them, and waits until the API serves them.
func installCRDs(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	if err := c.InstallCRDs(context.Background(), crdDir); err != nil {
		t.Fatal(err)
	}
}

// TestPodsCapabilityProfileObjects: a recording of a Deployment's pod
// becomes, through capprof export, a CapabilityProfile object that the real API server validates
// against the generated CRD and lists with its printer columns; `kubectl
// get -o yaml` of it, and analyze, patch and diff --from-cluster, give what
// the recorded file gives.
func TestPodsCapabilityProfileObjects(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "objects")
	web := filepath.Join(t.TempDir(), "web.json")

	// Before the CRDs are installed, --from-cluster says what is missing.
	r := capprof(t, "analyze", "--from-cluster", "-n", ns, "--kubeconfig", c.Kubeconfig, "deploy/web")
	if installed := crdInstalled(t, c); !installed && (r.code == 0 || !strings.Contains(r.stderr, "the cluster has no CapabilityProfile API: install capprof (kubectl apply --server-side -f deploy/capprof.yaml")) {
		t.Fatalf("analyze --from-cluster without the CRDs: exit %d, stderr %q", r.code, r.stderr)
	}
	installCRDs(t, c)

	// Recorded from its start, and past its startup window.
	rs, hash := deployment(t, c, ns)
	rec := startRecord(t, "-l", "app=web", "-n", ns, "--kubeconfig", c.Kubeconfig, "--startup", "1s")
	pod := testPod(ns, "web-"+hash+"-ccccc", map[string]string{"app": "web", "pod-template-hash": hash}, "server")
	pod.OwnerReferences = []metav1.OwnerReference{rs}
	pod = runPod(t, c, pod)
	rec.waitFor(t, "recording container server of pod "+ns+"/"+pod.Name)
	execIn(t, c, containerID(t, pod, "server"), "/workload", "bind80")
	time.Sleep(1500 * time.Millisecond)
	p := rec.stop(t)
	if err := profile.Save(p, web); err != nil {
		t.Fatal(err)
	}

	// capprof export web.json -o json | kubectl create -f -
	exported := capprof(t, "export", "-o", "json", web)
	if exported.code != 0 {
		t.Fatalf("capprof export: exit %d: %s", exported.code, exported.stderr)
	}
	var list unstructured.UnstructuredList
	if err := list.UnmarshalJSON([]byte(exported.stdout)); err != nil {
		t.Fatalf("capprof export -o json: %v", err)
	}
	if len(list.Items) != 1 || list.Items[0].GetName() != "deployment-web" || list.Items[0].GetNamespace() != ns {
		t.Fatalf("capprof export gave %d objects, want one, %s/deployment-web:\n%s", len(list.Items), ns, exported.stdout)
	}
	obj := list.Items[0]
	profiles := dynamicClient(t, c).Resource(profileResource).Namespace(ns)
	if _, err := profiles.Create(context.Background(), &obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the API server refused the recorded profile as a CapabilityProfile: %v", err)
	}

	// kubectl get capabilityprofiles: the printer columns.
	table := getTable(t, c, "/apis/capprof.dev/v1alpha1/namespaces/"+ns+"/capabilityprofiles")
	columns := map[string]int{}
	for i, col := range table.ColumnDefinitions {
		columns[col.Name] = i
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows, want 1", len(table.Rows))
	}
	row := table.Rows[0].Cells
	for column, want := range map[string]string{"Name": "deployment-web", "Required": "server=NET_BIND_SERVICE", "Pod Security": "baseline", "Coverage": "1/1 from start"} {
		i, ok := columns[column]
		if !ok || row[i] != want {
			t.Errorf("column %q: %v, want %q (columns %v, row %v)", column, row[min(i, len(row)-1)], want, columns, row)
		}
	}

	// kubectl get capabilityprofile deployment-web -o yaml > got.yaml reads as the recording.
	got, err := profiles.Get(context.Background(), "deployment-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	asJSON, err := got.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	asYAML, err := yaml.JSONToYAML(asJSON)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(t.TempDir(), "got.yaml")
	if err := os.WriteFile(saved, asYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	fromCluster := []string{"--from-cluster", "-n", ns, "--kubeconfig", c.Kubeconfig, "deploy/web"}
	// The same analysis but for the source's name in warnings (a recording
	// the kernel dropped something of warns, naming its source).
	fromFile := capprof(t, "analyze", "-o", "json", web).stdout
	for source, args := range map[string][]string{
		saved: {"analyze", "-o", "json", saved},
		"capabilityprofile " + ns + "/deployment-web": append([]string{"analyze", "-o", "json"}, fromCluster...),
	} {
		want := strings.ReplaceAll(fromFile, web, source)
		if r := capprof(t, args...); r.code != 0 || r.stdout != want {
			t.Errorf("capprof %s: exit %d, stderr %q; stdout differs from the file's analysis:\n%s\n--- file's\n%s", strings.Join(args, " "), r.code, r.stderr, r.stdout, want)
		}
	}

	manifestPath := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(manifestPath, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: "+ns+
		"\nspec:\n  template:\n    spec:\n      containers:\n      - name: server\n        image: "+cluster.ImageName+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	patched := capprof(t, "patch", "--manifest", manifestPath, web)
	if r := capprof(t, append([]string{"patch", "--manifest", manifestPath}, fromCluster...)...); r.code != 0 || r.stdout != patched.stdout || !strings.Contains(r.stdout, "NET_BIND_SERVICE") {
		t.Errorf("patch --from-cluster: exit %d, stderr %q, stdout:\n%s\n--- from the file:\n%s", r.code, r.stderr, r.stdout, patched.stdout)
	}
	if r := capprof(t, append([]string{"diff", "--fail-on", "any-change", web}, fromCluster...)...); r.code != 0 || !strings.Contains(r.stdout, "no changes") {
		t.Errorf("diff FILE --from-cluster: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// Errors: one line each, naming the object and saying what to do.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"analyze", "--from-cluster", "-n", ns, "--kubeconfig", c.Kubeconfig, "sts/web"},
			`): not found: no profile of StatefulSet web in namespace "` + ns + `"; kubectl get capabilityprofiles -n ` + ns},
		{[]string{"analyze", "--from-cluster", "-n", ns, "--kubeconfig", c.ViewerKubeconfig, "deploy/web"}, `grant the user "get" on "capabilityprofiles.capprof.dev"`},
		{[]string{"analyze", "--from-cluster", "-n", ns, "--kubeconfig", c.Kubeconfig, "web"}, `workload "web": want KIND/NAME`},
	} {
		r := capprof(t, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("capprof %s: exit %d, stderr %q; want one line containing %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

func crdInstalled(t *testing.T, c *cluster.Cluster) bool {
	t.Helper()
	_, err := dynamicClient(t, c).Resource(cluster.CRDResource).Get(context.Background(), "capabilityprofiles.capprof.dev", metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// getTable lists a resource as kubectl get does: as a Table with the
// resource's printer columns.
func getTable(t *testing.T, c *cluster.Cluster, path string) *metav1.Table {
	t.Helper()
	data, err := c.Client.CoreV1().RESTClient().Get().AbsPath(path).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(data, &table); err != nil {
		t.Fatal(err)
	}
	return &table
}

// TestPodsCapabilityRecordingValidation: the API server, from the generated
// CRDs alone, takes well-formed recordings and node results and refuses
// malformed ones with the markers' messages.
func TestPodsCapabilityRecordingValidation(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "recordings")
	installCRDs(t, c)
	client := dynamicClient(t, c)
	recordings := client.Resource(profileResource.GroupVersion().WithResource("capabilityrecordings")).Namespace(ns)
	results := client.Resource(profileResource.GroupVersion().WithResource("capabilitynoderesults")).Namespace(ns)
	object := func(kind, name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "capprof.dev/v1alpha1", "kind": kind,
			"metadata": map[string]any{"name": name}, "spec": spec,
		}}
	}
	web := map[string]any{"kind": "Deployment", "name": "web"}
	for _, tc := range []struct {
		name string
		spec map[string]any
		want string // "" for accepted
	}{
		{"workload", map[string]any{"workload": web, "duration": "2h", "containers": map[string]any{"exclude": []any{"istio-proxy"}}}, ""},
		{"selector", map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}}}, ""},
		{"both", map[string]any{"workload": web, "selector": map[string]any{}}, "give exactly one of workload and selector"},
		{"neither", map[string]any{"duration": "1h"}, "give exactly one of workload and selector"},
		{"include-and-exclude", map[string]any{"workload": web, "containers": map[string]any{"include": []any{"a"}, "exclude": []any{"b"}}}, "give include or exclude, not both"},
		{"zero-duration", map[string]any{"workload": web, "duration": "0s"}, "must be a positive duration, like 2h"},
		{"negative-window", map[string]any{"workload": web, "startupWindow": "-1s"}, "must not be negative"},
		{"bad-kind", map[string]any{"workload": map[string]any{"kind": "deploy/web", "name": "web"}}, "spec.workload.kind"},
	} {
		got, err := recordings.Create(context.Background(), object("CapabilityRecording", tc.name, tc.spec), metav1.CreateOptions{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("recording %s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("recording %s: err %v, want it refused with %q", tc.name, err, tc.want)
		case tc.name == "workload":
			// Defaults come from the CRD.
			if window, _, _ := unstructured.NestedString(got.Object, "spec", "startupWindow"); window != "10s" {
				t.Errorf("recording %s: startupWindow %q, want the default 10s", tc.name, window)
			}
		}
	}

	// A recording's spec cannot change: the agents record what it said.
	rec, err := recordings.Get(context.Background(), "workload", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(rec.Object, "3h", "spec", "duration"); err != nil {
		t.Fatal(err)
	}
	if _, err := recordings.Update(context.Background(), rec, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "a recording's spec cannot change") {
		t.Errorf("changing a recording's duration: err %v, want it refused", err)
	}

	result := object("CapabilityNodeResult", v1alpha1.NodeResultName("workload", "node-a", nil), map[string]any{
		"recording": "workload", "node": "node-a", "updateTime": "2026-12-01T10:00:00Z", "session": "agent-1",
		"recorded":   map[string]any{"startTime": "2026-12-01T09:00:00Z", "endTime": "2026-12-01T10:00:00Z", "node": "node-a", "kernelRelease": "6.18", "probe": "tracepoint", "capprofVersion": "t", "startupWindow": "10s", "drops": map[string]any{"events": 0, "uncountedChecks": 0, "unfollowedCredentialCalls": 0, "unfollowedDenials": 0}},
		"containers": []any{},
	})
	created, err := results.Create(context.Background(), result, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("node result refused: %v", err)
	}
	if err := unstructured.SetNestedField(created.Object, "node-b", "spec", "node"); err != nil {
		t.Fatal(err)
	}
	if _, err := results.Update(context.Background(), created, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "node is immutable") {
		t.Errorf("moving a node result to another node: err %v, want node is immutable", err)
	}
}
