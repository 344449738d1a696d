package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
)

// manifestTestdata holds the manifests and the profile of their containers
// that the manifest package's golden tests use.
const manifestTestdata = "../manifest/testdata"

// resources maps the test manifests' kinds to their API resources.
var resources = map[string]schema.GroupVersionResource{
	"Pod":         {Version: "v1", Resource: "pods"},
	"Service":     {Version: "v1", Resource: "services"},
	"Deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet": {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":   {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"ReplicaSet":  {Group: "apps", Version: "v1", Resource: "replicasets"},
	"Job":         {Group: "batch", Version: "v1", Resource: "jobs"},
	"CronJob":     {Group: "batch", Version: "v1", Resource: "cronjobs"},
	// capprof's own manifests (deploy/capprof.yaml):
	"Namespace":                        {Version: "v1", Resource: "namespaces"},
	"ServiceAccount":                   {Version: "v1", Resource: "serviceaccounts"},
	"ClusterRole":                      {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding":               {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"Role":                             {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":                      {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	"ValidatingAdmissionPolicy":        {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"},
	"ValidatingAdmissionPolicyBinding": {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"},
}

var dryRun = []string{metav1.DryRunAll}

// TestManifestPatchesAcceptedByAPIServer creates each test manifest's
// objects in a real kube-apiserver, then sends what capprof patch writes
// as the request it is meant for, as a server-side dry run: the patched
// manifest as a server-side apply, each strategic and JSON 6902 patch as a
// PATCH of its object, each kustomize patch as a JSON patch of its target.
// Every request must be accepted, and every patch must give the profiled
// containers the securityContext the patched manifest has.
func TestManifestPatchesAcceptedByAPIServer(t *testing.T) {
	c := needCluster(t)
	client := dynamicClient(t, c)
	ctx := context.Background()
	createNamespace(t, c, "shop", nil)
	createNamespace(t, c, recreateNamespace, nil)
	analysis := shopAnalysis(t)
	for _, name := range []string{"deployment", "statefulset", "daemonset", "cronjob", "job", "replicaset", "pod"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(manifestTestdata, name+".yaml")
			original, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The objects as their owners keep them: applied server-side by
			// one field manager, so applying the patched manifest with it
			// also removes what the advice leaves out (an add list).
			for _, obj := range decodeObjects(t, string(original)) {
				if _, err := client.Resource(resources[obj.GetKind()]).Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, applyOptions(nil)); err != nil {
					t.Fatalf("apply %s/%s from %s: %v", obj.GetKind(), obj.GetName(), path, err)
				}
			}

			byName := map[string]*unstructured.Unstructured{}
			for _, obj := range decodeObjects(t, string(original)) {
				byName[obj.GetKind()+"/"+obj.GetName()] = obj
			}

			// The patched manifest: a server-side apply over the objects,
			// or, for Pods and Jobs, whose pod spec cannot change in place,
			// a create in a fresh namespace (kubectl replace --force).
			want := map[string]string{} // "Kind/name" -> its containers' securityContexts, as JSON
			for _, obj := range decodeObjects(t, readPatch(t, path, analysis, "manifest")) {
				id := obj.GetKind() + "/" + obj.GetName()
				if manifest.PodSpecPath(obj.GetKind()) != nil {
					want[id] = securityContexts(t, obj)
				}
				var got *unstructured.Unstructured
				if recreated(obj.GetKind()) {
					got = createElsewhere(t, client, obj)
				} else {
					got, err = client.Resource(resources[obj.GetKind()]).Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, applyOptions(dryRun))
					if err != nil {
						t.Fatalf("server-side apply (dry run) of patched %s: %v", id, err)
					}
				}
				if want[id] != "" && securityContexts(t, got) != want[id] {
					t.Fatalf("patched %s as stored: %s, want %s", id, securityContexts(t, got), want[id])
				}
			}

			for _, format := range []string{"strategic", "json6902", "json6902-yaml"} {
				patchType := types.StrategicMergePatchType
				if format != "strategic" {
					patchType = types.JSONPatchType
				}
				m, err := manifest.Load(path)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				notes, err := manifest.Patch(&buf, m, analysis, format)
				if err != nil {
					if name == "pod" || name == "job" {
						continue // nothing to patch in place: said, and tested, in the manifest package
					}
					t.Fatal(err)
				}
				// YAML documents headed by their kubectl command; for
				// json6902, a JSON array a line, whose command a note gives.
				docs := strings.Split(buf.String(), "---\n")
				if format == "json6902" {
					docs = nil
					for i, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
						prefix := fmt.Sprintf("stdout line %d: ", i+1)
						for _, n := range notes {
							if _, cmd, ok := strings.Cut(n, prefix); ok {
								docs = append(docs, "# "+cmd+"\n"+line)
							}
						}
					}
					if len(docs) != strings.Count(buf.String(), "\n") {
						t.Fatalf("json6902: %d lines named in the notes %q, want each of\n%s", len(docs), notes, buf.String())
					}
				}
				for _, doc := range docs {
					kind, objName, ns := kubectlTarget(t, doc)
					body, err := yaml.YAMLToJSON([]byte(doc))
					if err != nil {
						t.Fatal(err)
					}
					patched, err := client.Resource(resources[kind]).Namespace(ns).Patch(ctx, objName, patchType, body, metav1.PatchOptions{DryRun: dryRun})
					if err != nil {
						t.Fatalf("%s patch of %s/%s (dry run): %v\n%s", format, kind, objName, err, body)
					}
					if got := securityContexts(t, patched); got != want[kind+"/"+objName] {
						t.Fatalf("%s patch of %s/%s gives %s, want the patched manifest's %s", format, kind, objName, got, want[kind+"/"+objName])
					}
				}
			}

			// kustomize applies its patches to the manifest's objects at
			// build time; the built objects are then created.
			var kustomization struct {
				Patches []struct {
					Target struct{ Kind, Name, Namespace string }
					Patch  string
				}
			}
			if err := yaml.Unmarshal([]byte(readPatch(t, path, analysis, "kustomize")), &kustomization); err != nil {
				t.Fatal(err)
			}
			if len(kustomization.Patches) == 0 {
				t.Fatal("kustomize: no patches")
			}
			for _, p := range kustomization.Patches {
				id := p.Target.Kind + "/" + p.Target.Name
				target := byName[id]
				if target == nil || p.Target.Namespace != target.GetNamespace() {
					t.Fatalf("kustomize target %+v is not an object of the manifest", p.Target)
				}
				ops, err := yaml.YAMLToJSON([]byte(p.Patch))
				if err != nil {
					t.Fatal(err)
				}
				built := applyJSONPatch(t, target, ops)
				if got := securityContexts(t, createElsewhere(t, client, built)); got != want[id] {
					t.Fatalf("kustomize patch of %s gives %s, want the patched manifest's %s", id, got, want[id])
				}
			}
		})
	}
}

