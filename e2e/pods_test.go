package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/internal/static"
	"github.com/capprof/capprof/profile"
)

// The pod tests run against a real etcd, kube-apiserver and containerd that
// the harness (package cluster) starts once for the test binary; make
// e2e-deps installs and builds them. The harness plays the kubelet.

const testNode = "capprof-e2e-node"

var (
	clusterOnce     sync.Once
	testCluster     *cluster.Cluster
	clusterErr      error
	clusterSkip     string
	clusterRuntimes map[string]string // handler -> binary, the ones found
)

// needRuntime skips (fails under CI=true) when a runtime handler's binary
// was not found.
func needRuntime(t *testing.T, handler string) {
	t.Helper()
	if handler == "" || clusterRuntimes[handler] != "" {
		return
	}
	why := fmt.Sprintf("runtime handler %s: no binary (make e2e-deps builds it, CAPPROF_E2E_RUNC names it)", handler)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: not skipping)", why)
	}
	t.Skip(why)
}

// needCluster returns the running cluster, starting it on first use. It
// skips (fails under CI=true) when the components are not installed.
func needCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	requireRecording(t)
	clusterOnce.Do(startCluster)
	if clusterSkip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pod e2e tests cannot run: %s (CI=true: not skipping)", clusterSkip)
		}
		t.Skipf("skipping: %s", clusterSkip)
	}
	if clusterErr != nil {
		t.Fatalf("start cluster: %v", clusterErr)
	}
	return testCluster
}

// newRuncHandler is the pod tests' runtime handler besides the default
// (Debian's runc 1.1): $CAPPROF_E2E_RUNC, a runc 1.4+.
const newRuncHandler = "runc-new"

func startCluster() {
	apiserver, busybox := os.Getenv("CAPPROF_E2E_APISERVER"), os.Getenv("CAPPROF_E2E_BUSYBOX")
	if apiserver == "" || busybox == "" {
		clusterSkip = "CAPPROF_E2E_APISERVER or CAPPROF_E2E_BUSYBOX is not set; run make test, or make e2e-deps and set them to the kube-apiserver and busybox it fetched"
		return
	}
	for _, bin := range []string{apiserver, "/usr/bin/etcd", "/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", busybox} {
		if _, err := os.Stat(bin); err != nil {
			clusterSkip = fmt.Sprintf("%s missing (%v): run make e2e-deps", bin, err)
			return
		}
	}
	if err := static.Check(busybox); err != nil {
		clusterErr = fmt.Errorf("CAPPROF_E2E_BUSYBOX: %w: the test image has no libraries (make e2e-deps fetches busybox-static's)", err)
		return
	}
	runtimes := map[string]string{}
	if bin := os.Getenv("CAPPROF_E2E_RUNC"); bin != "" {
		if _, err := os.Stat(bin); err == nil {
			runtimes[newRuncHandler] = bin
		}
	}
	dir, err := os.MkdirTemp("", cluster.DirPrefix)
	if err != nil {
		clusterErr = err
		return
	}
	static := filepath.Join(dir, "workload-static")
	build := exec.Command("go", "build", "-o", static, "./workload")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		clusterErr = fmt.Errorf("build static workload: %v: %s", err, out)
		return
	}
	log, err := os.Create(filepath.Join(os.TempDir(), "capprof-e2e-cluster.log"))
	if err != nil {
		clusterErr = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	testCluster, clusterErr = cluster.Start(ctx, cluster.Config{
		Dir: dir, APIServer: apiserver, Busybox: busybox, Workload: static, Node: testNode, Log: log, Runtimes: runtimes,
	})
	clusterRuntimes = runtimes
	if clusterErr != nil {
		clusterErr = fmt.Errorf("%w (component logs: %s)", clusterErr, log.Name())
	}
}

// stopCluster is called by TestMain after the tests, failed or not.
func stopCluster() error {
	if testCluster == nil {
		return nil
	}
	return testCluster.Stop()
}

// background is a capprof record running while a test acts on pods.
type background struct {
	cmd    *exec.Cmd
	out    string
	mu     sync.Mutex
	stderr bytes.Buffer
	stdout bytes.Buffer // written only by exec's copier; read after done
	done   chan error
}

func (b *background) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.Write(p)
}

func (b *background) log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.String()
}

