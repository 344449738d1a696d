package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/verify"
)

// verifyCase is a corpus workload for capprof verify: what the recording
// alone advises, and what verification leaves.
type verifyCase struct {
	name string
	// fixture returns the shell command that makes the workload's fixtures
	// afresh (verify's --setup; empty: none) and the program's arguments.
	fixture func(t *testing.T, dir string) (setup string, args []string)
	// observed is the advice from the recording; verified, after verify.
	observed, verified []string
	// viaProfile records first and verifies that profile in place.
	viaProfile bool
}

// verifyCorpus: three workloads granted a capability they do not need (the
// denial is answered without an error, or another capability does the
// job), and workloads whose every capability is needed.
var verifyCorpus = []verifyCase{
	{name: "setgid_bit_unchecked", fixture: fileFixture(0, foreignID, 0o755), observed: []string{"FSETID"}, verified: []string{}},
	{name: "kill_group", fixture: mixedProcessGroup, observed: []string{"KILL"}, verified: []string{}, viaProfile: true},
	{name: "dac_write_read", fixture: fileFixture(foreignID, foreignID, 0o600),
		observed: []string{"DAC_OVERRIDE", "DAC_READ_SEARCH"}, verified: []string{"DAC_OVERRIDE"}},
	{name: "bind_low_port", observed: []string{"NET_BIND_SERVICE"}, verified: []string{"NET_BIND_SERVICE"}},
	{name: "drop_ids", observed: []string{"SETGID", "SETUID"}, verified: []string{"SETGID", "SETUID"}},
	{name: "setgid_bit", fixture: fileFixture(0, foreignID, 0o755), observed: []string{"FSETID"}, verified: []string{"FSETID"}},
	{name: "dac_read", fixture: fileFixture(foreignID, foreignID, 0o600), observed: []string{"DAC_READ_SEARCH"}, verified: []string{"DAC_READ_SEARCH"}},
	{name: "chown", fixture: fileFixture(0, 0, 0o644), observed: []string{"CHOWN"}, verified: []string{"CHOWN"}},
	{name: "mmap_storm", observed: []string{}, verified: []string{}},
}

// fileFixture makes DIR/file, owned uid:gid with this mode, before every run.
func fileFixture(uid, gid int, mode os.FileMode) func(*testing.T, string) (string, []string) {
	return func(_ *testing.T, dir string) (string, []string) {
		f := filepath.Join(dir, "file")
		return fmt.Sprintf("printf 'data\\n' > %s && chown %d:%d %s && chmod %o %s", f, uid, gid, f, mode, f), []string{f}
	}
}

// mixedProcessGroup starts a process group of a root process and one of the
// foreign user, outside any recording, and returns its id.
func mixedProcessGroup(t *testing.T, _ string) (string, []string) {
	t.Helper()
	leader := exec.Command("sleep", "600")
	leader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leader.Process.Kill(); leader.Wait() })
	pgid := leader.Process.Pid
	member := exec.Command("setpriv", "--reuid", strconv.Itoa(foreignID), "--regid", strconv.Itoa(foreignID), "--clear-groups", "sleep", "600")
	member.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Process.Kill(); member.Wait() })
	waitForUID(t, member.Process.Pid, foreignID)
	return "", []string{strconv.Itoa(pgid)}
}

// waitForUID waits until the process runs as uid.
func waitForUID(t *testing.T, pid, uid int) {
	t.Helper()
	want := fmt.Sprintf("Uid:\t%d\t", uid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err == nil && strings.Contains(string(status), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never ran as uid %d", pid, uid)
		}
	}
}

