package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/profile"
)

// clusterNodes are the nodes the harness plays for cluster mode: their
// pods share this machine's kernel and runtime, and each has its own agent.
var clusterNodes = []string{"node-a", "node-b", "node-c"}

// startDaemon starts a long-running capprof verb (agent, controller) and
// stops it with SIGTERM at the test's end.
func startDaemon(t *testing.T, args ...string) *background {
	t.Helper()
	b := &background{done: make(chan error, 1)}
	b.cmd = exec.Command(capprofBin, args...)
	b.cmd.Stderr, b.cmd.Stdout = b, &b.stdout
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			b.cmd.Process.Kill()
			t.Errorf("capprof %s did not stop within 20s of SIGTERM:\n%s", args[0], b.log())
		}
		if t.Failed() {
			t.Logf("capprof %s:\n%s", strings.Join(args, " "), b.log())
		}
	})
	return b
}

// crClient is a client of capprof's objects with the admin's rights.
func crClient(t *testing.T, c *cluster.Cluster) client.Client {
	t.Helper()
	return crClientFor(t, c.Kubeconfig)
}

// crClientFor is a client of capprof's objects with a kubeconfig's rights.
func crClientFor(t *testing.T, kubeconfig string) client.Client {
	t.Helper()
	cl, _, _, err := kube.Client(kube.ClusterConfig{Kubeconfig: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// eventually polls cond every 200ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, within, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// agentKubeconfig is the credentials of node's agent as its DaemonSet pod
// would have them: a token of the capprof-agent service account bound to a
// pod on that node (the pod is only an API object; the agent runs here as a
// process).
func agentKubeconfig(t *testing.T, c *cluster.Cluster, node string) string {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "capprof-system", Name: "capprof-agent-" + node},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "capprof-agent", Containers: []corev1.Container{{Name: "agent", Image: cluster.ImageName}}}}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), node+".kubeconfig")
	if err := c.ServiceAccountKubeconfig(ctx, path, pod.Namespace, "capprof-agent", pod.Name); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestClusterMode: a Deployment with a replica on each of three nodes, each
