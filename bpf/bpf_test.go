package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/internal/static"
)

// TestCheckBackend: capprof's own object has BTF but none of the kernel's
// types, so it stands in for a kernel without the tracepoint (before 6.14)
// or the functions the fexit and kprobe backends hook.
func TestCheckBackend(t *testing.T) {
	spec, err := btf.LoadSpec("capprof_x86_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	for backend, want := range map[Backend]string{
		Tracepoint: "no capability:cap_capable tracepoint (added in Linux 6.14)",
		Fexit:      "no function cap_capable in its BTF",
		Kprobe:     "no function cap_capable in its BTF",
		"uprobe":   `unknown probe "uprobe"`,
	} {
		if err := checkBackend(spec, backend); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkBackend(%s) = %v, want %q", backend, err, want)
		}
	}
}

func TestParseBackend(t *testing.T) {
	for _, s := range []string{"auto", "tracepoint", "fexit", "kprobe"} {
		if b, err := ParseBackend(s); err != nil || string(b) != s {
			t.Errorf("ParseBackend(%q) = %q, %v", s, b, err)
		}
	}
	if _, err := ParseBackend("fentry"); err == nil || !strings.Contains(err.Error(), `unknown probe "fentry": use auto, tracepoint, fexit or kprobe`) {
		t.Errorf("ParseBackend(fentry) = %v", err)
	}
}

// TestObjects: each backend's object has a cap_capable hook and only
// programs of its own kind; capprof.o's programs are the tp_btf and iter ones
// every backend runs; and every map a backend's object shares has capprof.o's
// definition, which is what lets it use capprof.o's map (sharedMaps).
func TestObjects(t *testing.T) {
	shared, err := loadCapprof()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range shared.Programs {
		if kind, hook, _ := strings.Cut(p.SectionName, "/"); kind != "tp_btf" && kind != "iter" || hook == "cap_capable" {
			t.Errorf("capprof.o has the backend program %s", p.SectionName)
		}
	}
	kinds := map[Backend][]string{Tracepoint: {"tp_btf"}, Fexit: {"fexit", "fentry"}, Kprobe: {"kprobe", "kretprobe"}}
	for _, b := range Backends {
		spec, err := hookObjects[b]()
		if err != nil {
			t.Fatal(err)
		}
		hooks := 0
		for _, p := range spec.Programs {
			kind, hook, _ := strings.Cut(p.SectionName, "/")
			if !slices.Contains(kinds[b], kind) {
				t.Errorf("%s's object has the program %s", b, p.SectionName)
			}
			if hook == "cap_capable" {
				hooks++
			}
		}
		if hooks == 0 {
			t.Errorf("%s's object has no cap_capable hook", b)
		}
		for name, m := range spec.Maps {
			own, ok := shared.Maps[name]
			if !ok || strings.HasPrefix(name, ".rodata") {
				continue
			}
			if m.Type != own.Type || m.KeySize != own.KeySize || m.ValueSize != own.ValueSize ||
				m.MaxEntries != own.MaxEntries || m.Flags != own.Flags {
				t.Errorf("%s's map %s differs from capprof.o's: %+v, %+v", b, name, m, own)
			}
		}
	}
}

// TestCapCapableAuditArg reads cap_capable's prototype: "opts" since Linux
// 5.1, "audit" before.
func TestCapCapableAuditArg(t *testing.T) {
	param := func(name string) btf.FuncParam { return btf.FuncParam{Name: name, Type: &btf.Int{Size: 4}} }
	for last, want := range map[string]bool{"opts": false, "audit": true} {
		spec := kernelBTF(t, &btf.Func{Name: "cap_capable", Type: &btf.FuncProto{Return: &btf.Int{Size: 4},
			Params: []btf.FuncParam{param("cred"), param("targ_ns"), param("cap"), param(last)}}})
		if got, err := capCapableAuditArg(spec); err != nil || got != want {
			t.Errorf("argument %q: capCapableAuditArg = %v, %v; want %v", last, got, err, want)
		}
	}
}