// TestVerifyCorpus runs capprof verify on corpus workloads: the capabilities
// granted but not needed are found removable, the others needed, and the
// verified advice is sufficient and minimal by the accuracy corpus's own
// setpriv check.
func TestVerifyCorpus(t *testing.T) {
	requireRecording(t)
	bins := buildCorpus(t)
	for _, tc := range verifyCorpus {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			setup, args := "", []string(nil)
			if tc.fixture != nil {
				setup, args = tc.fixture(t, dir)
			}
			command := append([]string{filepath.Join(bins, tc.name)}, args...)
			out := filepath.Join(dir, "profile.json")
			flags := []string{"verify"}
			if setup != "" {
				flags = append(flags, "--setup", setup)
			}
			if tc.viaProfile {
				runSetup(t, setup)
				recordArgs := append([]string{"record", "--progress", "0", "-o", out, "--"}, command...)
				if r := capprof(t, recordArgs...); r.code != 0 {
					t.Fatalf("capprof record: exit %d: %s", r.code, r.stderr)
				}
				flags = append(flags, out)
			}
			r := capprof(t, append(append(flags, "-o", out, "--"), command...)...)
			if r.code != 0 {
				t.Fatalf("capprof verify: exit %d:\n%s", r.code, r.stderr)
			}
			p, err := profile.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			c := p.Containers[0]
			observed := c
			observed.Verification = nil
			if got := addList(profile.Analyze([]profile.Input{{Source: "observed", Profile: alone(observed)}}).Containers[0]); !slices.Equal(got, tc.observed) {
				t.Errorf("observed advice %v, want %v", got, tc.observed)
			}
			analysis := profile.Analyze([]profile.Input{{Source: out, Profile: p}}).Containers[0]
			verified := addList(analysis)
			if !slices.Equal(verified, tc.verified) {
				t.Errorf("verified advice %v, want %v\n%s", verified, tc.verified, r.stderr)
			}
			v := c.Verification
			if v == nil || v.Advised.Passed != 1 || len(v.Capabilities) != len(tc.observed) {
				t.Fatalf("verification %+v: want the advised set passed once and each of %v tried", v, tc.observed)
			}
			for _, vc := range v.Capabilities {
				want := v1alpha1.VerifiedRemovable
				if slices.Contains(tc.verified, vc.Capability.KubernetesName()) {
					want = v1alpha1.VerifiedNeeded
				}
				if vc.Verified != want {
					t.Errorf("%s verified %s, want %s", vc.Capability, vc.Verified, want)
				}
				if want == v1alpha1.VerifiedNeeded && (vc.FailedRun == nil || !slices.ContainsFunc(vc.FailedRun.Denials, func(d v1alpha1.DeniedChecks) bool { return d.Capability == vc.Capability })) {
					t.Errorf("%s needed without the evidence of its denial: %+v", vc.Capability, vc.FailedRun)
				}
			}
			want := fmt.Sprintf("%d times", 1+len(tc.observed))
			if len(tc.observed) == 0 {
				want = "once"
			}
			if !strings.Contains(r.stderr, want) {
				t.Errorf("verify did not say it runs the command %s before starting:\n%s", want, r.stderr)
			}
			runSetup(t, setup)
			if err := runBounded(verified, command...); err != nil {
				t.Errorf("not sufficient: fails with exactly %v: %v", verified, err)
			}
			for _, c := range verified {
				runSetup(t, setup)
				if err := runBounded(slices.DeleteFunc(slices.Clone(verified), func(x string) bool { return x == c }), command...); err == nil {
					t.Errorf("not minimal: works without %s", c)
				}
			}
		})
	}
}

// runSetup runs a fixture's shell command, as verify's --setup does.
func runSetup(t *testing.T, setup string) {
	t.Helper()
	if setup == "" {
		return
	}
	if out, err := exec.Command("/bin/sh", "-c", setup).CombinedOutput(); err != nil {
		t.Fatalf("setup %q: %v: %s", setup, err, out)
	}
}