// applyOptions are a server-side apply by the manifests' one field manager.
func applyOptions(dryRun []string) metav1.ApplyOptions {
	return metav1.ApplyOptions{DryRun: dryRun, FieldManager: "capprof-e2e"}
}

// recreateNamespace receives the objects a test creates rather than updates.
const recreateNamespace = "shop-recreated"

func recreated(kind string) bool { return kind == "Pod" || kind == "Job" }

// createElsewhere creates obj in recreateNamespace as a dry run.
func createElsewhere(t *testing.T, client dynamic.Interface, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	obj = obj.DeepCopy()
	obj.SetNamespace(recreateNamespace)
	created, err := client.Resource(resources[obj.GetKind()]).Namespace(recreateNamespace).Create(context.Background(), obj, metav1.CreateOptions{DryRun: dryRun})
	if err != nil {
		t.Fatalf("create %s/%s (dry run): %v", obj.GetKind(), obj.GetName(), err)
	}
	return created
}

// applyJSONPatch applies an RFC 6902 patch to an object, as kustomize does.
func applyJSONPatch(t *testing.T, obj *unstructured.Unstructured, ops []byte) *unstructured.Unstructured {
	t.Helper()
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := obj.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if doc, err = patch.Apply(doc); err != nil {
		t.Fatalf("apply JSON patch to %s/%s: %v", obj.GetKind(), obj.GetName(), err)
	}
	out := &unstructured.Unstructured{}
	if err := out.UnmarshalJSON(doc); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPodSecurityLevelsAdmitted: advice capprof reports as restricted is
// admitted in a namespace enforcing the restricted Pod Security Standard,
// and advice it reports as less is rejected there; the same holds for each
// patched workload's whole pod.
func TestPodSecurityLevelsAdmitted(t *testing.T) {
	c := needCluster(t)
	ns := "restricted-pss"
	createNamespace(t, c, ns, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	analysis := shopAnalysis(t)
	admitted := func(pod *corev1.Pod) error {
		pod.Namespace = ns
		_, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{DryRun: dryRun})
		if err != nil && !apierrors.IsForbidden(err) {
			t.Fatalf("create pod %s (dry run): %v", pod.Name, err)
		}
		return err
	}
	levels := map[string]int{}
	for _, ca := range analysis.Containers {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "advice-" + ca.Name}}
		ctr := corev1.Container{Name: ca.Name, Image: cluster.ImageName, SecurityContext: ca.SecurityContext}
		if ca.Kind == v1alpha1.InitContainer {
			pod.Spec.InitContainers = []corev1.Container{ctr}
			ctr.Name += "-main"
			ctr.SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				AllowPrivilegeEscalation: new(false), RunAsNonRoot: new(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
		}
		pod.Spec.Containers = []corev1.Container{ctr}
		err := admitted(pod)
		levels[ca.PodSecurity.Level]++
		if (err == nil) != (ca.PodSecurity.Level == profile.Restricted) {
			t.Errorf("%s: advice reported %s, admission in a restricted namespace: %v", ca.Key(), ca.PodSecurity.Level, err)
		}
	}
	for _, name := range []string{"deployment", "statefulset", "daemonset", "cronjob", "job", "replicaset", "pod"} {
		path := filepath.Join(manifestTestdata, name+".yaml")
		m, err := manifest.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		comparison, err := manifest.Compare(m, analysis, "containerd")
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range decodeObjects(t, readPatch(t, path, analysis, "manifest")) {
			specPath := manifest.PodSpecPath(obj.GetKind())
			if specPath == nil {
				continue
			}
			var pod corev1.Pod
			spec, _, _ := unstructured.NestedMap(obj.Object, specPath...)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec, &pod.Spec); err != nil {
				t.Fatal(err)
			}
			pod.Name = "patched-" + strings.ToLower(obj.GetKind()) + "-" + obj.GetName()
			err := admitted(&pod)
			var level string
			for _, w := range comparison.Workloads {
				if w.Workload == obj.GetKind()+"/"+obj.GetName() {
					level = w.PodSecurityAdvised.Level
				}
			}
			levels["workload "+level]++
			if (err == nil) != (level == profile.Restricted) {
				t.Errorf("%s/%s: patched pod reported %s, admission in a restricted namespace: %v", obj.GetKind(), obj.GetName(), level, err)
			}
		}
	}
	// The fixtures must exercise both outcomes, or the test proves nothing.
	for _, l := range []string{profile.Restricted, profile.Baseline, profile.Privileged, "workload " + profile.Restricted, "workload " + profile.Baseline} {
		if levels[l] == 0 {
			t.Errorf("no case reported %s (%v)", l, levels)
		}
	}
}

