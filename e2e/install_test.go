package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
)

// manifestPath is capprof's install manifest, the chart rendered with its
// defaults (make manifests).
const manifestPath = "../deploy/capprof.yaml"

// installNode is the node the install tests run capprof's own pods on:
// no other test's agent records there.
const installNode = "node-install"

// manifestObjects are the objects of deploy/capprof.yaml.
func manifestObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	return decodeObjects(t, string(data))
}

// manifestObject is the one object of deploy/capprof.yaml of that kind and
// name, as a typed object.
func manifestObject(t *testing.T, kind, name string, into any) {
	t.Helper()
	for _, obj := range manifestObjects(t) {
		if obj.GetKind() == kind && obj.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s has no %s %s", manifestPath, kind, name)
}

// applyManifest applies deploy/capprof.yaml's objects that keep says to
// keep, server-side, as `kubectl apply --server-side` does: first all as a
// dry run, then for real. Its namespace is created first, as a dry run of
// the objects in it needs it.
func applyManifest(t *testing.T, c *cluster.Cluster, keep func(kind string) bool) {
	t.Helper()
	ctx := context.Background()
	dyn := dynamicClient(t, c)
	var objs []*unstructured.Unstructured
	for _, obj := range manifestObjects(t) {
		if !keep(obj.GetKind()) {
			continue
		}
		if _, ok := resources[obj.GetKind()]; !ok && obj.GetKind() != "CustomResourceDefinition" {
			t.Fatalf("%s: kind %s unknown to the test", manifestPath, obj.GetKind())
		}
		objs = append(objs, obj)
	}
	apply := func(obj *unstructured.Unstructured, dryRun []string) error {
		gvr, ok := resources[obj.GetKind()]
		if !ok {
			gvr = cluster.CRDResource
		}
		_, err := dyn.Resource(gvr).Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, applyOptions(dryRun))
		return err
	}
	for _, obj := range objs {
		if obj.GetKind() == "Namespace" {
			if err := apply(obj, nil); err != nil {
				t.Fatalf("apply namespace %s: %v", obj.GetName(), err)
			}
		}
	}
	for _, dryRun := range [][]string{{metav1.DryRunAll}, nil} {
		for _, obj := range objs {
			if err := apply(obj, dryRun); err != nil {
				t.Fatalf("apply %s %s from %s (dry run %v): %v", obj.GetKind(), obj.GetName(), manifestPath, dryRun != nil, err)
			}
		}
	}
	if keep("CustomResourceDefinition") {
		installCRDs(t, c) // waits until they are served
	}
}

// installClusterRBAC applies what deploy/capprof.yaml holds but the agent's
// DaemonSet and the controller's Deployment, for tests that run them as
// processes: the namespace capprof-system, the service accounts with their
// ClusterRoles, the users' roles, and the policy that holds agents to
// their own node.
func installClusterRBAC(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	applyManifest(t, c, func(kind string) bool {
		return kind != "DaemonSet" && kind != "Deployment" && kind != "CustomResourceDefinition"
	})
}

var (
	imageOnce sync.Once
	imageErr  error
)

// importCapprofImage builds capprof's image as make image does (a static
// binary, deploy/image) under the reference deploy/capprof.yaml names, and
// imports it into the harness's containerd, once.
func importCapprofImage(t *testing.T, c *cluster.Cluster, ref string) {
	t.Helper()
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "capprof-image-")
		if err != nil {
			imageErr = err
			return
		}
		defer os.RemoveAll(dir)
		static, archive := filepath.Join(dir, "capprof"), filepath.Join(dir, "image.tar")
		build := exec.Command("go", "build", "-trimpath", "-o", static, "../cmd/capprof")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			imageErr = &buildError{"static capprof", err, out}
			return
		}
		if out, err := exec.Command("go", "run", "../deploy/image", "-binary", static, "-ref", ref, "-o", archive).CombinedOutput(); err != nil {
			imageErr = &buildError{"image", err, out}
			return
		}
		imageErr = c.ImportImage(context.Background(), archive)
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
}