// startRecord starts `capprof record -o FILE --node testNode args...` and
// waits until it is recording.
func startRecord(t *testing.T, args ...string) *background {
	t.Helper()
	b := &background{out: filepath.Join(t.TempDir(), "pods.json"), done: make(chan error, 1)}
	b.cmd = exec.Command(capprofBin, append([]string{"record", "-o", b.out, "--node", testNode, "--progress", "0"}, args...)...)
	b.cmd.Stderr = b
	b.cmd.Stdout = &b.stdout
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() { b.cmd.Process.Kill() })
	b.waitFor(t, "capprof: recording ")
	return b
}

// waitFor waits until capprof's stderr contains s.
func (b *background) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.log(), s) {
		select {
		case err := <-b.done:
			t.Fatalf("capprof exited (%v) before printing %q:\n%s", err, s, b.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("capprof did not print %q within 30s:\n%s", s, b.log())
		}
	}
}

// stop sends SIGINT, as Ctrl-C would, and loads the profile.
func (b *background) stop(t *testing.T) *v1alpha1.Profile {
	t.Helper()
	b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("capprof record: %v\n%s", err, b.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("capprof did not stop within 30s of SIGINT:\n%s", b.log())
	}
	p, err := profile.Load(b.out)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.log())
	}
	return p
}

var podSeq int

// testPod is a pod of the test image whose containers sleep; names get a
// sequence number so tests do not collide.
func testPod(namespace, name string, labels map[string]string, containers ...string) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels}}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: cluster.ImageName, Command: []string{"/bin/sleep", "100000"}})
	}
	return pod
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, c *cluster.Cluster, prefix string) string {
	t.Helper()
	podSeq++
	name := fmt.Sprintf("%s-%d", prefix, podSeq)
	if _, err := c.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func runPod(t *testing.T, c *cluster.Cluster, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := c.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func containerID(t *testing.T, pod *corev1.Pod, name string) string {
	t.Helper()
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == name {
			return cluster.ContainerID(s)
		}
	}
	t.Fatalf("pod %s has no container %s", pod.Name, name)
	return ""
}

func execIn(t *testing.T, c *cluster.Cluster, id string, cmd ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Exec(ctx, id, cmd...); err != nil {
		t.Fatal(err)
	}
}

// entry finds a profile's container by namespace and name.
func entry(t *testing.T, p *v1alpha1.Profile, namespace, name string) v1alpha1.Container {
	t.Helper()
	for _, c := range p.Containers {
		if c.Namespace == namespace && c.Name == name {
			return c
		}
	}
	var have []string
	for _, c := range p.Containers {
		have = append(have, c.Key().String())
	}
	t.Fatalf("profile has no container %s in namespace %s; it has %v", name, namespace, have)
	return v1alpha1.Container{}
}

// alone wraps one container in a profile, for wantRequired.
func alone(c v1alpha1.Container) *v1alpha1.Profile {
	return &v1alpha1.Profile{Containers: []v1alpha1.Container{c}}
}

// TestPodsByName: record --pods on a pod whose container binds port 80 and
// chowns a file; a pod of the same name and container name in another
// namespace does other things and must not be mixed in, with -n or with -A.
func TestPodsByName(t *testing.T) {
	c := needCluster(t)
	alpha, beta := namespace(t, c, "alpha"), namespace(t, c, "beta")
	a := runPod(t, c, testPod(alpha, "xwing", nil, "app"))
	b := runPod(t, c, testPod(beta, "xwing", nil, "app"))

	for i, scope := range [][]string{{"-n", alpha}, {"-A"}} {
		rec := startRecord(t, append([]string{"--pods", "xwing", "--kubeconfig", c.Kubeconfig}, scope...)...)
		execIn(t, c, containerID(t, a, "app"), "/workload", "bind80")
		execIn(t, c, containerID(t, a, "app"), "/workload", "chown", fmt.Sprintf("/data/new-%d", i)) // a new file: an existing one, now nobody's, would need DAC_OVERRIDE
		execIn(t, c, containerID(t, b, "app"), "/workload", "setuid")
		p := rec.stop(t)

		got := entry(t, p, alpha, "app")
		if got.Owner == nil || *got.Owner != (v1alpha1.Owner{Kind: "Pod", Name: "xwing"}) || got.Kind != v1alpha1.RegularContainer ||
			!slices.Equal(got.Pods, []string{"xwing"}) || !slices.Equal(got.Images, []string{cluster.ImageName}) {
			t.Fatalf("%v: identity %+v, want bare pod xwing's regular container with the test image", scope, got)
		}
		wantRequired(t, alone(got), "CHOWN", "NET_BIND_SERVICE")
		if scope[0] == "-A" {
			wantRequired(t, alone(entry(t, p, beta, "app")), "SETUID")
			if len(p.Containers) != 2 {
				t.Fatalf("-A: %d containers, want 2", len(p.Containers))
			}
		} else if len(p.Containers) != 1 {
			t.Fatalf("-n %s: %d containers, want only %s's", alpha, len(p.Containers), alpha)
		}
		if p.Metadata.Node != testNode || !strings.Contains(p.Metadata.Selector, "pods xwing") {
			t.Fatalf("metadata %+v, want node %s and the selector", p.Metadata, testNode)
		}
	}
}

// TestPodsSecondSignalQuits: pod mode stops on a signal, and quits on the
// next one if stopping hangs (here: saving into a FIFO nobody reads).
func TestPodsSecondSignalQuits(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "quit")
	runPod(t, c, testPod(ns, "xwing", nil, "app"))
	quitWhileSaving(t, "capprof: recording ", "--node", testNode, "--pods", "xwing", "-n", ns, "--kubeconfig", c.Kubeconfig)
}