func shopAnalysis(t *testing.T) *profile.Analysis {
	t.Helper()
	p, err := profile.Load(filepath.Join(manifestTestdata, "shop.json"))
	if err != nil {
		t.Fatal(err)
	}
	a := profile.Analyze([]profile.Input{{Source: "shop.json", Profile: p}})
	return &a
}

func dynamicClient(t *testing.T, c *cluster.Cluster) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func createNamespace(t *testing.T, c *cluster.Cluster, name string, labels map[string]string) {
	t.Helper()
	_, err := c.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// readPatch runs capprof patch's code on a test manifest.
func readPatch(t *testing.T, path string, a *profile.Analysis, format string) string {
	t.Helper()
	m, err := manifest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := manifest.Patch(&buf, m, a, format); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// decodeObjects decodes the documents of a manifest.
func decodeObjects(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	dec := k8syaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// securityContexts is each container's securityContext in a workload, as
// JSON (numbers compare alike whichever decoder read them).
func securityContexts(t *testing.T, obj *unstructured.Unstructured) string {
	t.Helper()
	out := map[string]any{}
	for _, list := range []string{"initContainers", "containers"} {
		containers, _, err := unstructured.NestedSlice(obj.Object, append(manifest.PodSpecPath(obj.GetKind()), list)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range containers {
			ctr := c.(map[string]any)
			out[ctr["name"].(string)] = ctr["securityContext"]
		}
	}
	data, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// kubectlTarget reads the object a patch document's kubectl comment names.
func kubectlTarget(t *testing.T, doc string) (kind, name, namespace string) {
	t.Helper()
	first, _, _ := strings.Cut(doc, "\n")
	f := strings.Fields(first)
	if len(f) < 8 || f[1] != "kubectl" || f[2] != "patch" || f[5] != "-n" {
		t.Fatalf("patch document does not start with its kubectl command: %q", first)
	}
	for k := range resources {
		if strings.ToLower(k) == f[3] {
			kind = k
		}
	}
	return kind, f[4], f[6]
}
