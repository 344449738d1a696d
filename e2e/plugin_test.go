package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// kubectl runs the kubectl that make e2e-deps built ($CAPPROF_E2E_KUBECTL)
// with PATH holding dir (where plugins are found) and returns its output.
func kubectl(t *testing.T, dir string, args ...string) run {
	t.Helper()
	cmd := exec.Command(toolFromEnv(t, "CAPPROF_E2E_KUBECTL"), args...)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return runCommand(t, cmd)
}

// TestKubectlPlugin: capprof installed as kubectl-capprof on the PATH, as
// krew installs it, is found by kubectl plugin list and run by kubectl as
// `kubectl capprof`: its help says so, kubectl's flags (-n, --kubeconfig)
// pass through, analyze reads the cluster's CapabilityProfiles and record
// creates a CapabilityRecording without --from-cluster or --cluster.
func TestKubectlPlugin(t *testing.T) {
	c := needCluster(t)
	installCRDs(t, c)
	dir := t.TempDir()
	if err := os.Symlink(capprofBin, filepath.Join(dir, "kubectl-capprof")); err != nil {
		t.Fatal(err)
	}
	if r := kubectl(t, dir, "plugin", "list"); r.code != 0 || !strings.Contains(r.stdout, filepath.Join(dir, "kubectl-capprof")) {
		t.Fatalf("kubectl plugin list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := kubectl(t, dir, "capprof", "--help"); r.code != 0 || !strings.Contains(r.stdout, "kubectl capprof [global options] command") {
		t.Errorf("kubectl capprof --help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := kubectl(t, dir, "capprof", "analyze", "--bogus"); r.code != 2 || !strings.Contains(r.stderr, "(see kubectl capprof analyze --help)") {
		t.Errorf("kubectl capprof analyze --bogus: exit %d\n%s", r.code, r.stderr)
	}

	// The profiles of a recording, published as objects in a namespace.
	ns := namespace(t, c, "plugin")
	exported := kubectl(t, dir, "capprof", "export", "../manifest/testdata/shop.json")
	if exported.code != 0 {
		t.Fatalf("kubectl capprof export: exit %d: %s", exported.code, exported.stderr)
	}
	profiles := dynamicClient(t, c).Resource(schema.GroupVersionResource{Group: "capprof.dev", Version: "v1alpha1", Resource: "capabilityprofiles"})
	for _, obj := range decodeObjects(t, exported.stdout) {
		obj.SetNamespace(ns)
		if _, err := profiles.Namespace(ns).Apply(context.Background(), obj.GetName(), obj, applyOptions(nil)); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig := "--kubeconfig=" + c.Kubeconfig
	analyzed := kubectl(t, dir, "capprof", "analyze", "-n", ns, kubeconfig, "cronjob/backup")
	if analyzed.code != 0 || !strings.Contains(analyzed.stdout, "CONTAINER ") || !strings.Contains(analyzed.stdout, "CAP_DAC_READ_SEARCH") {
		t.Errorf("kubectl capprof analyze -n %s cronjob/backup: exit %d\n%s%s", ns, analyzed.code, analyzed.stdout, analyzed.stderr)
	}
	if r := kubectl(t, dir, "capprof", "analyze", "--from-cluster=false", "../manifest/testdata/shop.json"); r.code != 0 || r.stdout == "" {
		t.Errorf("kubectl capprof analyze --from-cluster=false FILE: exit %d\n%s", r.code, r.stderr)
	}

	recorded := kubectl(t, dir, "capprof", "record", "-n", ns, kubeconfig, "deploy/web", "--duration", "1h")
	name, found := strings.CutPrefix(strings.TrimSpace(recorded.stdout), "capabilityrecording.capprof.dev/")
	if recorded.code != 0 || !found {
		t.Fatalf("kubectl capprof record -n %s deploy/web: exit %d\n%s%s", ns, recorded.code, recorded.stdout, recorded.stderr)
	}
	recordings := dynamicClient(t, c).Resource(schema.GroupVersionResource{Group: "capprof.dev", Version: "v1alpha1", Resource: "capabilityrecordings"})
	rec, err := recordings.Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if kind, _, _ := unstructured.NestedString(rec.Object, "spec", "workload", "kind"); kind != "Deployment" {
		t.Errorf("the recording's workload kind %q, want Deployment", kind)
	}
}

// TestKrewInstall: krew installs capprof from deploy/krew/capprof.yaml and
// the linux/amd64 archive that make krew builds (deploy/krew/build.sh), which
// matches the manifest's sha256: the committed manifest is the current
// source's. kubectl then runs the installed plugin.
func TestKrewInstall(t *testing.T) {
	krew := toolFromEnv(t, "CAPPROF_E2E_KREW")
	manifest, err := os.ReadFile("../deploy/krew/capprof.yaml")
	if err != nil {
		t.Fatal(err)
	}
	version := regexp.MustCompile(`(?m)^  version: (v\S+)$`).FindSubmatch(manifest)
	if version == nil {
		t.Fatal("deploy/krew/capprof.yaml names no version")
	}
	out := t.TempDir()
	built := filepath.Join(out, "capprof.yaml")
	if b, err := exec.Command("../deploy/krew/build.sh", string(version[1]), out, built).CombinedOutput(); err != nil {
		t.Fatalf("deploy/krew/build.sh: %v\n%s", err, b)
	}
	if rebuilt, err := os.ReadFile(built); err != nil || string(rebuilt) != string(manifest) {
		t.Fatalf("deploy/krew/capprof.yaml is not what make krew builds from this source (%v): run make krew and commit it", err)
	}
	root := t.TempDir()
	install := exec.Command(krew, "install", "--manifest=../deploy/krew/capprof.yaml", "--archive="+filepath.Join(out, "kubectl-capprof_linux_amd64.tar.gz"))
	install.Env = append(os.Environ(), "KREW_ROOT="+root)
	if b, err := install.CombinedOutput(); err != nil || !strings.Contains(string(b), "Installed plugin: capprof") {
		t.Fatalf("krew install: %v\n%s", err, b)
	}
	if r := kubectl(t, filepath.Join(root, "bin"), "capprof", "--version"); r.code != 0 || strings.TrimSpace(r.stdout) != "kubectl capprof version "+string(version[1]) {
		t.Errorf("kubectl capprof --version: exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
}