// TestVerifyFlakyCommand: a command that fails one run in five whatever its
// capabilities, verified with --runs 5, is not misjudged: the capability it
// needs is needed, the one it does not is removable, and the advised set's
// failure is reported as such.
func TestVerifyFlakyCommand(t *testing.T) {
	requireRecording(t)
	bins := buildCorpus(t)
	dir := t.TempDir()
	setup, args := fileFixture(0, foreignID, 0o755)(t, dir)
	script := filepath.Join(dir, "flaky.sh")
	// Runs 5, 10, 15, ... fail before doing anything; the recording is run 1.
	body := fmt.Sprintf(`#!/bin/sh
n=$(cat %[1]s/count 2>/dev/null || echo 0)
echo $((n + 1)) > %[1]s/count
if [ $((n %% 5)) -eq 4 ]; then echo "flaky failure" >&2; exit 1; fi
%[2]s/bind_low_port && %[2]s/setgid_bit_unchecked %[3]s
`, dir, bins, args[0])
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "profile.json")
	r := capprof(t, "verify", "--runs", "5", "--setup", setup, "-o", out, "--", script)
	if r.code != 0 {
		t.Fatalf("capprof verify: exit %d:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "15 times") {
		t.Errorf("verify did not say it runs the command 5 × (1 + 2) = 15 times:\n%s", r.stderr)
	}
	p, err := profile.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	v := p.Containers[0].Verification
	if v == nil || v.RunsPerSet != 5 || v.Advised.Passed != 4 || v.Advised.Failed != 1 || len(v.Capabilities) != 2 {
		t.Fatalf("verification %+v: want 5 runs per set, the advised set passed 4 of 5, two capabilities tried\n%s", v, r.stderr)
	}
	fsetid, bind := v.Capabilities[0], v.Capabilities[1]
	if fsetid.Capability.KubernetesName() != "FSETID" || fsetid.Verified != v1alpha1.VerifiedRemovable || fsetid.Passed != 4 || fsetid.Failed != 1 {
		t.Errorf("FSETID: %+v, want removable, passed 4 of 5", fsetid)
	}
	if bind.Capability.KubernetesName() != "NET_BIND_SERVICE" || bind.Verified != v1alpha1.VerifiedNeeded || bind.Passed != 0 || bind.FailedRun == nil || bind.FailedRun.ExitStatus != 1 {
		t.Errorf("NET_BIND_SERVICE: %+v, want needed, with its failed run", bind)
	}
	analysis := profile.Analyze([]profile.Input{{Source: out, Profile: p}}).Containers[0]
	if got := addList(analysis); !slices.Equal(got, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("verified advice %v, want [NET_BIND_SERVICE]", got)
	}
	if !slices.ContainsFunc(analysis.Warnings, func(w string) bool { return strings.Contains(w, "failed 1 of 5 runs (a flaky command?)") }) {
		t.Errorf("no warning of the advised set's flaky run: %q", analysis.Warnings)
	}
	table := capprof(t, "analyze", out)
	if !strings.Contains(table.stdout, "removable") || !strings.Contains(table.stdout, "verified: "+script+", 5 runs per set") {
		t.Errorf("analyze does not show the verification:\n%s", table.stdout)
	}
}

// TestVerifyHangingRun: a command that hangs without a capability, as a
// server whose workers cannot start does, is stopped after the limit for
// runs without --duration (10 times the advised runs, at least 30s), and
// fails: the capability, denied in it, is needed. Verification ends.
func TestVerifyHangingRun(t *testing.T) {
	requireRecording(t)
	bins := buildCorpus(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "hangs.sh")
	body := fmt.Sprintf("#!/bin/sh\n%s/bind_low_port || exec %s sleep\n", bins, workloadBin)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "profile.json")
	start := time.Now()
	r := capprof(t, "verify", "-o", out, "--", script)
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("capprof verify: exit %d:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "a run without a capability is stopped after 30s") || !strings.Contains(r.stderr, "(stopped after 30s: it hung)") {
		t.Errorf("verify did not say it stops, and stopped, the hanging run after 30s:\n%s", r.stderr)
	}
	p, err := profile.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	v := p.Containers[0].Verification
	if v == nil || len(v.Capabilities) != 1 || v.Capabilities[0].Capability.KubernetesName() != "NET_BIND_SERVICE" ||
		v.Capabilities[0].Verified != v1alpha1.VerifiedNeeded {
		t.Fatalf("verification %+v: want NET_BIND_SERVICE needed\n%s", v, r.stderr)
	}
	if took > 2*time.Minute {
		t.Errorf("verify took %s: the hanging run was not stopped at 30s", took)
	}
}

// TestVerifyInterrupted: Ctrl-C during verification stops the run under way
// and saves nothing.
func TestVerifyInterrupted(t *testing.T) {
	requireRecording(t)
	out := filepath.Join(t.TempDir(), "profile.json")
	cmd := exec.Command(capprofBin, "verify", "-o", out, "--", workloadBin, "sleep")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var said []string
	for lines.Scan() && lines.Text() != "ready" { // the command's output goes to capprof's stderr
		said = append(said, lines.Text())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		said = append(said, lines.Text())
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("capprof verify after SIGINT: %v, want exit code 130:\n%s", err, strings.Join(said, "\n"))
	}
	if !strings.Contains(strings.Join(said, "\n"), "received SIGINT while verifying: quit without saving the profile") {
		t.Errorf("capprof did not say it quit:\n%s", strings.Join(said, "\n"))
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a profile was saved after SIGINT: %v", err)
	}
}

