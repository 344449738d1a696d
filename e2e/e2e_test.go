// Package e2e drives the capprof binary as a user would, on the real kernel,
// against real processes. The tests need root and a kernel with the
// capability:cap_capable tracepoint; elsewhere they skip with the reason,
// except under CI=true, where they fail instead.
package e2e

import (
	"bytes"
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

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/profile"
)

var (
	capprofBin  string
	workloadBin string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "capprof-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by all: one test runs capprof as an unprivileged user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	capprofBin = filepath.Join(dir, "capprof")
	workloadBin = filepath.Join(dir, "workload")
	// The kernel matrix (e2e/kernels) runs this package's test binary in a
	// VM without Go: the binaries it built come in CAPPROF_E2E_BINARIES.
	if prebuilt := os.Getenv("CAPPROF_E2E_BINARIES"); prebuilt != "" {
		capprofBin, workloadBin = filepath.Join(prebuilt, "capprof"), filepath.Join(prebuilt, "workload")
	} else {
		for bin, pkg := range map[string]string{capprofBin: "../cmd/capprof", workloadBin: "./workload"} {
			if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
				os.Exit(1)
			}
		}
	}
	code := m.Run()
	if err := stopCluster(); err != nil {
		fmt.Fprintf(os.Stderr, "stop cluster: %v\n", err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// probe is the backend the tests record with: $CAPPROF_PROBE, which capprof
// record reads as its --probe default, or auto.
func probe() bpf.Backend {
	if b, err := bpf.ParseBackend(os.Getenv("CAPPROF_PROBE")); err == nil {
		return b
	}
	return bpf.Auto
}

// requireRecording skips (fails under CI=true) when recording cannot work here.
func requireRecording(t *testing.T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "recording needs root"
	} else if err := bpf.CheckBackend(probe()); err != nil {
		reason = err.Error()
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("e2e test cannot run: %s (CI=true: not skipping)", reason)
	}
	t.Skipf("skipping: %s", reason)
}

type run struct {
	code    int
	stdout  string
	stderr  string
	profile *v1alpha1.Profile
}

// record runs `capprof record -o FILE [flags] -- command...` and loads the profile.
func record(t *testing.T, flags []string, command ...string) run {
	t.Helper()
	out := filepath.Join(t.TempDir(), "profile.json")
	args := append([]string{"record", "-o", out}, flags...)
	args = append(append(args, "--"), command...)
	r := capprof(t, args...)
	if r.profile == nil {
		p, err := profile.Load(out)
		if err != nil {
			t.Fatalf("load profile after capprof %s (exit %d, stderr %q): %v", strings.Join(args, " "), r.code, r.stderr, err)
		}
		r.profile = p
	}
	return r
}

// recordOK is record for a command that must succeed; it returns the profile.
func recordOK(t *testing.T, flags []string, command ...string) *v1alpha1.Profile {
	t.Helper()
	r := record(t, flags, command...)
	if r.code != 0 {
		t.Fatalf("capprof record -- %s: exit %d, stderr: %s", strings.Join(command, " "), r.code, r.stderr)
	}
	return r.profile
}

func capprof(t *testing.T, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return runCommand(t, exec.CommandContext(ctx, capprofBin, args...))
}

// runCommand runs cmd and returns its exit status and output; a command
// that cannot be run fails the test.
func runCommand(t *testing.T, cmd *exec.Cmd) run {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", strings.Join(cmd.Args, " "), err)
	}
	return r
}

// toolFromEnv is the path of a tool the tests need that make e2e-deps
// builds, from the environment variable env; the test is skipped when it
// is not set, or fails under CI=true.
func toolFromEnv(t *testing.T, env string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set (CI=true: not skipping)", env)
		}
		t.Skipf("skipping: %s is not set; run make test, or make e2e-deps and set it to what it built", env)
	}
	return path
}

// decisions analyzes the profile and returns capability -> decision for its
// only container.
func decisions(t *testing.T, p *v1alpha1.Profile) (map[string]profile.Decision, profile.ContainerAnalysis) {
	t.Helper()
	a := profile.Analyze([]profile.Input{{Source: "test", Profile: p}})
	if len(a.Containers) != 1 {
		t.Fatalf("want 1 container, got %d", len(a.Containers))
	}
	out := map[string]profile.Decision{}
	for _, d := range a.Containers[0].Capabilities {
		out[d.Capability.String()] = d.Decision
	}
	return out, a.Containers[0]
}

