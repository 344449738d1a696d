package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/events"
)

// chartDaemonSet is the agent's DaemonSet of the chart rendered as
// deploy/capprof.yaml is (release capprof in capprof-system), with set.
func chartDaemonSet(t *testing.T, c *cluster.Cluster, set ...string) *appsv1.DaemonSet {
	t.Helper()
	args := []string{"template", "capprof", chartPath, "--namespace", "capprof-system", "--kube-version", kubeVersion(t, c)}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	for _, obj := range decodeObjects(t, helm(t, args...)) {
		if obj.GetKind() == "DaemonSet" {
			var ds appsv1.DaemonSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &ds); err != nil {
				t.Fatal(err)
			}
			return &ds
		}
	}
	t.Fatal("the chart rendered no DaemonSet")
	return nil
}

// ofContainer are the events about a container of a pod.
func ofContainer(evs []events.Event, ns, pod, container string) []events.Event {
	var out []events.Event
	for _, e := range evs {
		if p := e.Process(); p != nil && p.Pod != nil && p.Pod.Namespace == ns && p.Pod.Name == pod && p.Pod.Container != nil && p.Pod.Container.Name == container {
			out = append(out, e)
		}
	}
	return out
}

// execAndBind says what of a bind80 run the events lack: its exec, named
// with its binary and argument on this node, and its NET_BIND_SERVICE
// check, allowed.
func execAndBind(evs []events.Event) string {
	var exec, bind bool
	for _, e := range evs {
		if e.NodeName != installNode {
			return "an event of node " + e.NodeName
		}
		if x := e.ProcessExec; x != nil && x.Process.Binary == "/workload" && x.Process.Arguments == "bind80" {
			exec = true
		}
		if k := e.ProcessKprobe; k != nil && k.Capability != nil && k.Capability.Name == "CAP_NET_BIND_SERVICE" && k.Verdict == "allowed" {
			bind = true
		}
	}
	switch {
	case !exec:
		return "no exec of /workload bind80"
	case !bind:
		return "no allowed CAP_NET_BIND_SERVICE check"
	}
	return ""
}

// TestInstallEvents: with the chart's agent.events, the agent in its pod
// (the rendered DaemonSet's spec, with the same least privilege) exports
// every recording's live events as Tetragon's JSON lines: to a file in a
// node directory, which the kubelet creates and which is the one host path
// the agent writes, or to its log's stdout, apart from its messages on
// stderr. A pod recorded on its node shows in them with its exec and its
// NET_BIND_SERVICE check, named by namespace, pod and container.
func TestInstallEvents(t *testing.T) {
	c := needCluster(t)
	ctx := context.Background()
	var manifest appsv1.DaemonSet
	manifestObject(t, "DaemonSet", "capprof-agent", &manifest)
	importCapprofImage(t, c, manifest.Spec.Template.Spec.Containers[0].Image)
	applyManifest(t, c, func(kind string) bool { return kind != "DaemonSet" && kind != "Deployment" })
	cl := crClient(t, c)

	for _, output := range []string{"file", "stdout"} {
		t.Run(output, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "capprof") // made by the kubelet
			file := filepath.Join(dir, "events.log")
			ds := chartDaemonSet(t, c, "agent.events.output="+output, "agent.events.hostPath="+dir, "agent.events.rateLimit=0s")
			spec := ds.Spec.Template.Spec
			if sc := spec.Containers[0].SecurityContext; sc.Privileged == nil || *sc.Privileged || len(sc.Capabilities.Add) != 3 {
				t.Fatalf("with events the agent's securityContext changed: %+v", sc)
			}
			wantVolumes := map[string]int{"file": 2, "stdout": 1}[output]
			if len(spec.Volumes) != wantVolumes {
				t.Fatalf("volumes %+v, want %d", spec.Volumes, wantVolumes)
			}
			agent := runCapprofPod(t, c, cluster.PodFromTemplate(ds.Namespace, "capprof-agent-events-"+output, ds.Spec.Template,
				metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: "0", Controller: new(true)}), installNode)
			to := map[string]string{"file": file, "stdout": "stdout"}[output]
			containerLogFor(t, c, agent, "live events to "+to, 30*time.Second)

			ns := namespace(t, c, "events-"+output)
			rec := capprof(t, "record", "--cluster", "-n", ns, "--kubeconfig", c.Kubeconfig, "-l", "app=bind", "--duration", "2m")
			if rec.code != 0 {
				t.Fatalf("record --cluster: exit %d: %s", rec.code, rec.stderr)
			}
			recName := strings.TrimPrefix(strings.TrimSpace(rec.stdout), "capabilityrecording.capprof.dev/")
			t.Cleanup(func() {
				recording := &v1alpha1.CapabilityRecording{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: recName}}
				if err := cl.Delete(context.Background(), recording); err != nil {
					t.Errorf("delete the recording: %v", err)
				}
			})
			eventually(t, 30*time.Second, "the agent arms the recording (its first node result)", func() (bool, string) {
				var result v1alpha1.CapabilityNodeResult
				if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.NodeResultName(recName, installNode, nil)}, &result); err != nil {
					return false, err.Error()
				}
				return true, ""
			})

			pod := testPod(ns, "bind", map[string]string{"app": "bind"}, "app")
			pod.Spec.Containers[0].Command = []string{"/workload", "bind80"}
			pod = runCapprofPod(t, c, pod, installNode)
			waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if code, err := c.WaitExit(waitCtx, containerID(t, pod, "app")); err != nil || code != 0 {
				t.Fatalf("bind80 exit %d, %v", code, err)
			}

			read := func() (string, error) {
				if output == "file" {
					data, err := os.ReadFile(file)
					return string(data), err
				}
				return c.ContainerStream(agent, "agent", 0, "stdout")
			}
			// Every line is an event (readEvents): the agent's messages go
			// elsewhere, and it writes whole lines.
			eventually(t, 30*time.Second, "the agent exports the pod's events to "+to, func() (bool, string) {
				lines, err := read()
				if err != nil {
					return false, err.Error()
				}
				problem := execAndBind(ofContainer(readEvents(t, []byte(lines)), ns, pod.Name, "app"))
				return problem == "", problem
			})
			if output == "file" {
				st, err := os.Stat(file)
				if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
					t.Errorf("events file %v, %v: want a regular file that only root reads", st, err)
				}
				return
			}
			stderr, err := c.ContainerStream(agent, "agent", 0, "stderr")
			if err != nil || !strings.Contains(stderr, "capprof: agent of node") || strings.Contains(stderr, "process_exec") {
				t.Errorf("the agent's stderr (%v): want its messages and no event:\n%s", err, stderr)
			}
		})
	}
}
