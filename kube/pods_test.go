package kube

import (
	"reflect"
	"strings"
	"testing"

	"github.com/capprof/capprof/api/v1alpha1"
)

func TestInferOwner(t *testing.T) {
	tests := []struct {
		pod    string
		labels map[string]string
		want   v1alpha1.Owner
	}{
		{"web-7d4b9c6f5-x2kq9", map[string]string{"pod-template-hash": "7d4b9c6f5"}, v1alpha1.Owner{Kind: "Deployment", Name: "web"}},
		{"my-api-v2-5f6d-abcde", map[string]string{"pod-template-hash": "5f6d"}, v1alpha1.Owner{Kind: "Deployment", Name: "my-api-v2"}},
		{"db-0", map[string]string{"statefulset.kubernetes.io/pod-name": "db-0", "controller-revision-hash": "db-6c4f"}, v1alpha1.Owner{Kind: "StatefulSet", Name: "db"}},
		{"agent-k8x2p", map[string]string{"pod-template-generation": "1", "controller-revision-hash": "5d9"}, v1alpha1.Owner{Kind: "DaemonSet", Name: "agent"}},
		{"backup-28912-q7x", map[string]string{"batch.kubernetes.io/job-name": "backup-28912"}, v1alpha1.Owner{Kind: "Job", Name: "backup-28912"}},
		{"old-job-x", map[string]string{"job-name": "old-job"}, v1alpha1.Owner{Kind: "Job", Name: "old-job"}},
		{"xwing", nil, v1alpha1.Owner{Kind: "Pod", Name: "xwing"}},
		// A hash label that is not in the name is no evidence.
		{"web", map[string]string{"pod-template-hash": "7d4b9c6f5"}, v1alpha1.Owner{Kind: "Pod", Name: "web"}},
	}
	for _, tt := range tests {
		if got := inferOwner(tt.pod, tt.labels); got != tt.want {
			t.Errorf("inferOwner(%q, %v) = %v, want %v", tt.pod, tt.labels, got, tt.want)
		}
	}
}

func TestSelection(t *testing.T) {
	invalid := []struct {
		sel  Selection
		want string
	}{
		{Selection{Node: "n"}, "no pods selected"},
		{Selection{Names: []string{"a"}, Namespace: "x", AllNamespaces: true, Node: "n"}, `-n "x" and -A exclude each other`},
		{Selection{Names: []string{"a/b"}, Node: "n"}, `--pods "a/b": not a pod name`},
		{Selection{LabelSelector: "app in (", Node: "n"}, `-l "app in ("`},
		{Selection{Names: []string{"a"}}, "no node name"},
	}
	for _, tt := range invalid {
		if err := tt.sel.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.sel, err, tt.want)
		}
	}
	sel := Selection{Names: []string{"web-1", "web-2"}, LabelSelector: "app=web,tier!=db", Node: "n1"}
	if err := sel.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"web-1", map[string]string{"app": "web"}, true},
		{"web-3", map[string]string{"app": "web"}, false},
		{"web-2", map[string]string{"app": "web", "tier": "db"}, false},
		{"web-2", nil, false},
	} {
		if got := sel.matches(tt.name, tt.labels); got != tt.want {
			t.Errorf("matches(%q, %v) = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if got := sel.describe("shop"); got != `pods web-1,web-2 matching app=web,tier!=db in namespace "shop" on node "n1"` {
		t.Errorf("describe = %q", got)
	}
	sel.AllNamespaces, sel.Names = true, nil
	if got := sel.describe(""); got != `pods matching app=web,tier!=db in all namespaces on node "n1"` {
		t.Errorf("describe = %q", got)
	}
}

func TestNoMatchError(t *testing.T) {
	e := &NoMatchError{Selected: "pods x", Origin: "kubeconfig k"}
	if got := e.Error(); got != "no pod matched: pods x (kubeconfig k); no pod of that name or selector exists elsewhere either" {
		t.Errorf("Error() = %q", got)
	}
	for i := range 7 {
		e.NearMisses = append(e.NearMisses, string(rune('a'+i)))
	}
	if got := e.Error(); !strings.HasSuffix(got, "; near misses: a, b, c, d, e (+2 more)") {
		t.Errorf("Error() = %q", got)
	}
}

func TestBareContainerID(t *testing.T) {
	for in, want := range map[string]string{
		"containerd://abc": "abc",
		"cri-o://def":      "def",
		"docker://0a":      "0a",
		"bare":             "bare",
	} {
		if id := bareContainerID(in); id != want {
			t.Errorf("bareContainerID(%q) = %q, want %q", in, id, want)
		}
	}
}

func TestRestartTargets(t *testing.T) {
	pod := func(ns, name, kind, owner string) Pod {
		return Pod{Namespace: ns, Name: name, Owner: v1alpha1.Owner{Kind: kind, Name: owner}}
	}
	got, err := RestartTargets([]Pod{
		pod("shop", "web-1", "Deployment", "web"), pod("shop", "web-2", "Deployment", "web"),
		pod("shop", "db-0", "StatefulSet", "db"), pod("kube-system", "agent-x", "DaemonSet", "agent"),
	})
	want := []Workload{{"kube-system", "DaemonSet", "agent"}, {"shop", "Deployment", "web"}, {"shop", "StatefulSet", "db"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("RestartTargets = %v, %v; want %v, each workload once", got, err, want)
	}
	for kind, why := range map[string]string{"Pod": `belongs to Pod "x"`, "Job": `belongs to Job "x"`, "CronJob": `belongs to CronJob "x"`} {
		_, err := RestartTargets([]Pod{pod("shop", "web-1", "Deployment", "web"), pod("shop", "x-1", kind, "x")})
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "only Deployments, StatefulSets and DaemonSets") {
			t.Errorf("%s: %v, want a refusal naming it", kind, err)
		}
	}
}
