package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/events"
)

// readEvents parses a JSON-lines events file; every line must hold exactly
// one event and the node's name.
func readEvents(t *testing.T, data []byte) []events.Event {
	t.Helper()
	var out []events.Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("events line %q: %v", sc.Text(), err)
		}
		kinds := 0
		for _, set := range []bool{e.ProcessExec != nil, e.ProcessExit != nil, e.ProcessKprobe != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 || e.NodeName == "" || e.Time.IsZero() || e.Process() == nil || e.Process().ExecID == "" {
			t.Fatalf("events line %q: want one event with node_name, time and a process with an exec_id", sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// execsOf returns the process_exec events of binary.
func execsOf(evs []events.Event, binary string) []*events.ProcessExec {
	var out []*events.ProcessExec
	for _, e := range evs {
		if e.ProcessExec != nil && e.ProcessExec.Process.Binary == binary {
			out = append(out, e.ProcessExec)
		}
	}
	return out
}

// ofExec returns the events of one exec other than its process_exec.
func ofExec(evs []events.Event, execID string) (checks []*events.ProcessKprobe, changes []*events.ProcessKprobe, exit *events.ProcessExit) {
	for _, e := range evs {
		switch {
		case e.ProcessExec != nil || e.Process().ExecID != execID:
		case e.ProcessExit != nil:
			exit = e.ProcessExit
		case e.ProcessKprobe.Capability != nil:
			checks = append(checks, e.ProcessKprobe)
		default:
			changes = append(changes, e.ProcessKprobe)
		}
	}
	return checks, changes, exit
}

// checkLines counts the lines of one capability and verdict, summaries
// aside, and the checks all of them account for.
func checkLines(checks []*events.ProcessKprobe, capability, verdict string) (lines int, total uint64) {
	for _, k := range checks {
		if k.Capability.Name == capability && k.Verdict == verdict {
			if !k.Summary {
				lines++
			}
			total += k.Checks
		}
	}
	return lines, total
}

// profileChecks counts a container's checks of one capability and verdict
// in the profile, without the container runtime's (live events leave them out).
func profileChecks(c v1alpha1.Container, capability string, verdict v1alpha1.Verdict) int64 {
	var n int64
	for _, cc := range c.Capabilities {
		if cc.Capability.String() != capability || cc.Verdict != verdict {
			continue
		}
		for _, s := range cc.Sources {
			if s.Phase != v1alpha1.RuntimeInitPhase {
				n += s.Count
			}
		}
	}
	return n
}

// TestLiveEventsCommand: record --events on a command that runs a hot
// setuid(0) loop and then setuid(nobody). The loop's exec, checks and exit
// share its exec_id; the rate limit keeps its CAP_SETUID lines to a few
// while their checks counts add up to the profile's, check for check; the
// setuid call is a credential change with its argument and the new uid.
func TestLiveEventsCommand(t *testing.T) {
	requireRecording(t)
	const loops = 20000
	var (
		r             run
		p             *v1alpha1.Profile
		evs           []events.Event
		shells        []*events.ProcessExec
		bench, change *events.ProcessExec
		checks        []*events.ProcessKprobe
		exit          *events.ProcessExit
	)
	// In the kernel matrix's emulated 7.3 guest with the fexit probe, the
	// loop's exit was missing from the events in 2 runs of 4 (not seen on
	// real hardware): the first time, what capprof said is logged and the
	// recording made once more; a second miss fails.
	for attempt := 1; ; attempt++ {
		path := filepath.Join(t.TempDir(), "events.json")
		r = record(t, []string{"--events", path, "--events-rate-limit", "1s", "--events-filter", "audit=audited,audit=insetid,audit=noaudit,audit=unknown"},
			"sh", "-c", fmt.Sprintf("%s bench setuid %d 1 && %s setuid", workloadBin, loops, workloadBin))
		if r.code != 0 {
			t.Fatalf("record: exit %d, stderr: %s", r.code, r.stderr)
		}
		p = r.profile
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		evs = readEvents(t, data)

		shells = nil
		for _, e := range evs {
			if e.ProcessExec != nil && strings.HasSuffix(e.ProcessExec.Process.Binary, "/sh") {
				shells = append(shells, e.ProcessExec)
			}
		}
		if len(shells) != 1 || shells[0].Process.Pod == nil || shells[0].Process.Pod.Container.Name != "main" ||
			!strings.Contains(shells[0].Process.Arguments, "bench setuid") {
			t.Fatalf("want one exec of sh in container main with its arguments, got %+v", shells)
		}
		if priv := shells[0].Privileged; len(priv) != 1 || priv[0] != "CAP_SYS_ADMIN" {
			t.Errorf("sh as root: privileged %v, want [CAP_SYS_ADMIN] (a command's host namespaces are not a marker)", priv)
		}
		workloads := execsOf(evs, workloadBin)
		if len(workloads) != 2 {
			t.Fatalf("want 2 execs of %s, got %d", workloadBin, len(workloads))
		}
		bench, change = workloads[0], workloads[1]
		if bench.Process.Arguments != fmt.Sprintf("bench setuid %d 1", loops) || bench.Process.ParentExecID != shells[0].Process.ExecID ||
			bench.Process.Cap == nil || bench.Process.NS == nil || bench.Process.NS.Mnt == nil || !bench.Process.NS.Mnt.IsHost {
			t.Fatalf("bench exec %+v: want its arguments, sh as parent, capabilities and host namespaces", bench.Process)
		}

		checks, _, exit = ofExec(evs, bench.Process.ExecID)
		if exit != nil || attempt == 2 {
			break
		}
		t.Logf("attempt %d: the loop's exit (exec_id %s) is not in the %d events; capprof said:\n%s", attempt, bench.Process.ExecID, len(evs), r.stderr)
	}
	if exit == nil || exit.Status != 0 || exit.Signal != "" {
		t.Fatalf("bench exit %+v: want status 0 under the same exec_id; capprof said:\n%s", exit, r.stderr)
	}
	lines, total := checkLines(checks, "CAP_SETUID", events.Allowed)
	if total < loops && reportsLosses(r.stderr) {
		// A slow machine (the kernel matrix's emulated guests) can fill the
		// queue of events, or (kprobes) have the kernel skip the probe:
		// capprof says how many were lost or skipped, and a lost line
		// takes the checks it counted with it.
		t.Logf("bench: %d of %d checks in the events; capprof reports losses: %s", total, loops, r.stderr)
	} else if total != loops || lines > 12 {
		t.Fatalf("bench: %d CAP_SETUID lines accounting for %d checks; want %d checks in a few lines (one per second, and a summary)", lines, total, loops)
	}
	for _, k := range checks {
		if k.Capability.Name != "CAP_SETUID" {
			continue // the kernel's noaudit CAP_SYS_ADMIN probes at exec and mmap
		}
		if k.FunctionName != "cap_capable" || k.Return == nil || k.Return.IntArg == nil || *k.Return.IntArg != 0 ||
			len(k.Args) != 2 || k.Args[1].CapabilityArg == nil || k.Args[1].CapabilityArg.Value != 7 ||
			(!k.Summary && (k.Args[0].UserNSArg == nil || k.Args[0].UserNSArg.Level != 0 || !k.Args[0].UserNSArg.NS.IsHost)) {
			t.Fatalf("check line %+v: want Tetragon's cap_capable arguments and return", k)
		}
		if k.Parent == nil || k.Parent.ExecID != shells[0].Process.ExecID || k.CallSite != "__sys_setuid" || k.Syscall.Name != "setuid" {
			t.Fatalf("check line %+v (parent %+v): want sh as parent, called from __sys_setuid in setuid", k, k.Parent)
		}
	}

	// Go's syscall.Setuid changes every thread's credentials, one change each.
	_, changes, _ := ofExec(evs, change.Process.ExecID)
	if len(changes) == 0 {
		t.Fatal("setuid: no credential change")
	}
	for _, c := range changes {
		if c.FunctionName != "commit_creds" || c.Syscall == nil || c.Syscall.Name != "setuid" || len(c.Syscall.Args) != 1 ||
			c.Syscall.Args[0] != 65534 || c.Before == nil || c.Before.UID != 0 || c.Args[0].ProcessCredentialsArg.UID != 65534 ||
			c.Process.UID != 65534 || c.Process.TID == 0 {
			t.Fatalf("setuid change %+v (before %+v): want setuid(65534), uid 0→65534", c, c.Before)
		}
	}

	// Every check of the profile is in the events, and no more.
	var all []*events.ProcessKprobe
	for _, e := range evs {
		if e.ProcessKprobe != nil && e.ProcessKprobe.Capability != nil {
			all = append(all, e.ProcessKprobe)
		}
	}
	// Fewer only when capprof says events were lost (as for the loop above).
	main := p.Containers[0]
	for _, cc := range main.Capabilities {
		verdict := events.Allowed
		if cc.Verdict == v1alpha1.Denied {
			verdict = events.Denied
		}
		_, got := checkLines(all, cc.Capability.String(), verdict)
		want := profileChecks(main, cc.Capability.String(), cc.Verdict)
		switch {
		case int64(got) == want:
		case int64(got) < want && reportsLosses(r.stderr):
			t.Logf("%s %s: events account for %d checks, the profile for %d; capprof reports losses: %s", cc.Capability, cc.Verdict, got, want, r.stderr)
		default:
			t.Errorf("%s %s: events account for %d checks, the profile for %d; capprof said:\n%s", cc.Capability, cc.Verdict, got, want, r.stderr)
		}
	}
}

// reportsLosses tells whether capprof said that live events were lost or
// that the kernel skipped its probe.
func reportsLosses(stderr string) bool {
	return strings.Contains(stderr, " lost (") || strings.Contains(stderr, "skipped capprof's probe")
}

// TestPodsLiveEvents: a scripted session in pod tie (sh → whoami, a
// denied dmesg, su to luke, a hot setuid loop) and a shell in a pod whose
// container adds SYS_ADMIN, recorded twice at once: as JSON lines to a
// file and as compact lines to stdout.
func TestPodsLiveEvents(t *testing.T) {
	const session = "/bin/whoami; /bin/dmesg >/dev/null 2>&1; /bin/su luke -s /bin/sh -c '/bin/id -u'; exit 0"
	c := needCluster(t)
	ns := namespace(t, c, "events")
	tie := runPod(t, c, testPod(ns, "tie", map[string]string{"app": "tie"}, "app"))
	privPod := testPod(ns, "privileged", nil, "main")
	privPod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
	priv := runPod(t, c, privPod)

	jsonPath := filepath.Join(t.TempDir(), "events.json")
	selection := []string{"--pods", "tie,privileged", "-n", ns, "--kubeconfig", c.Kubeconfig}
	jsonRec := startRecord(t, append(selection, "--events", jsonPath)...)
	compactRec := startRecord(t, append(selection, "--events", "-", "--events-format", "compact")...)
	app := containerID(t, tie, "app")
	// Full paths: busybox's shell runs its own applets (whoami) in-process, or
	// re-executes /proc/self/exe for them, when named without one.
	execIn(t, c, app, "/bin/sh", "-c", session)
	execIn(t, c, app, "/workload", "bench", "setuid", "50000", "1")
	execIn(t, c, containerID(t, priv, "main"), "/bin/sh", "-c", "true")
	p := jsonRec.stop(t)
	compactRec.stop(t)
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	evs := readEvents(t, data)
	t.Logf("compact:\n%s", compactRec.stdout.String())

	one := func(binary string) *events.ProcessExec {
		t.Helper()
		execs := execsOf(evs, binary)
		if len(execs) != 1 {
			t.Fatalf("%d execs of %s, want 1", len(execs), binary)
		}
		return execs[0]
	}
	whoami := one("/bin/whoami")
	pod := whoami.Process.Pod
	if pod == nil || pod.Namespace != ns || pod.Name != "tie" || pod.PodLabels["app"] != "tie" || pod.Workload != "tie" ||
		pod.WorkloadKind != "Pod" || pod.Container == nil || pod.Container.Name != "app" || pod.Container.ID != app ||
		pod.Container.Image == nil || pod.Container.Image.Name != cluster.ImageName {
		t.Fatalf("whoami's pod %+v: want %s/tie's container app with its labels, id and image", pod, ns)
	}
	if whoami.Parent == nil || whoami.Parent.Binary != "/bin/sh" || whoami.Process.ParentExecID != whoami.Parent.ExecID {
		t.Fatalf("whoami's parent %+v: want the session's sh", whoami.Parent)
	}
	if _, _, exit := ofExec(evs, whoami.Process.ExecID); exit == nil || exit.Status != 0 {
		t.Fatalf("whoami exit %+v, want status 0", exit)
	}

	dmesg := one("/bin/dmesg")
	checks, _, exit := ofExec(evs, dmesg.Process.ExecID)
	if lines, _ := checkLines(checks, "CAP_SYSLOG", events.Denied); lines != 1 || exit == nil || exit.Status != 1 {
		t.Fatalf("dmesg: %d CAP_SYSLOG denied lines and exit %+v under its exec_id; want 1 and status 1", lines, exit)
	}

	su := one("/bin/su")
	_, changes, _ := ofExec(evs, su.Process.ExecID)
	found := false
	for _, k := range changes {
		creds := k.Args[0].ProcessCredentialsArg
		found = found || k.Syscall != nil && k.Syscall.Name == "setuid" && len(k.Syscall.Args) == 1 && k.Syscall.Args[0] == 1000 &&
			k.Before.UID == 0 && creds.UID == 1000 && creds.EUID == 1000 && creds.Caps.Effective == nil
	}
	if !found {
		t.Fatalf("su: credential changes %+v, want setuid(1000): uid 0→1000 with no capability left", changes)
	}

	bench := execsOf(evs, "/workload")
	if len(bench) != 1 {
		t.Fatalf("%d execs of /workload, want 1", len(bench))
	}
	checks, _, _ = ofExec(evs, bench[0].Process.ExecID)
	if lines, total := checkLines(checks, "CAP_SETUID", events.Allowed); lines > 12 || total != 50000 {
		t.Fatalf("setuid loop: %d lines for %d checks, want a few lines for all 50000", lines, total)
	}
	var all []*events.ProcessKprobe
	for _, e := range evs {
		if e.ProcessKprobe != nil && e.ProcessKprobe.Capability != nil && e.Process().Pod.Container.Name == "app" {
			all = append(all, e.ProcessKprobe)
		}
	}
	if _, live := checkLines(all, "CAP_SETUID", events.Allowed); int64(live) != profileChecks(entry(t, p, ns, "app"), "CAP_SETUID", v1alpha1.Granted) {
		t.Fatalf("app's CAP_SETUID: events account for %d checks, the profile for %d", live, profileChecks(entry(t, p, ns, "app"), "CAP_SETUID", v1alpha1.Granted))
	}

	var privileged []string
	for _, e := range evs {
		if x := e.ProcessExec; x != nil && x.Process.Pod.Name == "privileged" && x.Process.Binary == "/bin/sh" {
			privileged = x.Privileged
		}
	}
	// The harness runs pods in the host's network namespace (hostNetwork).
	if strings.Join(privileged, " ") != "CAP_SYS_ADMIN host_net_ns" {
		t.Fatalf("sh in the privileged pod: privileged %v, want CAP_SYS_ADMIN host_net_ns", privileged)
	}

	compact := compactRec.stdout.String()
	t.Logf("compact events:\n%s", compact)
	where := ns + "/tie"
	for _, want := range []string{
		"🚀 process " + where + " /bin/sh -c " + session + " 🛑 host_net_ns\n",
		"🚀 process " + where + " /bin/whoami 🛑 host_net_ns\n",
		"💥 exit    " + where + " /bin/whoami 0\n",
		"🔑 cap     " + where + " /bin/dmesg CAP_SYSLOG denied\n",
		"💥 exit    " + where + " /bin/dmesg 1\n",
		"🔐 creds   " + where + " /bin/su luke -s /bin/sh -c /bin/id -u setuid(1000) uid 0→1000 -CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,…(+11)\n",
		"🔑 cap     " + where + " /workload bench setuid 50000 1 CAP_SETUID allowed\n",
		"🚀 process " + ns + "/privileged /bin/sh -c true 🛑 CAP_SYS_ADMIN host_net_ns\n",
		"🚀 process " + ns + "/privileged /bin/sleep 100000 🛑 CAP_SYS_ADMIN host_net_ns\n", // running before recording began
	} {
		if !strings.Contains(compact, want) {
			t.Errorf("compact events lack %q:\n%s", want, compact)
		}
	}
}