// TestVerifyBadInput: verify's mistakes get one line and exit 125 before
// anything runs.
func TestVerifyBadInput(t *testing.T) {
	dir := t.TempDir()
	twoContainers := filepath.Join(dir, "two.json")
	p := &v1alpha1.Profile{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Containers: []v1alpha1.Container{
		{Identity: v1alpha1.Identity{Name: "a"}, Capabilities: []v1alpha1.CapabilityChecks{}, Execs: []v1alpha1.Exec{}, CredentialChanges: []v1alpha1.CredentialChange{}, UIDs: []uint32{}},
		{Identity: v1alpha1.Identity{Name: "b"}, Capabilities: []v1alpha1.CapabilityChecks{}, Execs: []v1alpha1.Exec{}, CredentialChanges: []v1alpha1.CredentialChange{}, UIDs: []uint32{}},
	}}
	if err := profile.Save(p, twoContainers); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{"verify", "-o", filepath.Join(dir, "x.json")}, "no command to verify with: give -- COMMAND"},
		{"runs zero", []string{"verify", "--runs", "0", "-o", filepath.Join(dir, "x.json"), "--", "true"}, "--runs 0: must be at least 1"},
		{"two profiles", []string{"verify", "a.json", "b.json", "-o", filepath.Join(dir, "x.json"), "--", "true"}, "one profile to verify, got 2"},
		{"missing profile", []string{"verify", filepath.Join(dir, "none.json"), "-o", filepath.Join(dir, "x.json"), "--", "true"}, "read profile:"},
		{"output in a missing directory", []string{"verify", "-o", filepath.Join(dir, "no", "x.json"), "--", "true"}, "-o"},
		{"container not named", []string{"verify", twoContainers, "--name", "c", "-o", filepath.Join(dir, "x.json"), "--", "true"}, `no container "c" among 2 (a, b): give --name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := capprof(t, tc.args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != 125 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("exit %d, stderr %q: want exit 125 and one line with %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

// verifyPodsSetup records a Deployment's pod whose container binds port 80
// (NET_BIND_SERVICE, needed) and marks /shared set-group-ID (FSETID,
// granted by containerd's defaults, not needed), writes the profile and
// the Deployment's manifest, and plays the kubelet for verify's canaries.
func verifyPodsSetup(t *testing.T) (c *cluster.Cluster, ns, profilePath, manifestPath string) {
	t.Helper()
	c = needCluster(t)
	ns = namespace(t, c, "verify")
	rs, hash := deployment(t, c, ns)
	command := []string{"/workload", "canary", "/shared"}
	rec := startRecord(t, "-l", "app=web", "-n", ns, "--kubeconfig", c.Kubeconfig)
	pod := testPod(ns, "web-"+hash+"-vrfy1", map[string]string{"app": "web", "pod-template-hash": hash}, "server")
	pod.OwnerReferences = []metav1.OwnerReference{rs}
	pod.Spec.Containers[0].Command = command
	pod = runPod(t, c, pod)
	// Done when the bit is set.
	execIn(t, c, containerID(t, pod, "server"), "/bin/sh", "-c", "for i in $(seq 100); do [ -g /shared ] && exit 0; sleep 0.1; done; exit 1")
	p := rec.stop(t)
	dir := t.TempDir()
	profilePath = filepath.Join(dir, "web.json")
	if err := profile.Save(p, profilePath); err != nil {
		t.Fatal(err)
	}
	observed := profile.Analyze([]profile.Input{{Source: "web", Profile: alone(entry(t, p, ns, "server"))}}).Containers[0]
	if got := addList(observed); !slices.Equal(got, []string{"FSETID", "NET_BIND_SERVICE"}) {
		t.Fatalf("recorded advice %v, want [FSETID NET_BIND_SERVICE]", got)
	}
	manifestPath = filepath.Join(dir, "deploy.yaml")
	deploy := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %s
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: server
        image: %s
        command: [%s]
`, ns, cluster.ImageName, strings.Join(command, ", "))
	if err := os.WriteFile(manifestPath, []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	kubelet := make(chan error, 1)
	go func() { kubelet <- c.Kubelet(ctx, "", verify.CanaryLabel) }()
	t.Cleanup(func() {
		cancel()
		if err := <-kubelet; err != nil {
			t.Error(err)
		}
	})
	return c, ns, profilePath, manifestPath
}