type buildError struct {
	what string
	err  error
	out  []byte
}

func (e *buildError) Error() string {
	return "build " + e.what + ": " + e.err.Error() + "\n" + string(e.out)
}

// runCapprofPod runs a pod of capprof's image and removes it when the test
// ends; it waits for the container to log want, or to exit.
func runCapprofPod(t *testing.T, c *cluster.Cluster, pod *corev1.Pod, node string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p, err := c.RunPod(runCtx, pod, cluster.OnNode(node))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.DeletePod(context.Background(), p); err != nil {
			t.Errorf("delete pod %s: %v", p.Name, err)
		}
	})
	return p
}

// containerLogFor waits up to within for a pod's container to have logged
// want, or to have exited, and returns its log.
func containerLogFor(t *testing.T, c *cluster.Cluster, pod *corev1.Pod, want string, within time.Duration) string {
	t.Helper()
	var log string
	eventually(t, within, "container "+pod.Spec.Containers[0].Name+" of pod "+pod.Name+" logs "+want, func() (bool, string) {
		var err error
		if log, err = c.ContainerLog(pod, pod.Spec.Containers[0].Name, 0); err != nil {
			return false, err.Error()
		}
		return strings.Contains(log, want), log
	})
	return log
}

// TestInstall: capprof installed as a platform engineer installs it. The
// image make image builds is imported into the node's containerd;
// deploy/capprof.yaml is applied as a server-side dry run on the real API
// server, then for real; the harness plays the DaemonSet controller and
// the kubelet, running the agent from the DaemonSet's own pod spec (its
// securityContext without privileged, three capabilities, the cgroup
// mount, its service account's token) and the controller from the Deployment's (non-root,
// no capabilities). A workload recorded with record --cluster, whose pod
// binds port 80 at its first instruction, gets the profile that says so.
func TestInstall(t *testing.T) {
	c := needCluster(t)
	ctx := context.Background()
	var ds appsv1.DaemonSet
	manifestObject(t, "DaemonSet", "capprof-agent", &ds)
	var deploy appsv1.Deployment
	manifestObject(t, "Deployment", "capprof-controller", &deploy)
	importCapprofImage(t, c, ds.Spec.Template.Spec.Containers[0].Image)
	applyManifest(t, c, func(string) bool { return true })

	agent := runCapprofPod(t, c, cluster.PodFromTemplate(ds.Namespace, "capprof-agent-"+installNode, ds.Spec.Template,
		metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: "0", Controller: new(true)}), installNode)
	controller := runCapprofPod(t, c, cluster.PodFromTemplate(deploy.Namespace, "capprof-controller-install", deploy.Spec.Template,
		metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: deploy.Name + "-install", UID: "0", Controller: new(true)}), installNode)
	containerLogFor(t, c, agent, `capprof: agent of node "`+installNode+`" (probe `, 30*time.Second)
	containerLogFor(t, c, controller, "capprof: controller", 30*time.Second)

	ns := namespace(t, c, "install")
	rs, hash := deployment(t, c, ns)
	rec := capprof(t, "record", "--cluster", "-n", ns, "--kubeconfig", c.Kubeconfig, "deploy/web", "--duration", "30s", "--startup", "1s")
	if rec.code != 0 {
		t.Fatalf("record --cluster: exit %d: %s", rec.code, rec.stderr)
	}
	recName := strings.TrimPrefix(strings.TrimSpace(rec.stdout), "capabilityrecording.capprof.dev/")
	cl := crClient(t, c)
	var recording v1alpha1.CapabilityRecording
	eventually(t, 30*time.Second, "the agent in its pod arms the recording", func() (bool, string) {
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: recName}, &recording); err != nil {
			return false, err.Error()
		}
		return recording.Status.NodeCount == 1, string(recording.Status.Phase)
	})

	pod := testPod(ns, "web-"+hash+"-install", map[string]string{"app": "web", "pod-template-hash": hash}, "server")
	pod.OwnerReferences = []metav1.OwnerReference{rs}
	pod.Spec.Containers[0].Command = []string{"/bin/sh", "-c", "/workload bind80; exec /bin/sleep 100000"}
	runCapprofPod(t, c, pod, installNode)

	var prof v1alpha1.CapabilityProfile
	eventually(t, 30*time.Second, "the profile says what the pod's start needs", func() (bool, string) {
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "deployment-web"}, &prof); err != nil {
			return false, err.Error()
		}
		return prof.Status.Required == "server=NET_BIND_SERVICE", prof.Status.Required + " " + prof.Status.Coverage
	})
	if prof.Status.Coverage != "1/1 from start" {
		t.Errorf("coverage %q: want the pod recorded from its first instruction", prof.Status.Coverage)
	}
	log, err := c.ContainerLog(agent, "agent", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, "recording container server of pod "+ns+"/"+pod.Name) || strings.Contains(log, "warning") {
		t.Errorf("agent's log:\n%s", log)
	}
}

