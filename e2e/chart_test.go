package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/capprof/capprof/e2e/cluster"
)

// chartPath is capprof's Helm chart.
const chartPath = "../deploy/helm/capprof"

// helm runs the helm that make e2e-deps built ($CAPPROF_E2E_HELM) and
// returns its standard output.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(toolFromEnv(t, "CAPPROF_E2E_HELM"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// kubeVersion is the API server's version, for helm template.
func kubeVersion(t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v.GitVersion
}

// TestChart: the chart passes helm lint --strict, and renders, with its
// defaults and with each value a platform engineer sets (the image by
// digest, agent-only mode, scheduling, resources, the cgroup root, a
// release name of their own), manifests that the real API server accepts
// (a server-side dry run of every object) and that say what the values
// asked. helm install and uninstall it on the harness's cluster.
func TestChart(t *testing.T) {
	helm(t, "lint", "--strict", chartPath)
	c := needCluster(t)
	ctx := context.Background()
	version := kubeVersion(t, c)
	dyn := dynamicClient(t, c)
	for _, tc := range []struct {
		name    string
		release string
		set     []string
		check   func(objs map[string]*unstructured.Unstructured) string
	}{
		{name: "defaults", release: "capprof", check: func(objs map[string]*unstructured.Unstructured) string {
			image, _, _ := unstructured.NestedSlice(objs["DaemonSet/capprof-agent"].Object, "spec", "template", "spec", "containers")
			if got := image[0].(map[string]any)["image"]; got != "ghcr.io/capprof/capprof:0.1.0" {
				return "image " + got.(string)
			}
			if objs["Deployment/capprof-controller"] == nil || objs["ValidatingAdmissionPolicy/capprof-agent-own-node"] == nil {
				return "no controller or no node policy"
			}
			return ""
		}},
		{name: "agent only", release: "capprof", set: []string{"controller.enabled=false"}, check: func(objs map[string]*unstructured.Unstructured) string {
			for key := range objs {
				if strings.Contains(key, "controller") {
					return "agent-only mode has " + key
				}
			}
			if objs["DaemonSet/capprof-agent"] == nil || objs["ClusterRoleBinding/capprof-agent"] == nil {
				return "no agent"
			}
			return ""
		}},
		{name: "values", release: "edge", set: []string{
			"image.repository=registry.example/capprof", "image.digest=sha256:" + strings.Repeat("ab", 32),
			"agent.nodeSelector.pool=edge", "agent.tolerations=null", "agent.priorityClassName=system-node-critical",
			"agent.resources.limits.memory=1Gi", "agent.cgroupRoot=/run/cgroup2", "agent.flush=30s",
			"controller.replicas=2", "imagePullSecrets[0].name=pull",
		}, check: func(objs map[string]*unstructured.Unstructured) string {
			ds := objs["DaemonSet/edge-capprof-agent"]
			if ds == nil {
				return "no DaemonSet edge-capprof-agent"
			}
			spec, _, _ := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
			ctr := spec["containers"].([]any)[0].(map[string]any)
			mount := ctr["volumeMounts"].([]any)[0].(map[string]any)
			hostPath := spec["volumes"].([]any)[0].(map[string]any)["hostPath"].(map[string]any)
			switch {
			case ctr["image"] != "registry.example/capprof@sha256:"+strings.Repeat("ab", 32):
				return "image " + ctr["image"].(string)
			case spec["nodeSelector"].(map[string]any)["pool"] != "edge" || spec["tolerations"] != nil:
				return "scheduling"
			case spec["priorityClassName"] != "system-node-critical":
				return "priority class"
			case mount["mountPath"] != "/run/cgroup2" || hostPath["path"] != "/run/cgroup2":
				return "cgroup root"
			case !slices.Contains(ctr["args"].([]any), any("--flush=30s")):
				return "flush"
			}
			if limit, _, _ := unstructured.NestedString(ctr, "resources", "limits", "memory"); limit != "1Gi" {
				return "memory limit " + limit
			}
			if r, _, _ := unstructured.NestedFieldNoCopy(objs["Deployment/edge-capprof-controller"].Object, "spec", "replicas"); fmt.Sprint(r) != "2" {
				return fmt.Sprintf("controller replicas %v", r)
			}
			user, _, _ := unstructured.NestedSlice(objs["ValidatingAdmissionPolicy/edge-capprof-agent-own-node"].Object, "spec", "matchConditions")
			if !strings.Contains(user[0].(map[string]any)["expression"].(string), "'system:serviceaccount:capprof-chart-values:edge-capprof-agent'") {
				return "node policy's user: " + user[0].(map[string]any)["expression"].(string)
			}
			return ""
		}},
		{name: "events", release: "capprof", set: []string{
			"agent.events.output=file", "agent.events.hostPath=/var/log/pipeline/", "agent.events.fileName=capprof.log",
			"agent.events.filters[0]=type=cap", "agent.events.filters[1]=verdict=denied", "agent.events.maxSizeMB=50",
		}, check: func(objs map[string]*unstructured.Unstructured) string {
			spec, _, _ := unstructured.NestedMap(objs["DaemonSet/capprof-agent"].Object, "spec", "template", "spec")
			ctr := spec["containers"].([]any)[0].(map[string]any)
			args := ctr["args"].([]any)
			for _, want := range []string{"--events=/var/log/pipeline/capprof.log", "--events-max-size-mb=50", "--events-max-backups=5",
				"--events-format=json", "--events-rate-limit=1s", "--events-filter=type=cap", "--events-filter=verdict=denied"} {
				if !slices.Contains(args, any(want)) {
					return fmt.Sprintf("args %v lack %s", args, want)
				}
			}
			mounts := ctr["volumeMounts"].([]any)
			volumes := spec["volumes"].([]any)
			if len(mounts) != 2 || len(volumes) != 2 {
				return fmt.Sprintf("mounts %v, volumes %v: want the cgroup's and the events directory's", mounts, volumes)
			}
			mount, volume := mounts[1].(map[string]any), volumes[1].(map[string]any)["hostPath"].(map[string]any)
			if mount["mountPath"] != "/var/log/pipeline/" || mount["readOnly"] != nil || volume["path"] != "/var/log/pipeline/" || volume["type"] != "DirectoryOrCreate" {
				return fmt.Sprintf("events mount %v on %v: want the directory, writable, made if missing", mount, volume)
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "capprof-chart-" + strings.ReplaceAll(tc.name, " ", "-")
			if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			args := []string{"template", tc.release, chartPath, "--namespace", ns, "--include-crds", "--kube-version", version}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			objs := map[string]*unstructured.Unstructured{}
			for _, obj := range decodeObjects(t, helm(t, args...)) {
				objs[obj.GetKind()+"/"+obj.GetName()] = obj
				gvr, ok := resources[obj.GetKind()]
				if !ok {
					gvr = cluster.CRDResource
				}
				if obj.GetNamespace() != "" && obj.GetNamespace() != ns {
					t.Errorf("%s/%s is in namespace %q, not the release's", obj.GetKind(), obj.GetName(), obj.GetNamespace())
				}
				if _, err := dyn.Resource(gvr).Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, applyOptions([]string{metav1.DryRunAll})); err != nil {
					t.Errorf("server-side dry run of %s/%s: %v", obj.GetKind(), obj.GetName(), err)
				}
			}
			if problem := tc.check(objs); problem != "" {
				t.Errorf("rendered with %v: %s", tc.set, problem)
			}
		})
	}

	// Values the chart cannot honour fail the rendering, saying which.
	for _, tc := range []struct{ set, want string }{
		{"agent.events.output=syslog", `agent.events.output "syslog": use none, file or stdout`},
		{"agent.events.hostPath=logs", `agent.events.hostPath "logs": give an absolute directory on the node`},
		{"agent.events.hostPath=/", `agent.events.hostPath "/": the agent would write there, and it is the node's own`},
		{"agent.events.hostPath=/sys/fs/cgroup", `agent.events.hostPath "/sys/fs/cgroup": the agent would write there`},
		{"agent.events.hostPath=/var/lib/kubelet/", `agent.events.hostPath "/var/lib/kubelet/": the agent would write there`},
		{"agent.events.fileName=../../etc/passwd", `agent.events.fileName "../../etc/passwd": give a file name, without a directory`},
	} {
		cmd := exec.Command(toolFromEnv(t, "CAPPROF_E2E_HELM"), "template", "capprof", chartPath, "--kube-version", version,
			"--set", "agent.events.output=file", "--set", tc.set)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("helm template --set %s: %v\n%s\nwant it refused: %s", tc.set, err, out, tc.want)
		}
	}

	t.Run("install", func(t *testing.T) {
		kubeconfig := "--kubeconfig=" + c.Kubeconfig
		out := helm(t, "install", "chart-test", chartPath, kubeconfig, "--namespace", "capprof-helm", "--create-namespace")
		if !strings.Contains(out, "STATUS: deployed") {
			t.Errorf("helm install:\n%s", out)
		}
		for _, check := range []func() error{
			func() error {
				_, err := c.Client.AppsV1().DaemonSets("capprof-helm").Get(ctx, "chart-test-capprof-agent", metav1.GetOptions{})
				return err
			},
			func() error {
				_, err := c.Client.RbacV1().ClusterRoles().Get(ctx, "chart-test-capprof-controller", metav1.GetOptions{})
				return err
			},
		} {
			if err := check(); err != nil {
				t.Error(err)
			}
		}
		helm(t, "uninstall", "chart-test", kubeconfig, "--namespace", "capprof-helm")
		if _, err := c.Client.AppsV1().DaemonSets("capprof-helm").Get(ctx, "chart-test-capprof-agent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after helm uninstall, the DaemonSet: %v", err)
		}
	})
}