// kernelBTF is BTF holding only typ, standing in for a kernel's.
func kernelBTF(t *testing.T, typ btf.Type) *btf.Spec {
	t.Helper()
	var b btf.Builder
	if _, err := b.Add(typ); err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestJoinPath(t *testing.T) {
	var names [16][128]int8
	for i, n := range []string{"ls", "bin", "usr"} {
		for j := range n {
			names[i][j] = int8(n[j])
		}
	}
	if got := joinPath(3, 0, &names); got != "/usr/bin/ls" {
		t.Errorf("joinPath = %q, want /usr/bin/ls", got)
	}
	if got := joinPath(2, 1, &names); got != "/.../bin/ls" {
		t.Errorf("truncated joinPath = %q, want /.../bin/ls", got)
	}
	if got := joinPath(0, 0, &names); got != "" {
		t.Errorf("empty joinPath = %q", got)
	}
	if got := joinPath(99, 0, &names); !strings.HasPrefix(got, "/////") {
		t.Errorf("depth beyond the array must be clamped, got %q", got)
	}
	// Names that are not UTF-8 stay apart: JSON would make both "bin-\uFFFD\uFFFD".
	for i, n := range []string{"bin-\xff\xfe", "bin-\xfe\xff", `bin-\xff\xfe`} {
		names[0] = [128]int8{}
		for j := range n {
			names[0][j] = int8(n[j])
		}
		want := []string{`/bin-\xff\xfe`, `/bin-\xfe\xff`, `/bin-\\xff\\xfe`}[i]
		if got := joinPath(1, 0, &names); got != want {
			t.Errorf("joinPath of %q = %q, want %q", n, got, want)
		}
	}
}

func TestDecodeExec(t *testing.T) {
	var raw capprofExecEvent
	raw.Hdr.Type = uint32(capprofEventTypeEVENT_EXEC)
	raw.Hdr.Pid, raw.Hdr.Tgid, raw.Hdr.CgroupId = 11, 10, 42
	raw.Flags = uint32(capprofExecFlagEXEC_PRIV_GAIN | capprofExecFlagEXEC_HAVE_BEFORE | capprofExecFlagEXEC_SCRIPT)
	raw.Before.Euid, raw.After.Euid = 1000, 0
	raw.After.CapPermitted = 1 << 7
	for i, c := range "./run.sh" {
		raw.Filename[i] = int8(c)
	}
	raw.Exe.Depth = 2
	for i, n := range []string{"sh", "bin"} {
		for j := range n {
			raw.Exe.Names[i][j] = int8(n[j])
		}
	}
	buf := encode(t, &raw)
	e, ok := roundTrip(t, &raw).(*Exec)
	if !ok {
		t.Fatalf("decoded %T, want *Exec", e)
	}
	if e.TGID != 10 || e.PID != 11 || e.CgroupID != 42 || e.ExePath != "/bin/sh" || e.Filename != "./run.sh" ||
		!e.Script || !e.PrivilegeGain || e.Before == nil || e.Before.EUID != 1000 || e.After.Permitted != 1<<7 {
		t.Fatalf("decoded %+v (before %+v)", e, e.Before)
	}
	// Without details the kernel sends the record up to the executable's
	// last path component.
	short := int(unsafe.Offsetof(raw.Exe)+unsafe.Offsetof(raw.Exe.Names)) + 2*len(raw.Exe.Names[0])
	if s, err := decodeEvent(buf[:short]); err != nil || !reflect.DeepEqual(s, Event(e)) {
		t.Fatalf("a short record: %+v, %v; want %+v", s, err, e)
	}
	details := raw
	details.Flags |= uint32(capprofExecFlagEXEC_DETAILS)
	if _, err := decodeEvent(encode(t, &details)[:short]); err == nil || !strings.Contains(err.Error(), "with details") {
		t.Fatalf("a short record with details: %v, want an error", err)
	}
	if _, err := decodeEvent(buf[:3]); err == nil {
		t.Fatal("decoding 3 bytes succeeded")
	}
	if _, err := decodeEvent(buf[:100]); err == nil {
		t.Fatal("decoding a truncated exec event succeeded")
	}
	binary.NativeEndian.PutUint32(buf, 99)
	if _, err := decodeEvent(buf); err == nil || !strings.Contains(err.Error(), "unknown event type 99") {
		t.Fatalf("unknown type: %v", err)
	}
}

// encode lays out a generated event struct as the kernel writes it.
func encode(t testing.TB, raw any) []byte {
	t.Helper()
	buf, err := binary.Append(nil, binary.NativeEndian, raw)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// roundTrip decodes what encode wrote.
func roundTrip(t *testing.T, raw any) Event {
	t.Helper()
	ev, err := decodeEvent(encode(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestLoadAndAttach loads every backend's programs through the kernel
// verifier and attaches them: what `capprof record` does before it starts a
// workload. A backend this kernel cannot run must say why in one of the
// ways a user is told (no tracepoint, fentry refused, no kprobes); auto
// must find one that works.
func TestLoadAndAttach(t *testing.T) {
	reason := ""
	if os.Geteuid() != 0 {
		reason = "loading eBPF programs needs root"
	} else if err := CheckBackend(Auto); err != nil {
		reason = err.Error()
	}
	if reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run: %s (CI=true: not skipping)", reason)
		}
		t.Skip(reason)
	}
	explained := []string{"no capability:cap_capable tracepoint", "refuses fentry/fexit programs", "has no kprobes"}
	for _, s := range Survey() {
		if s.Err != nil {
			if !slices.ContainsFunc(explained, func(why string) bool { return strings.Contains(s.Err.Error(), why) }) {
				t.Errorf("%s: unexplained failure: %v", s.Backend, s.Err)
			}
			t.Logf("backend %s: unavailable: %v", s.Backend, s.Err)
			continue
		}
		t.Logf("backend %s: loads and attaches", s.Backend)
	}
	// With live events on, the verifier sees the code that streams checks
	// and exec details, which it drops as dead otherwise.
	for _, live := range []bool{false, true} {
		p, err := Open(Options{Startup: 10 * time.Second, Backend: Auto, LiveEvents: live, CheckInterval: time.Second})
		if err != nil {
			t.Fatalf("live events %v: %v", live, err)
		}
		defer p.Close()
		hooked := 0
		for section := range p.programs() {
			if !strings.HasPrefix(section, "iter/") {
				hooked++
			}
		}
		if len(p.links) != hooked {
			t.Fatalf("%d links for %d hooked programs", len(p.links), hooked)
		}
		if err := p.ListProcesses(); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Stats(); err != nil {
			t.Fatal(err)
		}
	}
	// --event-buffer-mb: the hooks share a buffer of the size asked.
	p, err := Open(Options{Backend: Auto, EventBufferBytes: 1 << 20})
	if err != nil {
		t.Fatalf("a 1 MiB event buffer: %v", err)
	}
	defer p.Close()
	if got := p.coll.Maps["events"].MaxEntries(); got != 1<<20 {
		t.Fatalf("event buffer of %d bytes, want 1 MiB", got)
	}
}

func TestDecodeSample(t *testing.T) {
	var raw capprofSampleEvent
	raw.Hdr.Type = uint32(capprofEventTypeEVENT_CAP_SAMPLE)
	raw.Key.Cap, raw.Key.Syscall, raw.Key.Flags = 21, 9, uint8(capprofCheckFlagCHECK_STEADY|capprofCheckFlagCHECK_INIT_USERNS)
	raw.StackBytes = 16
	raw.Stack[0], raw.Stack[1], raw.Stack[2] = 1, 2, 3
	s, ok := roundTrip(t, &raw).(*CheckSample)
	if !ok {
		t.Fatalf("decoded %T, want *CheckSample", s)
	}
	if s.Key.Cap != 21 || s.Key.Syscall != 9 || !s.Key.Steady || !s.Key.InitUserNS || len(s.Stack) != 2 || s.Stack[1] != 2 {
		t.Fatalf("decoded %+v", s)
	}
}

func TestDecodeCgroupEvent(t *testing.T) {
	var raw capprofCgroupEvent
	raw.Hdr.Type = uint32(capprofEventTypeEVENT_CGROUP)
	raw.Id, raw.ParentId, raw.Op, raw.Flags = 7, 5, uint32(capprofCgroupOpCGROUP_REMOVED), uint32(capprofTargetFlagTARGET_RUNTIME)
	for i, c := range "cri-containerd-abc.scope" {
		raw.Name[i] = int8(c)
	}
	e, ok := roundTrip(t, &raw).(*CgroupEvent)
	if !ok {
		t.Fatalf("decoded %T, want *CgroupEvent", e)
	}
	if e.ID != 7 || e.ParentID != 5 || !e.Removed || !e.Runtime || e.Name != "cri-containerd-abc.scope" {
		t.Fatalf("decoded %+v", e)
	}
}

// TestCgroupSubtreeTracking: in the kernel, a cgroup created below a target
// becomes one before any process enters it, with the parent's runtime flag;
// so does the cgroup of an armed pod, under either of the kubelet's naming
// schemes, anywhere in the tree; other cgroups do not; a removed target
// leaves the set.
func TestCgroupSubtreeTracking(t *testing.T) {
	needRoot(t)
	root := cgroup2Root(t)
	p := attached(t)
	events := make(chan Event, 64)
	go func() {
		for {
			ev, err := p.ReadEvent()
			if err != nil {
				close(events)
				return
			}
			events <- ev
		}
	}()
	next := func() *CgroupEvent {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if c, ok := ev.(*CgroupEvent); ok {
					return c
				}
			case <-time.After(2 * time.Second):
				return nil
			}
		}
	}
	base := filepath.Join(root, fmt.Sprintf("capprof-bpf-test-%d", os.Getpid()))
	mkdir := func(path string) uint64 {
		t.Helper()
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	var made []string
	defer func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	}()
	at := func(parts ...string) string {
		path := filepath.Join(append([]string{base}, parts...)...)
		made = append(made, path)
		return path
	}

	targetID := mkdir(at())
	if added, err := p.AddTarget(targetID, Target{Runtime: true}); err != nil || !added {
		t.Fatalf("AddTarget = %v, %v", added, err)
	}
	if added, err := p.AddTarget(targetID, Target{}); err != nil || added {
		t.Fatalf("AddTarget again = %v, %v; want false: it is a target already", added, err)
	}
	childID := mkdir(at("child"))
	if e := next(); e == nil || e.ID != childID || e.ParentID != targetID || e.Name != "child" || !e.Runtime || e.Removed {
		t.Fatalf("child of a target: event %+v, want created %d below %d with the runtime flag", e, childID, targetID)
	}
	grandchildID := mkdir(at("child", "container"))
	if e := next(); e == nil || e.ID != grandchildID || e.ParentID != childID {
		t.Fatalf("grandchild: event %+v, want %d below %d", e, grandchildID, childID)
	}

	const uid = "3d4b62ba-429b-4402-b0f8-dd0d4cad14b0"
	if err := p.ArmPod(uid); err != nil {
		t.Fatal(err)
	}
	if err := p.ArmPod("not-a-uid"); err == nil {
		t.Fatal("ArmPod accepted a malformed uid")
	}
	outside := mkdir(at("..", filepath.Base(base)+"-outside"))
	if e := next(); e != nil {
		t.Fatalf("an unarmed cgroup outside the targets: event %+v", e)
	}
	for _, name := range []string{"pod" + uid, "kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"} {
		id := mkdir(at("..", filepath.Base(base)+"-outside", name))
		if e := next(); e == nil || e.ID != id || e.ParentID != outside || e.Name != name || !e.Runtime {
			t.Fatalf("armed pod cgroup %s: event %+v, want created %d", name, e, id)
		}
	}
	mkdir(at("..", filepath.Base(base)+"-outside", "pod"+strings.Replace(uid, "3", "4", 1)))
	if e := next(); e != nil {
		t.Fatalf("another pod's cgroup: event %+v", e)
	}

	if err := os.Remove(made[2]); err != nil { // child/container
		t.Fatal(err)
	}
	if e := next(); e == nil || e.ID != grandchildID || !e.Removed {
		t.Fatalf("removed target: event %+v, want %d removed", e, grandchildID)
	}
	if added, err := p.AddTarget(grandchildID, Target{}); err != nil || !added {
		t.Fatalf("a removed target is not in the set any more: AddTarget = %v, %v", added, err)
	}
}

func cgroup2Root(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var fs unix.Statfs_t
		if unix.Statfs(dir, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir
		}
	}
	t.Fatal("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	return ""
}

// runtimeHelperEnv makes the test binary a helper process: "runtime" is a
// container runtime's process born into a pod's cgroup by
// clone3(CLONE_INTO_CGROUP), as crun's and runc 1.4+'s are; "workload" is
// what it executes after chroot. The steps are in TestRuntimeHelper.
const runtimeHelperEnv = "CAPPROF_BPF_TEST_HELPER"

// TestRuntimeHelper is the helper process of TestRuntimeInit; it does
// nothing in a normal run.
func TestRuntimeHelper(t *testing.T) {
	switch os.Getenv(runtimeHelperEnv) {
	case "runtime":
		// The runtime's setup: a CAP_SETUID check (setuid to its own uid).
		if err := unix.Setuid(0); err != nil {
			t.Fatal(err)
		}
		// The workload's cgroup.procs, kept open across the chroot.
		procs, err := os.OpenFile(os.Getenv("CAPPROF_BPF_TEST_SUB_PROCS"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(procs.Fd(), unix.F_SETFD, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chroot(os.Getenv("CAPPROF_BPF_TEST_ROOT")); err != nil {
			t.Fatal(err)
		}
		env := []string{runtimeHelperEnv + "=workload", fmt.Sprintf("CAPPROF_BPF_TEST_PROCS_FD=%d", procs.Fd())}
		t.Fatal(unix.Exec("/helper", []string{"/helper", "-test.run=^TestRuntimeHelper$"}, env))
	case "workload":
		// The workload: a CAP_SETGID check, then it moves itself into a
		// sub-cgroup (its mover is inside the target set) and checks
		// CAP_SETGID there again.
		if err := unix.Setgid(0); err != nil {
			t.Fatal(err)
		}
		var fd int
		fmt.Sscan(os.Getenv("CAPPROF_BPF_TEST_PROCS_FD"), &fd)
		if _, err := unix.Write(fd, []byte("0")); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setgid(0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRuntimeInit: a process born into a pod's target cgroup from outside
// the target set (clone3(CLONE_INTO_CGROUP): crun, runc 1.4+ exec) is the
// runtime's, its threads and executions of itself included, until it
// executes a program from another root (after chroot, pivot_root or setns
// into the container's mount namespace); then it is the workload's, also
// when it moves itself into a sub-cgroup.
func TestRuntimeInit(t *testing.T) {
	needRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := static.Check(self); err != nil {
		t.Skipf("the helper runs in a chroot holding only the test binary: %v", err)
	}
	root := t.TempDir()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "helper"), data, 0o755); err != nil {
		t.Fatal(err)
	}

	p := attachedDiscarding(t)
	cg, dir, id := targetCgroup(t, p, "runtime", Target{Runtime: true})
	sub := filepath.Join(cg, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(sub)
	var subSt unix.Stat_t
	if err := unix.Stat(sub, &subSt); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(self, "-test.run=^TestRuntimeHelper$")
	cmd.Env = []string{runtimeHelperEnv + "=runtime", "CAPPROF_BPF_TEST_ROOT=" + root, "CAPPROF_BPF_TEST_SUB_PROCS=" + filepath.Join(sub, "cgroup.procs")}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}

	checks, err := p.Checks()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range checks {
		switch {
		case c.CgroupID == id && c.Cap == capSetuid && c.Syscall == unix.SYS_SETUID:
			seen[fmt.Sprintf("setuid runtime=%v", c.RuntimeInit)]++
		case c.Cap == capSetgid && c.Syscall == unix.SYS_SETGID && (c.CgroupID == id || c.CgroupID == subSt.Ino):
			where := "cgroup"
			if c.CgroupID == subSt.Ino {
				where = "sub-cgroup"
			}
			seen[fmt.Sprintf("setgid in %s runtime=%v", where, c.RuntimeInit)]++
		}
	}
	want := map[string]int{"setuid runtime=true": 1, "setgid in cgroup runtime=false": 1, "setgid in sub-cgroup runtime=false": 1}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("checks by kind %v, want %v", seen, want)
	}
}

// The capabilities the helpers check.
const capSetgid, capSetuid = 6, 7

// movedHelperEnv makes the test binary the helper of TestRuntimeMovedIn and
// TestRunsCounted: a
// process that makes a capability check for each byte it reads, 'u' a
// CAP_SETUID one, 'g' a CAP_SETGID one, and answers each with a byte.
const movedHelperEnv = "CAPPROF_BPF_TEST_MOVED"

// init runs the helper of TestRuntimeMovedIn on the process's first thread
// (its thread group leader), with raw system calls: Go's setuid and setgid
// make the call on every thread, and threads the Go runtime starts while the
// process is being moved in are the runtime's for good (on_fork).
func init() {
	if os.Getenv(movedHelperEnv) == "" {
		return
	}
	runtime.LockOSThread()
	b := make([]byte, 1)
	for {
		if _, err := os.Stdin.Read(b); err != nil {
			os.Exit(0)
		}
		nr := uintptr(unix.SYS_SETGID)
		if b[0] == 'u' {
			nr = unix.SYS_SETUID
		}
		if _, _, errno := unix.RawSyscall(nr, 0, 0, 0); errno != 0 {
			fmt.Fprintln(os.Stderr, errno)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	}
}

// enteringWindow is ENTERING_WINDOW_NS (lib/target.h).
const enteringWindow = 250 * time.Millisecond

// TestRuntimeMovedIn: a process that a task outside the target set moves
// into an empty pod cgroup (runc 1.1 writes its init's pid to cgroup.procs)
// is the runtime's from its first instruction there. The kernel reports the
// move (cgroup_attach_task) only after the process is in, running on another
// CPU meanwhile; capprof knows of it from the start of the move
// (cgroup_notify_populated), which the case "unreported" shows by leaving the
// report out: the first process checks within enteringWindow and is the
// runtime's from then on; a second one moved in after the window is not.
func TestRuntimeMovedIn(t *testing.T) {
	self, p := helperProbe(t)
	for _, reported := range []bool{true, false} {
		name := map[bool]string{true: "reported", false: "unreported"}[reported]
		// Both cgroups live until the test ends: a removed cgroup's id is
		// given to the next one, and the counts are the probe's since it started.
		cg, _, id := targetCgroup(t, p, "moved-"+name, Target{Runtime: true})
		t.Run(name, func(t *testing.T) {
			if !reported {
				detachProgram(t, p, "on_cgroup_attach")
			}
			enteringNs := func() uint64 {
				t.Helper()
				var target capprofTarget
				if err := p.coll.Maps["targets"].Lookup(id, &target); err != nil {
					t.Fatal(err)
				}
				return target.EnteringNs
			}

			first, moved := movedHelper(t, self, cg)
			first("u")
			if !reported {
				if enteringNs() == 0 {
					t.Fatal("the target does not say the runtime is moving a process in")
				}
				if since := time.Since(moved); since >= enteringWindow {
					t.Fatalf("the helper's first check came %v after the move, past the window of %v", since, enteringWindow)
				}
				time.Sleep(time.Until(moved.Add(enteringWindow + 50*time.Millisecond)))
				second, _ := movedHelper(t, self, cg)
				second("g")
			}
			first("g")
			if reported && enteringNs() != 0 {
				t.Fatal("the move was reported, yet the target still says the runtime is moving a process in")
			}

			seen := map[string]int{}
			for _, c := range helperChecks(t, p, id) {
				seen[fmt.Sprintf("cap %d runtime=%v", c.Cap, c.RuntimeInit)]++
			}
			want := map[string]int{"cap 7 runtime=true": 1, "cap 6 runtime=true": 1}
			if !reported {
				want["cap 6 runtime=false"] = 1 // the second process
			}
			if fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Fatalf("checks %v, want %v", seen, want)
			}
		})
	}
}

// helper is a running helper of movedHelperEnv: checks sends it kinds and
// waits for its answers; end closes its stdin and waits for it to exit.
type helper struct {
	pid    int
	checks func(kinds string)
	end    func()
}

// startHelper starts the helper of movedHelperEnv with attr; it ends with
// the test if not before.
func startHelper(t *testing.T, self string, attr *syscall.SysProcAttr) helper {
	t.Helper()
	cmd := exec.Command(self)
	cmd.Env = []string{movedHelperEnv + "=1"}
	cmd.SysProcAttr = attr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ended bool
	end := func() {
		if ended {
			return
		}
		ended = true
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}
	t.Cleanup(end)
	return helper{pid: cmd.Process.Pid, end: end, checks: func(kinds string) {
		t.Helper()
		if _, err := stdin.Write([]byte(kinds)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(stdout, make([]byte, len(kinds))); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}}
}

// movedHelper starts the helper outside the target set and moves it into the
// cgroup dir as a task outside the target set (the test); it returns the
// helper's checks and when it was moved.
func movedHelper(t *testing.T, self, dir string) (func(kinds string), time.Time) {
	t.Helper()
	h := startHelper(t, self, nil)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(h.pid)), 0); err != nil {
		t.Fatal(err)
	}
	return h.checks, time.Now()
}

// TestRunsCounted: checks of one key in a row are counted in the thread's
// run and reach the aggregation when the key changes, when the thread exits
// and when the probe is detached; a snapshot while recording includes the
// runs in progress. Every count is exact at each of those points.
func TestRunsCounted(t *testing.T) {
	self, p := helperProbe(t)
	start := func(name string) (uint64, helper) {
		t.Helper()
		_, dir, id := targetCgroup(t, p, "runs-"+name, Target{})
		return id, startHelper(t, self, &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())})
	}
	counts := func(cgroup uint64) string {
		t.Helper()
		n := map[uint8]uint64{}
		for _, c := range helperChecks(t, p, cgroup) {
			n[c.Cap] += c.Count
		}
		return fmt.Sprintf("setuid %d, setgid %d", n[capSetuid], n[capSetgid])
	}

	exiting, exitingHelper := start("exiting")
	exitingHelper.checks(strings.Repeat("u", 300))
	exitingHelper.end() // it exits with its run in progress
	if got, want := counts(exiting), "setuid 300, setgid 0"; got != want {
		t.Errorf("after the thread exited: %s, want %s", got, want)
	}

	running, runningHelper := start("running")
	runningHelper.checks(strings.Repeat("u", 500) + "ggg" + strings.Repeat("u", 200))
	if got, want := counts(running), "setuid 700, setgid 3"; got != want {
		t.Errorf("while recording, a run in progress: %s, want %s", got, want)
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	if got, want := counts(running), "setuid 700, setgid 3"; got != want {
		t.Errorf("after Detach: %s, want %s", got, want)
	}
	runningHelper.checks("u") // not recorded any more
	if got, want := counts(running), "setuid 700, setgid 3"; got != want {
		t.Errorf("a check after Detach: %s, want %s", got, want)
	}
}

// detachProgram detaches the probe's program name from its hook for the rest
// of the test.
func detachProgram(t *testing.T, p *Probe, name string) {
	t.Helper()
	info, err := p.coll.Programs[name].Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	for i, l := range p.links {
		li, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		if li.Program == id {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			p.links = slices.Delete(p.links, i, i+1)
			return
		}
	}
	t.Fatalf("program %s is not attached", name)
}

// needRoot skips a test that loads eBPF programs unless root; under CI=true
// it fails instead.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("cannot run: loading eBPF programs needs root (CI=true: not skipping)")
	}
	t.Skip("loading eBPF programs needs root")
}

