package verify

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {team: payments}
    spec:
      containers:
      - name: server
        image: web:1
      - name: sidecar
        image: proxy:1
`

// profiled is a recording of the Deployment: server binds port 80 and sets
// a set-group-ID bit; sidecar does nothing privileged.
func profiled() *v1alpha1.Profile {
	granted := func(c v1alpha1.Capability, syscall string) v1alpha1.CapabilityChecks {
		return v1alpha1.CapabilityChecks{Capability: c, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 1,
			Sources: []v1alpha1.Source{{Executable: "/srv/web", Syscall: syscall, Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.SteadyPhase, Count: 1}}}
	}
	owner := &v1alpha1.Owner{Kind: "Deployment", Name: "web"}
	return &v1alpha1.Profile{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Containers: []v1alpha1.Container{
		{Identity: v1alpha1.Identity{Name: "server", Namespace: "shop", Owner: owner},
			Capabilities: []v1alpha1.CapabilityChecks{granted(4, "chmod"), granted(10, "bind")}},
		{Identity: v1alpha1.Identity{Name: "sidecar", Namespace: "shop", Owner: owner}},
	}}
}

func TestPlanCanaries(t *testing.T) {
	m, err := manifest.Parse("deploy.yaml", []byte(deployment))
	if err != nil {
		t.Fatal(err)
	}
	a := profile.Analyze([]profile.Input{{Source: "web.json", Profile: profiled()}})
	workloads, err := m.Advise(&a)
	if err != nil {
		t.Fatal(err)
	}
	canaries := planCanaries(workloads, PodsConfig{Namespace: "staging", Node: "node-1"}, "ab12cd")
	var names, described []string
	for _, c := range canaries {
		names = append(names, c.pod.Name)
		described = append(described, c.describe)
		if c.pod.Namespace != "staging" || c.pod.Spec.NodeName != "node-1" {
			t.Errorf("%s: namespace %q node %q, want staging and node-1", c.pod.Name, c.pod.Namespace, c.pod.Spec.NodeName)
		}
		if len(c.pod.Labels) != 1 || c.pod.Labels[CanaryLabel] != "ab12cd" {
			t.Errorf("%s: labels %v, want only %s=ab12cd: no Service may route to a canary", c.pod.Name, c.pod.Labels, CanaryLabel)
		}
		if c.pod.Annotations["team"] != "payments" || c.pod.Annotations["capprof.dev/canary-of"] != "Deployment/web" {
			t.Errorf("%s: annotations %v, want the template's and capprof's", c.pod.Name, c.pod.Annotations)
		}
	}
	wantNames := []string{"web-verify-ab12cd-1", "web-verify-ab12cd-2", "web-verify-ab12cd-3"}
	wantDescribed := []string{"Deployment/web with the advice", "Deployment/web, container server without FSETID", "Deployment/web, container server without NET_BIND_SERVICE"}
	if !slices.Equal(names, wantNames) || !slices.Equal(described, wantDescribed) {
		t.Fatalf("canaries %v (%v), want %v (%v)", names, described, wantNames, wantDescribed)
	}
	adds := func(c canary, container string) []corev1.Capability {
		for _, ctr := range c.pod.Spec.Containers {
			if ctr.Name == container {
				return ctr.SecurityContext.Capabilities.Add
			}
		}
		return nil
	}
	for i, want := range [][]corev1.Capability{{"FSETID", "NET_BIND_SERVICE"}, {"NET_BIND_SERVICE"}, {"FSETID"}} {
		if got := adds(canaries[i], "server"); !slices.Equal(got, want) {
			t.Errorf("%s: server adds %v, want %v", names[i], got, want)
		}
		if got := adds(canaries[i], "sidecar"); len(got) != 0 {
			t.Errorf("%s: sidecar adds %v, want nothing", names[i], got)
		}
	}
	if got := adds(canaries[1], "server"); len(workloads[0].Applied.PodSpec.Containers[0].SecurityContext.Capabilities.Add) != 2 {
		t.Errorf("taking a capability from a canary (%v) changed the advised template", got)
	}
}

func TestPodFailure(t *testing.T) {
	running := corev1.ContainerStatus{Name: "server", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	restarted := running
	restarted.RestartCount = 3
	restarted.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}
	exited := func(code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "server", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
	}
	waiting := corev1.ContainerStatus{Name: "server", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}
	type pods struct {
		planned *corev1.Pod // as created
		got     corev1.Pod  // as the API server reports it
	}
	pod := func(policy corev1.RestartPolicy, statuses ...corev1.ContainerStatus) pods {
		p := pods{planned: &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: policy, Containers: []corev1.Container{{Name: "server"}}}},
			got: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: statuses}}}
		p.got.Name = "web-verify-1"
		return p
	}
	notReady := pod(corev1.RestartPolicyAlways, running)
	notReady.got.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	gone := pod(corev1.RestartPolicyAlways, running)
	gone.got = corev1.Pod{}
	tests := []struct {
		name     string
		pods     pods
		want     string
		wantCode int
	}{
		{"running", pod(corev1.RestartPolicyAlways, running), "", 0},
		{"restarted", pod(corev1.RestartPolicyAlways, restarted), "container server restarted 3 times, last exit 1", 1},
		{"exited 0 under Always", pod(corev1.RestartPolicyAlways, exited(0)), "container server exited 0", 0},
		{"a Job's exit 0", pod(corev1.RestartPolicyNever, exited(0)), "", 0},
		{"a Job's exit 2", pod(corev1.RestartPolicyOnFailure, exited(2)), "container server exited 2", 2},
		{"never started", pod(corev1.RestartPolicyAlways, waiting), "container server never started", 0},
		{"no status", pod(corev1.RestartPolicyAlways), "container server never started", 0},
		{"not Ready", notReady, "the pod was not Ready", 0},
		{"gone", gone, "the pod was gone before the window ended", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, code := podFailure(tc.pods.planned, tc.pods.got)
			if got != tc.want || code != tc.wantCode {
				t.Errorf("podFailure: %q, exit %d; want %q, exit %d", got, code, tc.want, tc.wantCode)
			}
		})
	}
}

func TestContainerIndex(t *testing.T) {
	p := profiled()
	if _, err := containerIndex(p, "main", "web.json"); err == nil || !strings.Contains(err.Error(), `web.json: no container "main" among 2 (shop/Deployment/web/server, shop/Deployment/web/sidecar): give --name`) {
		t.Errorf("containerIndex: %v", err)
	}
	p.Containers = p.Containers[:1]
	if i, err := containerIndex(p, "main", "web.json"); err != nil || i != 0 {
		t.Errorf("the only container: %d, %v", i, err)
	}
}