func required(t *testing.T, p *v1alpha1.Profile) []string {
	t.Helper()
	_, ca := decisions(t, p)
	var out []string
	for _, c := range ca.SecurityContext.Capabilities.Add {
		out = append(out, string(c))
	}
	return out
}

func wantRequired(t *testing.T, p *v1alpha1.Profile, want ...string) {
	t.Helper()
	got := required(t, p)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		// CI shows a failure's first line: the sources of what is
		// required unexpectedly go there.
		var unexpected []string
		for _, c := range got {
			if slices.Contains(want, c) {
				continue
			}
			for _, ctr := range p.Containers {
				for _, cc := range ctr.Capabilities {
					if cc.Capability.String() != "CAP_"+c {
						continue
					}
					for _, s := range cc.Sources {
						unexpected = append(unexpected, fmt.Sprintf("%s: %s %s %s %v %s %s %s %d", c, ctr.Name, s.Executable, s.Syscall, s.CallSites, s.Audit, s.Credentials, s.Phase, s.Count))
					}
				}
			}
		}
		t.Fatalf("required capabilities = %v, want %v; unexpected from %q\nprofile containers: %+v", got, want, unexpected, p.Containers)
	}
}

// sources returns the sources of granted initial-namespace checks of capability c.
func sources(p *v1alpha1.Profile, c string) []v1alpha1.Source {
	var out []v1alpha1.Source
	for _, cc := range p.Containers[0].Capabilities {
		if cc.Capability.String() == c && cc.Verdict == v1alpha1.Granted && cc.UserNamespace == v1alpha1.InitialNamespace {
			out = append(out, cc.Sources...)
		}
	}
	return out
}

func TestBindPort80RequiresNetBindService(t *testing.T) {
	requireRecording(t)
	p := recordOK(t, nil, workloadBin, "bind80")
	wantRequired(t, p, "NET_BIND_SERVICE")
	src := sources(p, "CAP_NET_BIND_SERVICE")
	if len(src) != 1 || src[0].Executable != workloadBin || src[0].Syscall != "bind" || src[0].Audit != v1alpha1.Audited {
		t.Fatalf("CAP_NET_BIND_SERVICE sources = %+v, want one audited bind by %s", src, workloadBin)
	}
}

func TestChownRequiresChown(t *testing.T) {
	requireRecording(t)
	p := recordOK(t, nil, workloadBin, "chown", filepath.Join(t.TempDir(), "f"))
	wantRequired(t, p, "CHOWN")
}

func TestKernelLogRequiresSyslog(t *testing.T) {
	requireRecording(t)
	p := recordOK(t, nil, workloadBin, "klog")
	wantRequired(t, p, "SYSLOG")
}

func TestSetuidRecordsCredentialChange(t *testing.T) {
	requireRecording(t)
	p := recordOK(t, nil, workloadBin, "setuid")
	wantRequired(t, p, "SETUID")
	var found bool
	for _, ch := range p.Containers[0].CredentialChanges {
		if ch.Syscall == "setuid" && ch.Executable == workloadBin && ch.Before.UID == 0 && ch.After.UID == 65534 && ch.After.EUID == 65534 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no setuid credential change 0 -> 65534 by %s in %+v", workloadBin, p.Containers[0].CredentialChanges)
	}
	uids := p.Containers[0].UIDs
	if len(uids) != 2 || uids[0] != 0 || uids[1] != 65534 {
		t.Fatalf("uids = %v, want [0 65534]", uids)
	}
}

// TestUncheckedCredentialChange: a change that passes no capability check
// (the effective uid back to the real one) is recorded too. The fexit and
// kprobe probes see it at commit_creds, inside setresuid; the tracepoint
// probe finds it when the thread exits, with no syscall to attribute it to,
// and finds the checked change before it at the setgid call's check.
func TestUncheckedCredentialChange(t *testing.T) {
	requireRecording(t)
	p := recordOK(t, nil, workloadBin, "seteuid")
	wantRequired(t, p, "SETUID")
	back := "setresuid"
	if p.Metadata.Probe == string(bpf.Tracepoint) {
		back = "unknown"
	}
	var away, returned bool
	for _, ch := range p.Containers[0].CredentialChanges {
		if ch.Executable != workloadBin || ch.Before.UID != 0 || ch.After.UID != 0 {
			continue
		}
		away = away || ch.Syscall == "setresuid" && ch.Before.EUID == 0 && ch.After.EUID == 65534
		returned = returned || ch.Syscall == back && ch.Before.EUID == 65534 && ch.After.EUID == 0
	}
	if !away || !returned {
		t.Fatalf("want changes euid 0 -> 65534 by setresuid and 65534 -> 0 by %s; got %+v", back, p.Containers[0].CredentialChanges)
	}
}