// doing different privileged work, recorded with record --cluster by one
// agent per node and merged by the controller into one CapabilityProfile:
// current while the recording runs, intact across an agent's SIGKILL (whose
// time down shows as a gap), equal to capprof analyze of the nodes' results
// as files, and read by analyze, patch and diff --from-cluster as from the
// file kubectl get -o yaml gives. Deleting the recording deletes the node
// results and keeps the profile.
func TestClusterMode(t *testing.T) {
	c := needCluster(t)
	installCRDs(t, c)
	installClusterRBAC(t, c)
	ns := namespace(t, c, "cluster")
	cl := crClient(t, c)
	ctx := context.Background()

	// Each with its own service account's rights alone.
	controllerKubeconfig := filepath.Join(t.TempDir(), "controller.kubeconfig")
	if err := c.ServiceAccountKubeconfig(ctx, controllerKubeconfig, "capprof-system", "capprof-controller", ""); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, "controller", "--kubeconfig", controllerKubeconfig, "--final-grace", "30s", "--leader-elect", "--lease-namespace", "capprof-system")
	kubeconfigs := map[string]string{}
	for _, node := range clusterNodes {
		kubeconfigs[node] = agentKubeconfig(t, c, node)
	}
	agentArgs := func(node string) []string {
		return []string{"agent", "--node", node, "--kubeconfig", kubeconfigs[node], "--flush", "1s"}
	}
	agents := map[string]*background{}
	for _, node := range clusterNodes {
		agents[node] = startDaemon(t, agentArgs(node)...)
	}

	rs, hash := deployment(t, c, ns)
	// record --cluster --wait runs through the whole recording.
	waiting := startDaemon(t, "record", "--cluster", "-n", ns, "--kubeconfig", c.Kubeconfig, "deploy/web", "--duration", "45s", "--startup", "1s", "--wait")
	waiting.waitFor(t, "capprof: created CapabilityRecording "+ns+"/web-")
	recName, _, _ := strings.Cut(strings.SplitN(waiting.log(), "capprof: created CapabilityRecording "+ns+"/", 2)[1], ":")
	recKey := client.ObjectKey{Namespace: ns, Name: recName}
	var rec v1alpha1.CapabilityRecording
	getRec := func() {
		t.Helper()
		if err := cl.Get(ctx, recKey, &rec); err != nil {
			t.Fatal(err)
		}
	}
	// Every agent has armed it (its first result), so pods from now on are
	// recorded from their first instruction.
	eventually(t, 30*time.Second, "every agent reports", func() (bool, string) {
		getRec()
		return rec.Status.NodeCount == 3 && rec.Status.Phase == v1alpha1.RecordingRecording, string(rec.Status.Phase)
	})

	pods := map[string]string{} // node -> container id of server
	for i, node := range clusterNodes {
		pod := testPod(ns, "web-"+hash+"-"+node, map[string]string{"app": "web", "pod-template-hash": hash}, "server")
		pod.OwnerReferences = []metav1.OwnerReference{rs}
		runCtx, cancel := context.WithTimeout(ctx, time.Minute)
		p, err := c.RunPod(runCtx, pod, cluster.OnNode(node))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		pods[node] = containerID(t, p, "server")
		agents[clusterNodes[i]].waitFor(t, "recording container server of pod "+ns+"/"+p.Name)
	}
	// Past the startup window: steady work.
	time.Sleep(1500 * time.Millisecond)
	execIn(t, c, pods["node-a"], "/workload", "bind80")
	execIn(t, c, pods["node-b"], "/workload", "chown", "/tmp/owned")

	profileKey := client.ObjectKey{Namespace: ns, Name: "deployment-web"}
	var prof v1alpha1.CapabilityProfile
	required := func() string {
		if err := cl.Get(ctx, profileKey, &prof); err != nil {
			if apierrors.IsNotFound(err) {
				return "(no profile)"
			}
			t.Fatal(err)
		}
		return prof.Status.Required
	}
	eventually(t, 15*time.Second, "the profile has node-a's and node-b's work", func() (bool, string) {
		r := required()
		return r == "server=CHOWN,NET_BIND_SERVICE", r
	})

	// node-a's agent may not write node-b's results: the API server refuses.
	asNodeA := crClientFor(t, kubeconfigs["node-a"])
	var nodeB v1alpha1.CapabilityNodeResult
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.NodeResultName(recName, "node-b", nil)}, &nodeB); err != nil {
		t.Fatal(err)
	}
	nodeB.Spec.Containers = []v1alpha1.Container{}
	forged := &v1alpha1.CapabilityNodeResult{Spec: nodeB.Spec}
	forged.Namespace, forged.Name = ns, "forged.node-b"
	for what, write := range map[string]func() error{
		"update node-b's result":    func() error { return asNodeA.Update(ctx, nodeB.DeepCopy()) },
		"create a result of node-b": func() error { return asNodeA.Create(ctx, forged.DeepCopy()) },
		"delete node-b's result":    func() error { return asNodeA.Delete(ctx, nodeB.DeepCopy()) },
	} {
		if err := write(); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "the agent of node node-a may write only its own node's results, not node node-b's") {
			t.Errorf("node-a's agent: %s: %v; want it refused by the node policy", what, err)
		}
	}
	// Nor under another node's name in its own.
	forged.Spec.Node, forged.Name = "node-a", v1alpha1.NodeResultName(recName, "node-b", nil)
	if err := asNodeA.Create(ctx, forged); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "a node result is named RECORDING.NODE[.KIND-WORKLOAD]") {
		t.Errorf("node-a's agent creating its result under node-b's name: %v; want it refused", err)
	}

	// node-b's agent is killed and restarted: what it wrote stays, its time
	// down is a gap, and its pod, recorded from its start by the first
	// agent and joined again late by the second, counts once, from start
	// and partial.
	agents["node-b"].cmd.Process.Kill()
	agents["node-b"].done <- <-agents["node-b"].done // for its cleanup
	time.Sleep(2 * time.Second)
	agents["node-b"] = startDaemon(t, agentArgs("node-b")...)
	agents["node-b"].waitFor(t, "nothing was recorded from then to now")
	agents["node-b"].waitFor(t, "recording container server of pod "+ns+"/web-"+hash+"-node-b")

	// A new capability on node-c appears while the recording runs.
	execIn(t, c, pods["node-c"], "/workload", "setuid")
	eventually(t, 15*time.Second, "node-c's new capability appears while recording", func() (bool, string) {
		r := required()
		return r == "server=CHOWN,SETUID,NET_BIND_SERVICE", r
	})
	getRec()
	if rec.Status.Phase != v1alpha1.RecordingRecording {
		t.Fatalf("phase %s while recording, want Recording", rec.Status.Phase)
	}

	// record --cluster --wait ends with the recording, and prints its
	// profile and what is missing.
	select {
	case err := <-waiting.done:
		waiting.done <- err // for its cleanup
		if err != nil {
			t.Fatalf("record --cluster --wait: %v\n%s", err, waiting.log())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("record --cluster --wait did not end within 90s:\n%s", waiting.log())
	}
	if out := waiting.stdout.String(); !strings.Contains(out, "capabilityrecording.capprof.dev/"+recName+"\n") ||
		!regexp.MustCompile(`deployment-web +server=CHOWN,SETUID,NET_BIND_SERVICE +baseline +3/3 from start`).MatchString(out) ||
		!strings.Contains(waiting.log(), "capprof: warning: node node-b recorded nothing for") {
		t.Errorf("record --cluster --wait printed:\n%s\n%s", out, waiting.log())
	}
	getRec()
	if rec.Status.NodeCount != 3 || rec.Status.Pods.Observed != 3 || rec.Status.Pods.Partial != 1 || rec.Status.Pods.FromStart != 3 ||
		!slices.Equal(rec.Status.Profiles, []string{"deployment-web"}) || rec.Status.ObservedGeneration != rec.Generation {
		t.Errorf("status %+v; want 3 nodes, 3 pods observed, all from start, 1 partial (node-b's, with a gap), profile deployment-web", rec.Status)
	}
	degraded := meta.FindStatusCondition(rec.Status.Conditions, v1alpha1.ConditionDegraded)
	if degraded == nil || degraded.Status != metav1.ConditionTrue || !strings.Contains(degraded.Message, "node node-b recorded nothing for") {
		t.Errorf("Degraded condition %+v; want true, naming node-b's gap", degraded)
	}

	// The profile equals capprof analyze of the nodes' results as files.
	var results v1alpha1.CapabilityNodeResultList
	if err := cl.List(ctx, &results, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	perNode := map[string]*v1alpha1.Profile{}
	for _, r := range results.Items {
		p := perNode[r.Spec.Node]
		if p == nil {
			p = &v1alpha1.Profile{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Containers: []v1alpha1.Container{}}
			perNode[r.Spec.Node] = p
		}
		p.Containers = append(p.Containers, r.Spec.Containers...)
		if r.Spec.Workload == nil { // the node's own
			p.Metadata = r.Spec.Recorded
			if !r.Spec.Final {
				t.Errorf("node result %s is not final after the recording completed", r.Name)
			}
		} else if want := v1alpha1.NodeResultName(recName, r.Spec.Node, r.Spec.Workload); r.Name != want || len(r.Spec.Containers) != 1 {
			t.Errorf("workload result %s: %d containers, want %s with 1", r.Name, len(r.Spec.Containers), want)
		}
	}
	var files []string
	for node, p := range perNode {
		path := filepath.Join(dir, node+".json")
		if err := profile.Save(p, path); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	if len(files) != 3 || len(results.Items) != 6 {
		t.Fatalf("%d node results of %d nodes, want 6 of 3: each node's own and its web's", len(results.Items), len(files))
	}
	required()
	prof.APIVersion, prof.Kind = v1alpha1.APIVersion, v1alpha1.Kind // as kubectl get -o yaml writes them
	asJSON, err := yaml.Marshal(&prof)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(saved, asJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	// The advice and every decision, per container: the analyses differ
	// in their warnings and recording counts.
	advice := func(args ...string) string {
		t.Helper()
		r := capprof(t, append([]string{"analyze", "-o", "json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("capprof analyze %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		var a profile.Analysis
		if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
			t.Fatalf("capprof analyze -o json: %v", err)
		}
		var out strings.Builder
		for _, ca := range a.Containers {
			sc, _ := json.Marshal(ca.SecurityContext)
			fmt.Fprintf(&out, "%s %s\n", ca.Key(), sc)
			for _, d := range ca.Capabilities {
				fmt.Fprintf(&out, "  %s %s\n", d.Capability, d.Decision)
			}
		}
		return out.String()
	}
	fromNodes := advice(files...)
	for _, m := range []string{"NET_BIND_SERVICE", "CHOWN", "SETUID"} {
		if !strings.Contains(fromNodes, m) {
			t.Errorf("advice from the nodes' results lacks %s:\n%s", m, fromNodes)
		}
	}
	fromCluster := []string{"--from-cluster", "-n", ns, "--kubeconfig", c.Kubeconfig, "deploy/web"}
	if got := advice(fromCluster...); got != fromNodes {
		t.Errorf("analyze --from-cluster:\n%s\nwant, from the nodes' results:\n%s", got, fromNodes)
	}
	// The same analysis but for the source's name in warnings.
	fromFile := strings.ReplaceAll(capprof(t, "analyze", "-o", "json", saved).stdout, saved, "capabilityprofile "+ns+"/deployment-web")
	if r := capprof(t, append([]string{"analyze", "-o", "json"}, fromCluster...)...); r.code != 0 || r.stdout != fromFile {
		t.Errorf("analyze -o json --from-cluster differs from the kubectl get -o yaml file's: exit %d, %s\n%s\n--- from the file:\n%s", r.code, r.stderr, r.stdout, fromFile)
	}
	if r := capprof(t, append([]string{"diff", "--fail-on", "any-change", saved}, fromCluster...)...); r.code != 0 {
		t.Errorf("diff FILE --from-cluster: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := capprof(t, "analyze", saved); !strings.Contains(r.stderr+r.stdout, "node node-b recorded nothing for") {
		t.Errorf("analyze does not warn of node-b's gap:\n%s%s", r.stdout, r.stderr)
	}

	// Whoever may view the namespace (capprof-view, aggregated to view)
	// reads the profile; starting a recording takes edit.
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "capprof-view"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "capprof-viewer"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := capprof(t, "analyze", "--from-cluster", "-n", ns, "--kubeconfig", c.ViewerKubeconfig, "deploy/web"); r.code != 0 {
		t.Errorf("a viewer's analyze --from-cluster: exit %d: %s", r.code, r.stderr)
	}
	if r := capprof(t, "record", "--cluster", "-n", ns, "--kubeconfig", c.ViewerKubeconfig, "deploy/web"); r.code == 0 ||
		!strings.Contains(r.stderr, `forbidden: grant the user "create" on "capabilityrecordings.capprof.dev"`) {
		t.Errorf("a viewer's record --cluster: exit %d: %s", r.code, r.stderr)
	}

	// Deleting the recording deletes its node results; the profile stays.
	if err := cl.Delete(ctx, &rec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the node results are deleted with the recording", func() (bool, string) {
		var left v1alpha1.CapabilityNodeResultList
		if err := cl.List(ctx, &left, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return len(left.Items) == 0, strings.Repeat("x", len(left.Items))
	})
	if err := cl.Get(ctx, profileKey, &prof); err != nil {
		t.Errorf("the profile went with the recording: %v", err)
	}
}

// TestClusterRestart: record --cluster --restart waits until the agents of
// the nodes that run the Deployment's pods have armed the recording, then
// restarts it as kubectl rollout restart does; the pod that replaces one
// (the test plays the Deployment's controllers) is recorded from its first
// instruction.
func TestClusterRestart(t *testing.T) {
	c := needCluster(t)
	installCRDs(t, c)
	installClusterRBAC(t, c)
	ns := namespace(t, c, "cluster-restart")
	ctx := context.Background()
	rs, hash := deployment(t, c, ns)
	labels := map[string]string{"app": "web", "pod-template-hash": hash}
	for _, node := range clusterNodes[:2] {
		old := testPod(ns, "web-"+hash+"-old-"+node, labels, "server")
		old.OwnerReferences = []metav1.OwnerReference{rs}
		runCtx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := c.RunPod(runCtx, old, cluster.OnNode(node))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	agents := map[string]*background{}
	for _, node := range clusterNodes[:2] {
		agents[node] = startDaemon(t, "agent", "--node", node, "--kubeconfig", agentKubeconfig(t, c, node), "--flush", "1s")
	}

	r := capprof(t, "record", "--cluster", "--restart", "-n", ns, "--kubeconfig", c.Kubeconfig, "deploy/web", "--duration", "1m", "--startup", "1s")
	if r.code != 0 || !strings.Contains(r.stderr, "waiting for the agents of node(s) node-a, node-b to arm the recording") ||
		!strings.Contains(r.stderr, fmt.Sprintf("restarted Deployment web in namespace %q", ns)) || strings.Contains(r.stderr, "warning") {
		t.Fatalf("record --cluster --restart: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Fatalf("the Deployment's pod template has no restartedAt annotation: %v", d.Spec.Template.Annotations)
	}
	// Both agents had armed it: their old pods were joined late, before
	// the restart.
	for node, a := range agents {
		a.waitFor(t, "recording container server of pod "+ns+"/web-"+hash+"-old-"+node)
	}
	replacement := testPod(ns, "web-"+hash+"-new", labels, "server")
	replacement.OwnerReferences = []metav1.OwnerReference{rs}
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := c.RunPod(runCtx, replacement, cluster.OnNode("node-b")); err != nil {
		t.Fatal(err)
	}
	agents["node-b"].waitFor(t, "recording container server of pod "+ns+"/"+replacement.Name+" (Deployment web, cgroup")
	if log := agents["node-b"].log(); !regexp.MustCompile(regexp.QuoteMeta(replacement.Name) + ` \(Deployment web, cgroup \d+ \w+\) from its first instruction`).MatchString(log) {
		t.Fatalf("the replacement pod was not recorded from its first instruction:\n%s", log)
	}
}