// canariesGone waits until neither the API server nor the runtime has a
// canary pod of the namespace left.
func canariesGone(t *testing.T, c *cluster.Cluster, ns string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: verify.CanaryLabel})
		if err != nil {
			t.Fatal(err)
		}
		sandboxes, err := c.Sandboxes(ctx, ns, verify.CanaryLabel)
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 && sandboxes == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d canary pods and %d sandboxes left after verify", len(pods.Items), sandboxes)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestVerifyPods: canaries of a Deployment whose container needs
// NET_BIND_SERVICE and is granted an unneeded FSETID. The canary without
// NET_BIND_SERVICE crashes and is reported with its evidence, the one
// without FSETID passes, and no canary is left.
func TestVerifyPods(t *testing.T) {
	c, ns, profilePath, manifestPath := verifyPodsSetup(t)
	out := filepath.Join(t.TempDir(), "verified.json")
	r := capprof(t, "verify", "--manifest", manifestPath, profilePath, "-n", ns, "--window", "4s", "--node", testNode,
		"--kubeconfig", c.Kubeconfig, "-o", out)
	if r.code != 0 {
		t.Fatalf("capprof verify --manifest: exit %d:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("creating 3 canary pods in namespace %q", ns)) {
		t.Errorf("verify did not say what it creates:\n%s", r.stderr)
	}
	canariesGone(t, c, ns)
	t.Logf("capprof verify --manifest:\n%s", r.stderr)
	p, err := profile.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if table := capprof(t, "analyze", out); !strings.Contains(table.stdout, "removable") || !strings.Contains(table.stdout, "canary pods of Deployment/web") {
		t.Errorf("analyze does not show the verification:\n%s", table.stdout)
	} else {
		t.Logf("capprof analyze:\n%s", table.stdout)
	}
	v := entry(t, p, ns, "server").Verification
	if v == nil || v.Advised.Passed != 1 || len(v.Capabilities) != 2 {
		t.Fatalf("verification %+v: want the advised canary passed and two capabilities tried\n%s", v, r.stderr)
	}
	for _, vc := range v.Capabilities {
		switch vc.Capability.KubernetesName() {
		case "FSETID":
			if vc.Verified != v1alpha1.VerifiedRemovable {
				t.Errorf("FSETID %+v, want removable\n%s", vc, r.stderr)
			}
		case "NET_BIND_SERVICE":
			f := vc.FailedRun
			if vc.Verified != v1alpha1.VerifiedNeeded || f == nil || !strings.Contains(f.Reason, "container server restarted") || f.ExitStatus != 1 ||
				!slices.ContainsFunc(f.Denials, func(d v1alpha1.DeniedChecks) bool { return d.Capability == vc.Capability }) {
				t.Errorf("NET_BIND_SERVICE %+v (run %+v), want needed with the crash and its denial\n%s", vc, f, r.stderr)
			}
		}
	}
	analysis := profile.Analyze([]profile.Input{{Source: out, Profile: p}})
	for _, ca := range analysis.Containers {
		if ca.Name == "server" && !slices.Equal(addList(ca), []string{"NET_BIND_SERVICE"}) {
			t.Errorf("verified advice %v, want [NET_BIND_SERVICE]", addList(ca))
		}
	}
}

// TestVerifyPodsInterrupted: Ctrl-C while the canaries run deletes them
// and saves nothing.
func TestVerifyPodsInterrupted(t *testing.T) {
	c, ns, profilePath, manifestPath := verifyPodsSetup(t)
	out := filepath.Join(t.TempDir(), "verified.json")
	cmd := exec.Command(capprofBin, "verify", "--manifest", manifestPath, profilePath, "-n", ns, "--window", "5m", "--node", testNode,
		"--kubeconfig", c.Kubeconfig, "-o", out)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pods, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: verify.CanaryLabel})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d canaries after 30s:\n%s", len(pods.Items), stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("capprof verify after SIGINT: %v, want exit 130:\n%s", err, stderr.String())
	}
	canariesGone(t, c, ns)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a profile was saved after SIGINT: %v", err)
	}
}