func TestShellScriptChildrenAttributed(t *testing.T) {
	requireRecording(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "start.sh")
	body := fmt.Sprintf("#!/bin/sh\nset -e\nchown 65534 %s\n%s bind80\n", filepath.Join(dir, "start.sh"), workloadBin)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	p := recordOK(t, nil, script)
	wantRequired(t, p, "CHOWN", "NET_BIND_SERVICE")
	if src := sources(p, "CAP_CHOWN"); len(src) != 1 || src[0].Executable != executable(t, "chown") {
		t.Fatalf("CAP_CHOWN sources = %+v, want the chown binary, %s", src, executable(t, "chown"))
	}
	if src := sources(p, "CAP_NET_BIND_SERVICE"); len(src) != 1 || src[0].Executable != workloadBin {
		t.Fatalf("CAP_NET_BIND_SERVICE sources = %+v, want %s", src, workloadBin)
	}
	var sawScript bool
	for _, e := range p.Containers[0].Execs {
		if e.Script == script {
			sawScript = true
		}
	}
	if !sawScript {
		t.Fatalf("no exec of script %s in %+v", script, p.Containers[0].Execs)
	}
}

func TestShortLivedChildrenAllCounted(t *testing.T) {
	requireRecording(t)
	dir := t.TempDir()
	p := recordOK(t, nil, "/bin/sh", "-c", fmt.Sprintf(`for i in $(seq 1 20); do %s chown %s/f$i; done`, workloadBin, dir))
	wantRequired(t, p, "CHOWN")
	var checks int64
	for _, s := range sources(p, "CAP_CHOWN") {
		if s.Executable == workloadBin && s.Syscall == "fchownat" {
			checks += s.Count
		}
	}
	if checks != 20 {
		t.Fatalf("CAP_CHOWN checks by %s = %d, want 20", workloadBin, checks)
	}
	var execs int64
	for _, e := range p.Containers[0].Execs {
		if e.Executable == workloadBin {
			execs += e.Count
			if len(e.ExitStatuses) != 1 || e.ExitStatuses[0] != "0" {
				t.Fatalf("exit statuses of %s = %v, want [0]", workloadBin, e.ExitStatuses)
			}
		}
	}
	if execs != 20 {
		t.Fatalf("execs of %s = %d, want 20", workloadBin, execs)
	}
}

func TestNoiseOnlyWorkloadRequiresNothing(t *testing.T) {
	requireRecording(t)
	p := recordOK(t, nil, workloadBin, "noise", t.TempDir())
	wantRequired(t, p)
	// The mmaps really were checked: the noise is there, and classified.
	// Hooking the function cap_capable (fexit, kprobe) does not see the
	// checks gcc inlined into its callers in security/commoncap.c, which
	// cap_vm_enough_memory's is on Debian's 6.1 and 6.12.
	d, _ := decisions(t, p)
	if _, seen := d["CAP_SYS_ADMIN"]; !seen && bpf.Backend(p.Metadata.Probe).SeesAuditOptions() {
		t.Logf("probe %s saw no CAP_SYS_ADMIN check: cap_capable is inlined into cap_vm_enough_memory on this kernel", p.Metadata.Probe)
	} else if d["CAP_SYS_ADMIN"] != profile.NotNeeded {
		t.Fatalf("CAP_SYS_ADMIN decision = %q, want %q (noaudit cap_vm_enough_memory checks)", d["CAP_SYS_ADMIN"], profile.NotNeeded)
	}
	var trues int64
	for _, e := range p.Containers[0].Execs {
		if e.Executable == executable(t, "/bin/true") {
			trues += e.Count
		}
	}
	if trues != 5 {
		t.Fatalf("execs of %s = %d, want 5", executable(t, "/bin/true"), trues)
	}
}

