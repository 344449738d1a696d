package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/profile"
)

// The pod tests run against a real etcd, kube-apiserver and containerd that
// the harness (package cluster) starts once for the test binary; make
// e2e-deps installs and builds them. The harness plays the kubelet.

const testNode = "capprof-e2e-node"

var (
	clusterOnce sync.Once
	testCluster *cluster.Cluster
	clusterErr  error
	clusterSkip string
)

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

func startCluster() {
	apiserver := os.Getenv("CAPPROF_E2E_APISERVER")
	if apiserver == "" {
		clusterSkip = "CAPPROF_E2E_APISERVER is not set; run make test, or make e2e-deps and set it to the kube-apiserver it built"
		return
	}
	for _, bin := range []string{apiserver, "/usr/bin/etcd", "/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", "/bin/busybox"} {
		if _, err := os.Stat(bin); err != nil {
			clusterSkip = fmt.Sprintf("%s missing (%v): run make e2e-deps", bin, err)
			return
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
		Dir: dir, APIServer: apiserver, Busybox: "/bin/busybox", Workload: static, Node: testNode, Log: log,
	})
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
func (b *background) stop(t *testing.T) *profile.Profile {
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
func entry(t *testing.T, p *profile.Profile, namespace, name string) profile.Container {
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
	return profile.Container{}
}

// alone wraps one container in a profile, for wantRequired.
func alone(c profile.Container) *profile.Profile {
	return &profile.Profile{Containers: []profile.Container{c}}
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
		if got.Owner == nil || *got.Owner != (profile.Owner{Kind: "Pod", Name: "xwing"}) || got.Kind != profile.RegularContainer ||
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