// attached is a probe of the backend auto picks, attached, and closed when
// the test ends.
func attached(t *testing.T) *Probe {
	t.Helper()
	p, err := Open(Options{Startup: time.Second, Backend: Auto})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// helperChecks is p's aggregated CAP_SETUID and CAP_SETGID checks in cgroup:
// the helpers' checks.
func helperChecks(t *testing.T, p *Probe, cgroup uint64) []Check {
	t.Helper()
	checks, err := p.Checks()
	if err != nil {
		t.Fatal(err)
	}
	var out []Check
	for _, c := range checks {
		if c.CgroupID == cgroup && (c.Cap == capSetuid || c.Cap == capSetgid) {
			out = append(out, c)
		}
	}
	return out
}

// targetCgroup makes a cgroup2 directory for the test, removed when it
// ends, and adds it to p's targets as target; it returns its path, the
// directory open (for clone3(CLONE_INTO_CGROUP)) and its id.
func targetCgroup(t *testing.T, p *Probe, name string, target Target) (string, *os.File, uint64) {
	t.Helper()
	path := filepath.Join(cgroup2Root(t), fmt.Sprintf("capprof-bpf-%s-%d", name, os.Getpid()))
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	dir, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddTarget(st.Ino, target); err != nil {
		t.Fatal(err)
	}
	return path, dir, st.Ino
}

// helperProbe is the test binary, which the helper processes run, and an
// attached probe whose events are thrown away; it skips unless root.
func helperProbe(t *testing.T) (string, *Probe) {
	t.Helper()
	needRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self, attachedDiscarding(t)
}

// attachedDiscarding is attached(t) with its events read and thrown away.
func attachedDiscarding(t *testing.T) *Probe {
	t.Helper()
	p := attached(t)
	go func() {
		for {
			if _, err := p.ReadEvent(); err != nil {
				return
			}
		}
	}()
	return p
}

// TestOpenFallsBackWhenAttachFails: --probe auto takes the next backend
// when one loads but does not attach. The first backend that works here is
// made to fail attaching; Open must return the next one that works, or,
// where none does (a kernel with one backend), say why the first failed.
func TestOpenFallsBackWhenAttachFails(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("loading eBPF programs needs root (CI=true: not skipping)")
		}
		t.Skip("loading eBPF programs needs root")
	}
	var working []Backend
	for _, s := range Survey() {
		if s.Err == nil {
			working = append(working, s.Backend)
		}
	}
	if len(working) == 0 {
		t.Fatal("no backend works here")
	}
	refused := working[0]
	defer func(attach func(*Probe) error) { attachProbe = attach }(attachProbe)
	attachProbe = func(p *Probe) error {
		if p.backend == refused {
			return errors.New("attach refused by the test")
		}
		return p.Attach()
	}
	p, err := Open(Options{Backend: Auto})
	if len(working) == 1 {
		if err == nil || !strings.Contains(err.Error(), string(refused)+": attach refused by the test") {
			t.Fatalf("Open with the only working backend refused: %v, want the reason", err)
		}
		t.Logf("only %s works here: the fallback itself is tested on kernels with two (the kernel matrix)", refused)
		return
	}
	if err != nil {
		t.Fatalf("Open: %v, want %s", err, working[1])
	}
	defer p.Close()
	if p.Backend() != working[1] {
		t.Fatalf("Open took %s, want %s after %s failed to attach", p.Backend(), working[1], refused)
	}
}