// executable is the file a command runs, as the kernel names it: found in
// $PATH, symbolic links resolved (/bin/true is /usr/bin/true on a merged-usr
// Debian, /bin/busybox in the kernel matrix's guests).
func executable(t *testing.T, command string) string {
	t.Helper()
	path, err := exec.LookPath(command)
	if err == nil {
		path, err = filepath.EvalSymlinks(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOwnChecksAbsent(t *testing.T) {
	requireRecording(t)
	p := recordOK(t, nil, workloadBin, "exit", "0")
	for _, cc := range p.Containers[0].Capabilities {
		switch cc.Capability.String() {
		case "CAP_BPF", "CAP_PERFMON":
			t.Fatalf("capprof's own %s check leaked into the profile: %+v", cc.Capability, cc)
		}
		for _, s := range cc.Sources {
			if s.Syscall == "bpf" || s.Executable == capprofBin {
				t.Fatalf("capprof's own check leaked into the profile: %s %+v", cc.Capability, s)
			}
		}
	}
	wantRequired(t, p)
}

func TestExitCodePropagated(t *testing.T) {
	requireRecording(t)
	r := record(t, nil, workloadBin, "exit", "7")
	if r.code != 7 {
		t.Fatalf("capprof exit code = %d, want 7 (stderr: %s)", r.code, r.stderr)
	}
	wantExitStatuses(t, r.profile, workloadBin, "7")
}

// TestCommandNotRun: a command that is not found exits 127, one that is
// not executable 126, as timeout(1) and docker run do; capprof's own
// failures are 125, never the command's 1.
func TestCommandNotRun(t *testing.T) {
	requireRecording(t)
	notExecutable := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(notExecutable, []byte("not a program\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command []string
		want    int
	}{
		{[]string{filepath.Join(t.TempDir(), "missing")}, 127},
		{[]string{"no-such-command-anywhere"}, 127},
		{[]string{notExecutable}, 126},
	} {
		r := capprof(t, append([]string{"record", "-o", filepath.Join(t.TempDir(), "p.json"), "--"}, tc.command...)...)
		if r.code != tc.want || !strings.Contains(r.stderr, "start ") {
			t.Errorf("record -- %s: exit %d, stderr %q; want %d", tc.command[0], r.code, r.stderr, tc.want)
		}
	}
}

// wantExitStatuses checks how the processes running exe ended.
func wantExitStatuses(t *testing.T, p *v1alpha1.Profile, exe string, want ...string) {
	t.Helper()
	var got []string
	for _, e := range p.Containers[0].Execs {
		if e.Executable == exe {
			got = append(got, e.ExitStatuses...)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("exit statuses of %s = %v, want %v", exe, got, want)
	}
}

func TestInterruptSavesProfile(t *testing.T) {
	requireRecording(t)
	out := filepath.Join(t.TempDir(), "profile.yaml")
	cmd := exec.Command(capprofBin, "record", "-o", out, "--", workloadBin, "sleep")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make([]byte, 6)
	if _, err := stdout.Read(ready); err != nil || string(ready) != "ready\n" {
		cmd.Process.Kill()
		t.Fatalf("workload did not start: %q %v; stderr: %s", ready, err, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("capprof after SIGINT: %v, want exit code 130; stderr: %s", err, stderr.String())
	}
	p, err := profile.Load(out)
	if err != nil {
		t.Fatalf("profile after SIGINT: %v", err)
	}
	wantExitStatuses(t, p, workloadBin, "SIGINT")
}

// TestDurationStopsCommand: --duration stops a command that would sleep for
// an hour. The recording's own span is bounded, not the test's wall time: in
// the kernel matrix's emulated guests loading the probe alone takes seconds,
// and three guests share two CPUs (the kprobe run on 7.3 once took over
// 30 s in CI).
func TestDurationStopsCommand(t *testing.T) {
	requireRecording(t)
	r := record(t, []string{"--duration", "500ms"}, workloadBin, "sleep")
	if r.code != 128+int(syscall.SIGTERM) || !strings.Contains(r.stderr, "capprof: duration 500ms reached: sending SIGTERM to the command") {
		t.Fatalf("exit code = %d, want %d after the duration; stderr: %s", r.code, 128+int(syscall.SIGTERM), r.stderr)
	}
	if span := r.profile.Metadata.EndTime.Sub(r.profile.Metadata.StartTime.Time); span < 500*time.Millisecond || span > 30*time.Second {
		t.Fatalf("the recording spans %s with --duration 500ms, want 500ms to 30s", span)
	}
	wantExitStatuses(t, r.profile, workloadBin, "SIGTERM")
}

func TestRecordingsAreDeterministic(t *testing.T) {
	requireRecording(t)
	// Single-threaded C tools: the Go workload is not deterministic itself
	// (its runtime starts a varying number of threads, each calling setuid).
	dir := t.TempDir()
	// setpriv by its path: busybox's sh runs its own, smaller applet first.
	script := fmt.Sprintf(`rm -f %[1]s/f && touch %[1]s/f && chown 65534 %[1]s/f && %[2]s --reuid=65534 --regid=65534 --clear-groups /bin/true`,
		dir, executable(t, "setpriv"))
	var yamls []string
	for range 2 {
		recorded := recordOK(t, nil, "/bin/sh", "-c", script)
		var buf bytes.Buffer
		p := &v1alpha1.Profile{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Containers: recorded.Containers}
		if err := profile.Encode(&buf, p, true); err != nil {
			t.Fatal(err)
		}
		yamls = append(yamls, buf.String())
	}
	if yamls[0] != yamls[1] {
		t.Fatalf("two recordings of the same workload differ:\n--- first\n%s\n--- second\n%s", yamls[0], yamls[1])
	}
	if !strings.Contains(yamls[0], "syscall: setresuid") {
		t.Fatalf("the recording has no setresuid credential change:\n%s", yamls[0])
	}
}

func TestRecordWithoutRootFails(t *testing.T) {
	requireRecording(t) // needs root to switch to another user
	out := filepath.Join(t.TempDir(), "p.json")
	cmd := exec.Command(capprofBin, "record", "-o", out, "--", "/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("capprof record as uid 65534: %v, want a non-zero exit", err)
	}
	msg := strings.TrimSpace(stderr.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "needs root") {
		t.Fatalf("stderr = %q, want one line saying record needs root", msg)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a profile was written without root: %v", err)
	}
}

// TestStartupAndSteadyPhases: with --startup 1s, a check in the command's
// first second is in the startup phase and one after it is steady; the
// recommendation counts both.
func TestStartupAndSteadyPhases(t *testing.T) {
	requireRecording(t)
	file := filepath.Join(t.TempDir(), "f")
	p := recordOK(t, []string{"--startup", "1s"}, "/bin/sh", "-c", workloadBin+" bind80 && sleep 2 && "+workloadBin+" chown "+file)
	if p.Metadata.StartupWindow != v1alpha1.Duration(time.Second) {
		t.Fatalf("startupWindow %v, want 1s", time.Duration(p.Metadata.StartupWindow))
	}
	wantRequired(t, p, "CHOWN", "NET_BIND_SERVICE")
	for c, want := range map[string]v1alpha1.Phase{"CAP_NET_BIND_SERVICE": v1alpha1.StartupPhase, "CAP_CHOWN": v1alpha1.SteadyPhase} {
		src := sources(p, c)
		if len(src) != 1 || src[0].Phase != want {
			t.Errorf("%s sources %+v, want one in phase %s", c, src, want)
		}
	}
	_, analysis := decisions(t, p)
	for _, d := range analysis.Capabilities {
		if startup := strings.Contains(d.Reason, "only during startup"); startup != (d.Capability.String() == "CAP_NET_BIND_SERVICE") && d.Decision == profile.Required {
			t.Errorf("%s: reason %q", d.Capability, d.Reason)
		}
	}
}

// TestSubCgroupRecordedAndKilled: a command that moves itself into a cgroup
// of its own below the recorded one (as process managers do) is still
// recorded there, from the kernel's tracking of the cgroup subtree, and the
// child it leaves behind in that cgroup does not outlive the recording.
func TestSubCgroupRecordedAndKilled(t *testing.T) {
	requireRecording(t)
	file := filepath.Join(t.TempDir(), "owned")
	r := record(t, nil, workloadBin, "escape", file)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	wantRequired(t, r.profile, "CHOWN")
	if cov := r.profile.Containers[0].Coverage; cov == nil || cov.Instances != 1 || cov.FromStart != 1 {
		t.Fatalf("coverage %+v, want the command recorded from its start", cov)
	}
	data, err := os.ReadFile(file + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(data))
	if err != nil {
		t.Fatal(err)
	}
	// Killed, it is gone or a zombie its new parent (init) has yet to reap.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(stat), ") Z ") {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the command's child %d in its sub-cgroup outlived the recording: %s (stderr: %s)", pid, stat, r.stderr)
	}
	if !strings.Contains(r.stderr, "killed 1 leftover process(es) of the command") {
		t.Fatalf("stderr does not say the leftover child was killed:\n%s", r.stderr)
	}
}