// TestInstallLeastPrivilege: the agent's DaemonSet gives it nothing it can
// do without. It is not privileged, drops ALL, runs without hostPID,
// hostNetwork or the runtime's socket (TestInstall shows it records so).
// Its pod spec run with any one of the capabilities it adds taken away, or
// without its one host path, the cgroup filesystem, the agent exits at its
// start, saying what it lacks.
func TestInstallLeastPrivilege(t *testing.T) {
	c := needCluster(t)
	var ds appsv1.DaemonSet
	manifestObject(t, "DaemonSet", "capprof-agent", &ds)
	importCapprofImage(t, c, ds.Spec.Template.Spec.Containers[0].Image)
	applyManifest(t, c, func(kind string) bool { return kind != "DaemonSet" && kind != "Deployment" })
	spec := ds.Spec.Template.Spec
	sc := spec.Containers[0].SecurityContext
	if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Add) == 0 || sc.Privileged == nil || *sc.Privileged ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Fatalf("the agent's securityContext: %+v; want not privileged, no privilege escalation, a read-only root, drop ALL, add some", sc)
	}
	if spec.HostPID || spec.HostNetwork || spec.HostIPC || len(spec.Volumes) != 1 || spec.Volumes[0].HostPath == nil {
		t.Fatalf("the agent's pod: hostPID %v, hostNetwork %v, hostIPC %v, volumes %+v; want one host path alone", spec.HostPID, spec.HostNetwork, spec.HostIPC, spec.Volumes)
	}
	type variant struct {
		name, want string
		change     func(*corev1.PodSpec)
	}
	var variants []variant
	for _, taken := range sc.Capabilities.Add {
		variants = append(variants, variant{"without " + string(taken), "capprof lacks " + string(taken), func(spec *corev1.PodSpec) {
			caps := spec.Containers[0].SecurityContext.Capabilities
			caps.Add = slices.DeleteFunc(slices.Clone(caps.Add), func(c corev1.Capability) bool { return c == taken })
		}})
	}
	variants = append(variants, variant{"without the cgroup mount", "mount the node's /sys/fs/cgroup there", func(spec *corev1.PodSpec) {
		spec.Volumes, spec.Containers[0].VolumeMounts = nil, nil
	}})
	for i, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			template := ds.Spec.Template.DeepCopy()
			v.change(&template.Spec)
			pod := runCapprofPod(t, c, cluster.PodFromTemplate(ds.Namespace, fmt.Sprintf("capprof-agent-lacking-%d", i), *template,
				metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: "0", Controller: new(true)}), installNode)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			code, err := c.WaitExit(ctx, containerID(t, pod, "agent"))
			if err != nil {
				t.Fatal(err)
			}
			log, err := c.ContainerLog(pod, "agent", 0)
			if err != nil {
				t.Fatal(err)
			}
			if code == 0 || !strings.Contains(log, "the agent cannot record on node") || !strings.Contains(log, v.want) {
				t.Errorf("exit %d, log:\n%s", code, log)
			}
			t.Logf("exit %d: %s", code, strings.TrimSpace(log))
		})
	}
}
