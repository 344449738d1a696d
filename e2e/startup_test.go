package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/profile"
)

// timelineCaps are what `workload timeline` needs, in the order the advice
// lists them (by capability number).
var timelineCaps = []string{"CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE", "NET_RAW", "MKNOD"}

// timelinePod is a pod whose entrypoint is `workload timeline`: privileged
// work from its first instruction on (see e2e/workload).
func timelinePod(ns, name string, labels map[string]string) *corev1.Pod {
	pod := testPod(ns, name, labels, "app")
	pod.Spec.Containers[0].Command = []string{"/workload", "timeline", "/data"}
	return pod
}

// TestPodsFromFirstInstruction: `record -l` started before any matching pod
// exists waits for them; the pods created then, whose entrypoints do
// privileged work at their first instruction and again up to 5 s later, are
// recorded from that first instruction, through the API and through the
// CRI alike: an init container, a container started 2.5 s after its
// creation, and a container restarted during the recording included. The
// advice holds every capability, and the pod runs with it.
func TestPodsFromFirstInstruction(t *testing.T) {
	c := needCluster(t)
	for _, mode := range []string{"api", "cri"} {
		t.Run(mode, func(t *testing.T) {
			ns := namespace(t, c, "first-"+mode)
			source := []string{"--kubeconfig", c.Kubeconfig}
			if mode == "cri" {
				source = []string{"--runtime-endpoint", c.CRIEndpoint}
			}
			rec := startRecord(t, append([]string{"-l", "app=web", "-n", ns}, source...)...)
			rec.waitFor(t, "waiting for matching pods")

			// Three replicas of a Deployment (no controller runs: the test
			// makes its pods).
			rs, hash := deployment(t, c, ns)
			replica := func(suffix string) *corev1.Pod {
				p := timelinePod(ns, "web-"+hash+"-"+suffix, map[string]string{"app": "web", "pod-template-hash": hash})
				p.OwnerReferences = []metav1.OwnerReference{rs}
				return p
			}
			withInit := replica("init0")
			withInit.Spec.InitContainers = []corev1.Container{{Name: "init", Image: cluster.ImageName, Command: []string{"/workload", "bind80"}}}
			pods := []struct {
				pod  *corev1.Pod
				opts []cluster.PodOption
			}{
				{withInit, nil},
				{replica("later"), []cluster.PodOption{cluster.WithStartDelay(2500 * time.Millisecond)}},
				{replica("again"), nil},
			}
			ran := make([]*corev1.Pod, len(pods))
			var wg sync.WaitGroup
			for i, p := range pods {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					pod, err := c.RunPod(ctx, p.pod, p.opts...)
					if err != nil {
						t.Error(err)
						return
					}
					ran[i] = pod
					if code, err := c.WaitExit(ctx, containerID(t, pod, "app")); err != nil || code != 0 {
						t.Errorf("pod %s: timeline exit %d, %v", pod.Name, code, err)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			restarted, err := c.RestartContainer(context.Background(), ran[2], "app")
			if err != nil {
				t.Fatal(err)
			}
			waitTimeline(t, c, restarted)
			p := rec.stop(t)

			app := entry(t, p, ns, "app")
			wantRequired(t, alone(app), timelineCaps...)
			if cov := app.Coverage; cov == nil || cov.Instances != 4 || cov.FromStart != 4 {
				t.Fatalf("app coverage %+v, want 4 instances (3 pods, one restarted), all from their first instruction\n%s", cov, rec.log())
			}
			for _, p := range pods {
				if !slices.Contains(app.Pods, p.pod.Name) {
					t.Fatalf("app pods %v lack %s", app.Pods, p.pod.Name)
				}
			}
			if *app.Owner != (v1alpha1.Owner{Kind: "Deployment", Name: "web"}) {
				t.Fatalf("owner %v, want Deployment web", app.Owner)
			}
			// The t=0 bind of each instance is the workload's, not the runtime's.
			var binds int64
			for _, cc := range app.Capabilities {
				for _, s := range cc.Sources {
					if cc.Capability.String() == "CAP_NET_BIND_SERVICE" && s.Phase == v1alpha1.StartupPhase && s.Syscall == "bind" {
						binds += s.Count
					}
				}
			}
			if binds != 4 {
				t.Fatalf("%d startup binds, want one per instance (4)\n%+v", binds, app.Capabilities)
			}
			initEntry := entry(t, p, ns, "init")
			wantRequired(t, alone(initEntry), "NET_BIND_SERVICE")
			if cov := initEntry.Coverage; cov == nil || cov.Instances != 1 || cov.FromStart != 1 {
				t.Fatalf("init coverage %+v, want its one instance from its first instruction", cov)
			}
			if strings.Contains(rec.log(), "not recorded") {
				t.Fatalf("capprof missed a container:\n%s", rec.log())
			}
			runWithAdvice(t, c, ns, p, "app")
			// The session as a user sees it (the README shows one).
			path := filepath.Join(t.TempDir(), "web.json")
			if err := profile.Save(p, path); err != nil {
				t.Fatal(err)
			}
			r := capprof(t, "analyze", path)
			t.Logf("record:\n%s\nanalyze:\n%s%s", rec.log(), r.stdout, r.stderr)
		})
	}
}

// runWithAdvice runs `workload timeline` in a pod whose container gets only
// the capabilities the profile advises (drop ALL, add them), and fails
// unless every step succeeds.
func runWithAdvice(t *testing.T, c *cluster.Cluster, ns string, p *v1alpha1.Profile, container string) {
	t.Helper()
	a := profile.Analyze([]profile.Input{{Source: "recorded", Profile: p}})
	var advice *corev1.SecurityContext
	for _, ca := range a.Containers {
		if ca.Namespace == ns && ca.Name == container {
			advice = ca.SecurityContext
		}
	}
	if advice == nil || advice.Capabilities == nil {
		t.Fatalf("no advice for %s", container)
	}
	pod := timelinePod(ns, "advised", map[string]string{"app": "advised"})
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: advice.Capabilities}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	waitTimeline(t, c, run)
}

// waitTimeline waits for a pod's `workload timeline` to exit, and fails
// unless every step succeeded.
func waitTimeline(t *testing.T, c *cluster.Cluster, pod *corev1.Pod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code, err := c.WaitExit(ctx, containerID(t, pod, "app")); err != nil || code != 0 {
		t.Fatalf("pod %s: timeline exit %d, %v (console in the cluster log)", pod.Name, code, err)
	}
}

// TestPodsAlreadyRunningCoverage: a pod running before the recording starts
// is recorded from then on, and every output says its startup was not seen:
// the recording's progress line, analyze (table, YAML, JSON), patch and
// diff; patch leaves its idle container's securityContext alone unless
// --allow-empty.
func TestPodsAlreadyRunningCoverage(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "running")
	pod := runPod(t, c, testPod(ns, "old", nil, "app", "idle"))
	time.Sleep(1100 * time.Millisecond) // the API's start times have whole seconds
	rec := startRecord(t, "--pods", "old", "-n", ns, "--kubeconfig", c.Kubeconfig)
	execIn(t, c, containerID(t, pod, "app"), "/workload", "chown", "/data/late")
	p := rec.stop(t)
	if !strings.Contains(rec.log(), "recording container app of pod "+ns+"/old") || !strings.Contains(rec.log(), "after its start, which was not recorded") {
		t.Fatalf("the progress lines do not say the start was missed:\n%s", rec.log())
	}
	app := entry(t, p, ns, "app")
	wantRequired(t, alone(app), "CHOWN")
	cov := app.Coverage
	if cov == nil || cov.Instances != 1 || cov.FromStart != 0 || len(cov.Late) != 1 || cov.Late[0].Pod != "old" ||
		cov.Late[0].ContainerID != containerID(t, pod, "app") || cov.Late[0].JoinedAfter == nil || time.Duration(*cov.Late[0].JoinedAfter) < time.Second {
		t.Fatalf("coverage %+v, want one late instance of pod old joined at least 1s after its start", cov)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "old.json")
	if err := profile.Save(p, path); err != nil {
		t.Fatal(err)
	}
	const warning = "startup not observed for 1 of 1 instance (pod old joined "
	for _, args := range [][]string{{"analyze", path}, {"analyze", "-o", "yaml", path}, {"analyze", "-o", "json", path}} {
		r := capprof(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, warning) {
			t.Fatalf("capprof %v: exit %d, no coverage warning:\n%s\n%s", args, r.code, r.stdout, r.stderr)
		}
		t.Logf("capprof %s:\n%s%s", strings.Join(args, " "), r.stdout, r.stderr)
	}
	manifest := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: old
  namespace: %s
spec:
  containers:
  - name: app
    image: %s
  - name: idle
    image: %s
    securityContext:
      capabilities:
        add: [NET_ADMIN]
`, ns, cluster.ImageName, cluster.ImageName)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := capprof(t, "patch", "--manifest", manifest, path)
	idleLeft := ns + "/Pod/old/idle: no process of it was observed, so its advice rests on no evidence: left alone"
	if r.code != 0 || !strings.Contains(r.stderr, warning) || !strings.Contains(r.stderr, idleLeft) ||
		!strings.Contains(r.stdout, "NET_ADMIN") || strings.Count(r.stdout, "- ALL") != 1 {
		t.Fatalf("patch: exit %d, want the coverage warning, the idle container left alone with its NET_ADMIN and app patched:\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = capprof(t, "patch", "--allow-empty", "--manifest", manifest, path)
	if r.code != 0 || strings.Contains(r.stdout, "NET_ADMIN") || strings.Count(r.stdout, "- ALL") != 2 {
		t.Fatalf("patch --allow-empty: exit %d, want both containers patched:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = capprof(t, "diff", path, path)
	if r.code != 0 || !strings.Contains(r.stderr, warning) {
		t.Fatalf("diff: exit %d, no coverage warning:\n%s", r.code, r.stderr)
	}
}

// TestPodsRuntimes: with each runtime, however it puts processes into the
// container's cgroup (runc 1.1 moves them in; runc 1.5 moves exec
// processes in with their threads running, or clones them into it), an
// entrypoint is recorded from its first instruction, and the runtime's own
// setup of the container and of each exec (setns, capset, setgroups,
// setresuid, mounts) is never a requirement, while what the exec'd program
// does is. (crun refuses this kind of machine's hybrid cgroup layout; the
// way it starts processes, clone3(CLONE_INTO_CGROUP), is bpf's
// TestRuntimeInit.)
func TestPodsRuntimes(t *testing.T) {
	c := needCluster(t)
	for _, handler := range []string{"", newRuncHandler} {
		name := handler
		if name == "" {
			name = "runc-1.1"
		}
		t.Run(name, func(t *testing.T) {
			needRuntime(t, handler)
			ns := namespace(t, c, "rt")
			var opts []cluster.PodOption
			if handler != "" {
				opts = append(opts, cluster.WithRuntimeHandler(handler))
			}
			rec := startRecord(t, "-l", "app=rt", "-n", ns, "--kubeconfig", c.Kubeconfig)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			timeline, err := c.RunPod(ctx, timelinePod(ns, "timeline", map[string]string{"app": "rt"}), opts...)
			if err != nil {
				t.Fatal(err)
			}
			sleeper, err := c.RunPod(ctx, testPod(ns, "sleeper", map[string]string{"app": "rt"}, "sleeper"), opts...)
			if err != nil {
				t.Fatal(err)
			}
			rec.waitFor(t, "recording container sleeper of pod "+ns+"/sleeper")
			for range 3 {
				execIn(t, c, containerID(t, sleeper, "sleeper"), "/bin/true")
			}
			execIn(t, c, containerID(t, sleeper, "sleeper"), "/workload", "bind80")
			waitTimeline(t, c, timeline)
			p := rec.stop(t)

			app := entry(t, p, ns, "app")
			wantRequired(t, alone(app), timelineCaps...)
			if cov := app.Coverage; cov == nil || cov.Instances != 1 || cov.FromStart != 1 {
				t.Fatalf("coverage %+v, want its start recorded\n%s", cov, rec.log())
			}
			s := entry(t, p, ns, "sleeper")
			wantRequired(t, alone(s), "NET_BIND_SERVICE")
			var runtime bool
			for _, cc := range s.Capabilities {
				for _, src := range cc.Sources {
					runtime = runtime || src.Phase == v1alpha1.RuntimeInitPhase
				}
			}
			if !runtime {
				t.Fatalf("no check of the runtime's exec setup was recorded (as runtime-init) for sleeper: %+v", s.Capabilities)
			}
		})
	}
}

// TestPodsRestart: record --restart restarts the Deployment of the selected
// running pod as kubectl rollout restart does, once the recording is armed,
// and the pod that replaces it (the test plays the Deployment's
// controllers) is recorded from its first instruction. A bare pod is
// refused with the reason; a user who may not patch Deployments is told
// which right is missing.
func TestPodsRestart(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "restart")
	rs, hash := deployment(t, c, ns)
	labels := map[string]string{"app": "web", "pod-template-hash": hash}
	old := testPod(ns, "web-"+hash+"-old00", labels, "app")
	old.OwnerReferences = []metav1.OwnerReference{rs}
	runPod(t, c, old)
	runPod(t, c, testPod(ns, "bare", map[string]string{"app": "bare"}, "app"))

	out := filepath.Join(t.TempDir(), "p.json")
	r := capprof(t, "record", "-o", out, "--node", testNode, "--pods", "bare", "-n", ns, "--kubeconfig", c.Kubeconfig, "--restart")
	if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `pod `+ns+`/bare belongs to Pod "bare", which nothing restarts`) {
		t.Fatalf("bare pod: exit %d, stderr %q; want exit 125 and the reason", r.code, r.stderr)
	}

	// The viewer may list and watch pods here, and read ReplicaSets, but
	// not patch Deployments.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "recorder", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"get"}},
	}}
	if _, err := c.Client.RbacV1().Roles(ns).Create(context.Background(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "recorder", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "recorder"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "capprof-viewer"}}}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(context.Background(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = capprof(t, "record", "-o", out, "--node", testNode, "-l", "app=web", "-n", ns, "--kubeconfig", c.ViewerKubeconfig, "--restart")
	if r.code != 125 || !strings.Contains(r.stderr, fmt.Sprintf(`forbidden to patch deployments in namespace %q`, ns)) ||
		!strings.Contains(r.stderr, `grant the user "patch" on "deployments"`) {
		t.Fatalf("no patch right: exit %d, stderr %q; want exit 125 naming the missing right", r.code, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a failed record left %s behind", out)
	}

	rec := startRecord(t, "-l", "app=web", "-n", ns, "--kubeconfig", c.Kubeconfig, "--restart")
	rec.waitFor(t, fmt.Sprintf("restarted Deployment web in namespace %q", ns))
	d, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Fatalf("the Deployment's pod template has no restartedAt annotation: %v", d.Spec.Template.Annotations)
	}
	replacement := timelinePod(ns, "web-"+hash+"-new11", labels)
	replacement.OwnerReferences = []metav1.OwnerReference{rs}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pod, err := c.RunPod(ctx, replacement)
	if err != nil {
		t.Fatal(err)
	}
	waitTimeline(t, c, pod)
	p := rec.stop(t)
	app := entry(t, p, ns, "app")
	wantRequired(t, alone(app), timelineCaps...)
	if cov := app.Coverage; cov == nil || cov.Instances != 2 || cov.FromStart != 1 || len(cov.Late) != 1 || cov.Late[0].Pod != old.Name {
		t.Fatalf("coverage %+v, want the old pod late and its replacement from its start", cov)
	}
}

// TestPodsUnknownLayout: a pod whose cgroups are where no kubelet driver puts
// them is found through the CRI from its container's process
// (/proc/PID/cgroup) and recorded from then on, saying its start was missed.
func TestPodsUnknownLayout(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "layout")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pod, err := c.RunPod(ctx, testPod(ns, "odd", nil, "app"), cluster.WithCgroupParent("/capprof-e2e-"+ns+"/odd"))
	if err != nil {
		t.Fatal(err)
	}
	rec := startRecord(t, "--pods", "odd", "-n", ns, "--runtime-endpoint", c.CRIEndpoint)
	rec.waitFor(t, "recording container app of pod "+ns+"/odd")
	execIn(t, c, containerID(t, pod, "app"), "/workload", "bind80")
	p := rec.stop(t)
	app := entry(t, p, ns, "app")
	wantRequired(t, alone(app), "NET_BIND_SERVICE")
	if cov := app.Coverage; cov == nil || cov.Instances != 1 || len(cov.Late) != 1 {
		t.Fatalf("coverage %+v, want one instance joined late", cov)
	}

	// Through the API there is no pid to go by: the user is told where
	// capprof looked.
	out := filepath.Join(t.TempDir(), "p.json")
	r := capprof(t, "record", "-o", out, "--node", testNode, "--pods", "odd", "-n", ns, "--kubeconfig", c.Kubeconfig)
	if r.code != 125 || !strings.Contains(r.stderr, "no cgroup found under") {
		t.Fatalf("API mode: exit %d, stderr %q; want the cgroup search's failure", r.code, r.stderr)
	}
}