// waitCount waits until capprof's stderr contains s n times.
func (b *background) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(b.log(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("capprof did not print %q %d times within 30s:\n%s", s, n, b.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deployment creates an inert Deployment "web" and its ReplicaSet in ns (no
// controller runs), and returns the ReplicaSet's owner reference and the
// pod-template-hash, for pods that look like the Deployment's.
func deployment(t *testing.T, c *cluster.Cluster, ns string) (metav1.OwnerReference, string) {
	t.Helper()
	ctx := context.Background()
	const hash = "7d4b9c6f5"
	labels := map[string]string{"app": "web"}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: cluster.ImageName}}},
	}
	d, err := c.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.Client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash, OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: new(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: new(true)}, hash
}

// TestPodsWorkload records -l app=web in one namespace: a Deployment's pod
// with an init container and two containers; one container restarts during
// the recording; a second replica created during the recording joins. The
// entries are per (namespace, Deployment, container), replicas merged.
func TestPodsWorkload(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "shop")
	rs, hash := deployment(t, c, ns)
	replica := func(suffix string, init bool) *corev1.Pod {
		p := testPod(ns, "web-"+hash+"-"+suffix, map[string]string{"app": "web", "pod-template-hash": hash}, "server", "sidecar")
		p.OwnerReferences = []metav1.OwnerReference{rs}
		if init {
			// Waits for the test to have seen it recorded, then chowns.
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: cluster.ImageName,
				Command: []string{"/bin/sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; exec /workload chown /data/init"}}}
		}
		return p
	}

	first := replica("aaaaa", true)
	ran := make(chan *corev1.Pod, 1)
	go func() {
		p, err := c.RunPod(context.Background(), first)
		if err != nil {
			t.Error(err)
		}
		ran <- p
	}()
	initID := ""
	deadline := time.Now().Add(30 * time.Second)
	for initID == "" {
		if p, err := c.Client.CoreV1().Pods(ns).Get(context.Background(), first.Name, metav1.GetOptions{}); err == nil && len(p.Status.InitContainerStatuses) > 0 {
			initID = cluster.ContainerID(p.Status.InitContainerStatuses[0])
		}
		if time.Now().After(deadline) {
			t.Fatal("init container not reported within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	rec := startRecord(t, "-l", "app=web", "-n", ns, "--kubeconfig", c.Kubeconfig)
	rec.waitFor(t, "recording container init of pod "+ns+"/"+first.Name)
	execIn(t, c, initID, "/bin/touch", "/tmp/go")
	pod := <-ran
	if pod == nil {
		t.FailNow()
	}
	rec.waitFor(t, "recording container sidecar of pod "+ns+"/"+first.Name)
	execIn(t, c, containerID(t, pod, "server"), "/workload", "bind80")
	execIn(t, c, containerID(t, pod, "sidecar"), "/workload", "setuid")

	restarted, err := c.RestartContainer(context.Background(), pod, "server")
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCount(t, "recording container server of pod "+ns+"/"+first.Name, 2)
	execIn(t, c, containerID(t, restarted, "server"), "/workload", "chown", "/data/after-restart")

	second := runPod(t, c, replica("bbbbb", false))
	rec.waitFor(t, "recording container sidecar of pod "+ns+"/"+second.Name)
	execIn(t, c, containerID(t, second, "sidecar"), "/workload", "bind80")
	p := rec.stop(t)

	if len(p.Containers) != 3 {
		t.Fatalf("%d containers, want init, server and sidecar", len(p.Containers))
	}
	want := map[string]struct {
		kind     v1alpha1.ContainerKind
		pods     []string
		required []string
	}{
		"init":    {v1alpha1.InitContainer, []string{first.Name}, []string{"CHOWN"}},
		"server":  {v1alpha1.RegularContainer, []string{first.Name, second.Name}, []string{"CHOWN", "NET_BIND_SERVICE"}}, // before and after its restart
		"sidecar": {v1alpha1.RegularContainer, []string{first.Name, second.Name}, []string{"SETUID", "NET_BIND_SERVICE"}},
	}
	for name, w := range want {
		got := entry(t, p, ns, name)
		if got.Owner == nil || *got.Owner != (v1alpha1.Owner{Kind: "Deployment", Name: "web"}) || got.Kind != w.kind || !slices.Equal(got.Pods, w.pods) {
			t.Fatalf("%s: owner %v kind %q pods %v; want Deployment web, %q, %v", name, got.Owner, got.Kind, got.Pods, w.kind, w.pods)
		}
		wantRequired(t, alone(got), w.required...)
	}

	// A recording started after the init container ended says it missed it.
	late := startRecord(t, "--pods", first.Name, "-n", ns, "--kubeconfig", c.Kubeconfig)
	late.stop(t)
	if !strings.Contains(late.log(), fmt.Sprintf("container init of pod %s/%s (%s) ended before capprof saw it: not recorded", ns, first.Name, initID)) {
		t.Fatalf("no warning about the missed init container:\n%s", late.log())
	}

	// analyze shows the workload and how many pods contributed.
	path := filepath.Join(t.TempDir(), "web.json")
	if err := profile.Save(p, path); err != nil {
		t.Fatal(err)
	}
	r := capprof(t, "analyze", path)
	if r.code != 0 || !strings.Contains(r.stdout, "CONTAINER sidecar in "+ns+"/Deployment/web (regular, image "+cluster.ImageName+"; 2 pods, 1 recording)") {
		t.Fatalf("analyze: exit %d, stdout:\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// TestPodsRuntimeEndpoint: --runtime-endpoint finds the pod through the CRI
// without any kubeconfig, and records what an API-mode recording running at
// the same time records.
func TestPodsRuntimeEndpoint(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "cri")
	pod := runPod(t, c, testPod(ns, "tie", map[string]string{"app": "tie"}, "app"))
	viaAPI := startRecord(t, "--pods", "tie", "-n", ns, "--kubeconfig", c.Kubeconfig)
	viaCRI := startRecord(t, "-l", "app=tie", "-n", ns, "--runtime-endpoint", c.CRIEndpoint)
	execIn(t, c, containerID(t, pod, "app"), "/workload", "bind80")
	execIn(t, c, containerID(t, pod, "app"), "/workload", "setuid")
	fromAPI, fromCRI := viaAPI.stop(t), viaCRI.stop(t)
	a, b := entry(t, fromAPI, ns, "app"), entry(t, fromCRI, ns, "app")
	if *b.Owner != (v1alpha1.Owner{Kind: "Pod", Name: "tie"}) || !slices.Equal(b.Pods, []string{"tie"}) || !slices.Equal(b.Images, []string{cluster.ImageName}) {
		t.Fatalf("CRI identity %+v, want bare pod tie with the test image", b)
	}
	wantRequired(t, alone(a), "SETUID", "NET_BIND_SERVICE")
	wantRequired(t, alone(b), "SETUID", "NET_BIND_SERVICE")
}

// TestPodsRuntimeRestarts: through the CRI, a containerd that restarts
// while capprof records is asked again until it answers; a pod started
// after that is recorded.
func TestPodsRuntimeRestarts(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "crirestart")
	rec := startRecord(t, "-l", "app=late", "-n", ns, "--runtime-endpoint", c.CRIEndpoint)
	if err := c.RestartContainerd(context.Background(), func() { rec.waitFor(t, "does not answer") }); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "answers again")
	pod := runPod(t, c, testPod(ns, "late", map[string]string{"app": "late"}, "app"))
	execIn(t, c, containerID(t, pod, "app"), "/workload", "bind80")
	rec.waitFor(t, "of pod "+ns+"/late")
	wantRequired(t, alone(entry(t, rec.stop(t), ns, "app")), "NET_BIND_SERVICE")
}

// TestPodsErrors: the mistakes a user makes get one line that says what was
// tried, and no profile. A selection nothing matches yet is not an error at
// first (record waits for the rollout), but it says what nearly matched, and
// a recording that ends with nothing matched saves nothing and fails.
func TestPodsErrors(t *testing.T) {
	c := needCluster(t)
	ns, other := namespace(t, c, "errs"), namespace(t, c, "elsewhere")
	runPod(t, c, testPod(ns, "ghost", nil, "app"))

	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	cfg, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unreachable, regexp.MustCompile(`server: https://127.0.0.1:\d+`).ReplaceAll(cfg, []byte("server: https://127.0.0.1:1")), 0o600); err != nil {
		t.Fatal(err)
	}
	// A pod whose status names a container the runtime never ran.
	phantom := testPod(ns, "phantom", nil, "app")
	phantom.Spec.NodeName = testNode
	created, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), phantom, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.ContainerStatuses = []corev1.ContainerStatus{runningFake("app")}
	if _, err := c.Client.CoreV1().Pods(ns).UpdateStatus(context.Background(), created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want []string
		// waits: nothing matched; record waits, then fails when --duration ends.
		waits bool
	}{
		{"other namespace", []string{"--pods", "ghost", "-n", other, "--kubeconfig", c.Kubeconfig},
			[]string{fmt.Sprintf(`no pod matched: pods ghost in namespace %q on node %q (kubeconfig %s, context "capprof-e2e-admin")`, other, testNode, c.Kubeconfig),
				fmt.Sprintf("near misses: %s/ghost (another namespace)", ns)}, true},
		{"other node", []string{"--pods", "ghost", "-n", ns, "--kubeconfig", c.Kubeconfig, "--node", "node-b"},
			[]string{`no pod matched: pods ghost in namespace "` + ns + `" on node "node-b"`, fmt.Sprintf("near misses: %s/ghost (on node %q)", ns, testNode)}, true},
		{"nothing anywhere", []string{"-l", "app=nosuch", "-A", "--kubeconfig", c.Kubeconfig},
			[]string{`no pod matched: pods matching app=nosuch in all namespaces`, "no pod of that name or selector exists elsewhere either"}, true},
		{"forbidden", []string{"--pods", "ghost", "-n", ns, "--kubeconfig", c.ViewerKubeconfig},
			[]string{fmt.Sprintf(`forbidden to list pods in namespace %q (kubeconfig %s, context "capprof-e2e-viewer")`, ns, c.ViewerKubeconfig), `User "capprof-viewer" cannot list resource "pods"`}, false},
		{"unreachable", []string{"--pods", "ghost", "-n", ns, "--kubeconfig", unreachable},
			[]string{fmt.Sprintf(`list pods in namespace %q (kubeconfig %s, context "capprof-e2e-admin"): API server unreachable`, ns, unreachable), "connection refused"}, false},
		{"no cgroup", []string{"--pods", "phantom", "-n", ns, "--kubeconfig", c.Kubeconfig},
			[]string{fmt.Sprintf(`container "app" (%s) of pod %s/phantom: no cgroup found under /sys/fs/cgroup`, fakeContainerID, ns), "looked for pod" + string(created.UID)}, false},
		{"cri no match", []string{"--pods", "ghost", "-n", other, "--runtime-endpoint", c.CRIEndpoint},
			[]string{"no pod matched: pods ghost in namespace", "(runtime endpoint " + c.CRIEndpoint + ")", fmt.Sprintf("near misses: %s/ghost (another namespace)", ns)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "p.json")
			args := append([]string{"record", "-o", out, "--node", testNode}, tt.args...)
			if tt.waits {
				args = append(args, "--duration", "1s")
			}
			r := capprof(t, args...)
			switch {
			case tt.waits:
				lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
				if r.code != 125 || !strings.Contains(lines[0], "waiting for matching pods") ||
					!strings.HasPrefix(lines[len(lines)-1], "capprof: no pod matched during the recording: ") {
					t.Fatalf("exit %d, stderr %q: want exit 125, the near misses while waiting, and the failure last", r.code, r.stderr)
				}
			case r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "capprof: "):
				t.Fatalf("exit %d, stderr %q: want exit 125 and one line", r.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Fatalf("stderr %q lacks %q", r.stderr, w)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("a failed record left %s behind", out)
			}
		})
	}
}

const fakeContainerID = "0000000000000000000000000000000000000000000000000000000000000bad"

func runningFake(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Image: cluster.ImageName, ContainerID: "containerd://" + fakeContainerID,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}
}
