package recorder

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
)

// Stacks as bpf_get_stack returned them on Linux 6.18 (innermost first).
func TestClassifyStack(t *testing.T) {
	tests := []struct {
		name     string
		stack    string
		class    v1alpha1.AuditClass
		callSite string
	}{
		{"bind low port", "bpf_prog_4a17_on_cap_capable bpf_trace_run5 cap_capable security_capable ns_capable __inet_bind inet_bind_sk __sys_bind",
			v1alpha1.Audited, "__inet_bind"},
		{"chown", "bpf_prog_4a17_on_cap_capable bpf_trace_run5 cap_capable security_capable capable_wrt_inode_uidgid setattr_prepare ext4_setattr notify_change chown_common",
			v1alpha1.Audited, "setattr_prepare"},
		{"mmap accounting", "bpf_prog_4a17_on_cap_capable bpf_trace_run5 cap_capable security_vm_enough_memory_mm __mmap_region do_mmap",
			v1alpha1.NoAudit, "security_vm_enough_memory_mm"},
		{"older kernels keep the hook's frame", "cap_capable cap_vm_enough_memory security_vm_enough_memory_mm do_brk_flags",
			v1alpha1.NoAudit, "cap_vm_enough_memory"},
		{"noaudit probe", "bpf_trace_run5 cap_capable security_capable ns_capable_noaudit proc_pid_permission",
			v1alpha1.NoAudit, "proc_pid_permission"},
		{"setuid", "bpf_trace_run5 cap_capable security_capable ns_capable_setid __sys_setuid do_syscall_64",
			v1alpha1.InSetID, "__sys_setuid"},
		{"fexit: a trampoline per attachment", "bpf_prog_9f2a_on_cap_capable_exit bpf_trampoline_6442521597 cap_capable security_capable ns_capable_setid __sys_setuid do_syscall_64",
			v1alpha1.InSetID, "__sys_setuid"},
		{"kretprobe: cap_capable has returned", "bpf_prog_1c_on_cap_capable_return trace_call_bpf kretprobe_perf_func kretprobe_dispatcher rethook_trampoline_handler arch_rethook_handler arch_rethook_trampoline security_capable capable_wrt_inode_uidgid setattr_prepare notify_change",
			v1alpha1.Audited, "setattr_prepare"},
		{"no stack", "", v1alpha1.UnknownAudit, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			class, site := classifyStack(strings.Fields(tt.stack))
			if class != tt.class || site != tt.callSite {
				t.Fatalf("classifyStack = %s, %q; want %s, %q", class, site, tt.class, tt.callSite)
			}
		})
	}
}

func TestKernelSymbols(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kallsyms")
	data := "ffffffff81000000 T _stext\n" +
		"ffffffff81368210 T capable\n" +
		"ffffffff81368280 T ns_capable_noaudit\n" +
		"ffffffff81368300 d some_data\n" +
		"ffffffff81a82a80 t cap_capable\t[kernel]\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{
		0xffffffff81368211: "capable",            // return address just past the start
		0xffffffff81368280: "capable",            // a call at the end of capable returns here
		0xffffffff813682a0: "ns_capable_noaudit", // data symbols do not end functions
		0xffffffff81a82b00: "cap_capable",
		0xffffffff80000000: "",
	}
	ks, err := loadKernelSymbols(path, slices.Collect(maps.Keys(want)))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.names) != 3 {
		t.Errorf("kept %d names (%v), want only the 3 functions asked for", len(ks.names), ks.names)
	}
	for addr, want := range want {
		if got := ks.function(addr); got != want {
			t.Errorf("function(%#x) = %q, want %q", addr, got, want)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	if got := unescapeMountPath(`/sys/fs/my\040cgroup`); got != "/sys/fs/my cgroup" {
		t.Fatalf("got %q", got)
	}
	if got := unescapeMountPath(`/plain`); got != "/plain" {
		t.Fatalf("got %q", got)
	}
}

func TestWaitStatusAndSyscallNames(t *testing.T) {
	for status, want := range map[int32]string{0: "0", 7 << 8: "7", 9: "SIGKILL", 2: "SIGINT"} {
		if got := waitStatusString(status); got != want {
			t.Errorf("waitStatusString(%#x) = %q, want %q", status, got, want)
		}
	}
	for nr, want := range map[int32]string{-1: "none", 0: "read", 105: "setuid", 49: "bind", 99999: "syscall_99999"} {
		if got := syscallName(nr); got != want {
			t.Errorf("syscallName(%d) = %q, want %q", nr, got, want)
		}
	}
}

// TestCollector feeds a process tree's events and checks the container built.
func TestCollector(t *testing.T) {
	const cg = 42
	self := bpf.ExeID{Dev: 1, Ino: 1}
	server := bpf.ExeID{Dev: 8<<20 | 1, Ino: 100}
	names := newTargetNames()
	names.addCommand(cg, &namedTarget{identity: v1alpha1.Identity{Name: "web"}})
	c := newCollector(self, names)
	hdr := func(tgid uint32) bpf.Header { return bpf.Header{PID: tgid, TGID: tgid, CgroupID: cg} }
	root := bpf.Creds{Effective: 1<<41 - 1, Permitted: 1<<41 - 1}

	c.handle(&bpf.Exec{Header: hdr(10), Exe: server, ExePath: "/srv/server", After: root})
	c.handle(&bpf.Fork{Header: hdr(10), ChildPID: 11})
	c.handle(&bpf.CredChange{Header: hdr(11), Exe: server, Syscall: 105, Before: root, After: bpf.Creds{UID: 65534, EUID: 65534}})
	c.handle(&bpf.Exit{Header: hdr(11), Status: 9})                                  // the forked child, killed
	c.handle(&bpf.Exit{Header: hdr(10), Status: 0})                                  // the server itself
	c.handle(&bpf.Exit{Header: hdr(99), Status: 0})                                  // unknown process: ignored
	c.handle(&bpf.Exec{Header: bpf.Header{TGID: 5, CgroupID: 7}, ExePath: "/other"}) // not a target
	bind := bpf.CheckKey{CgroupID: cg, Exe: server, Syscall: 49, Cap: 10, InitUserNS: true}
	c.handle(&bpf.FirstCheck{Header: hdr(10), Key: bind, EUID: 0, ExePath: "/srv/server"})

	counted := bpf.Check{CheckKey: bind, Count: 3}
	unseen := bpf.Check{CheckKey: bpf.CheckKey{CgroupID: cg, Exe: bpf.ExeID{Dev: 8<<20 | 2, Ino: 7}, Syscall: -1, Cap: 21, Denied: true, OtherCred: true, RuntimeInit: true}, Count: 1}
	launcher := bpf.Check{CheckKey: bpf.CheckKey{CgroupID: cg, Exe: self, Syscall: 59, Cap: 21, InitUserNS: true}, Count: 1}
	seeds, _ := names.recorded()
	containers, err := c.containers([]bpf.Check{counted, unseen, launcher}, seeds)
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 1 {
		t.Fatalf("containers %+v, want only web", containers)
	}
	got := containers[0]
	want := v1alpha1.Container{
		Identity: v1alpha1.Identity{Name: "web"},
		Capabilities: []v1alpha1.CapabilityChecks{
			{Capability: 10, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 3, Sources: []v1alpha1.Source{
				// No stack in this event: the audit class is unknown.
				{Executable: "/srv/server", Syscall: "bind", Audit: v1alpha1.UnknownAudit, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.StartupPhase, Count: 3},
			}},
			{Capability: 21, Verdict: v1alpha1.Denied, UserNamespace: v1alpha1.NestedNamespace, Count: 1, Sources: []v1alpha1.Source{
				{Executable: "(container runtime, inode 7 on device 8:2)", Syscall: "none", Audit: v1alpha1.UnknownAudit, Credentials: v1alpha1.OtherTaskCredentials, Phase: v1alpha1.RuntimeInitPhase, Count: 1},
			}},
		},
		Execs: []v1alpha1.Exec{{Executable: "/srv/server", Effective: v1alpha1.CapSet(root.Effective), Permitted: v1alpha1.CapSet(root.Permitted),
			Count: 1, ExitStatuses: []string{"0", "SIGKILL"}}},
		CredentialChanges: []v1alpha1.CredentialChange{{Executable: "/srv/server", Syscall: "setuid", Source: v1alpha1.FromSyscall,
			Before: v1alpha1.Credentials{Effective: v1alpha1.CapSet(root.Effective), Permitted: v1alpha1.CapSet(root.Permitted)},
			After:  v1alpha1.Credentials{UID: 65534, EUID: 65534}, Count: 1}},
		UIDs:     []uint32{0, 65534},
		Coverage: &v1alpha1.Coverage{Instances: 1, FromStart: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("container:\n got %+v\nwant %+v", got, want)
	}
	// A cluster agent reads what was recorded again and again: containers
	// changes nothing it reads.
	again, err := c.containers([]bpf.Check{counted, unseen, launcher}, seeds)
	if err != nil || !reflect.DeepEqual(again, containers) {
		t.Fatalf("second read:\n got %+v (%v)\nwant %+v", again, err, containers)
	}
	// While recording, a check whose first event is not handled yet waits.
	if got := c.described([]bpf.Check{counted, unseen}); len(got) != 1 || got[0] != counted {
		t.Fatalf("described = %+v, want only the check whose first event was handled", got)
	}
}

// TestCollectorRestartedContainer: two cgroups of one container (a restart)
// become one entry; a cgroup nobody named (a pod sandbox) is left out.
func TestCollectorRestartedContainer(t *testing.T) {
	names := newTargetNames()
	c := newCollector(bpf.ExeID{Dev: 1, Ino: 1}, names)
	server := bpf.ExeID{Dev: 2, Ino: 2}
	owner := &v1alpha1.Owner{Kind: "Deployment", Name: "web"}
	identity := v1alpha1.Identity{Name: "nginx", Namespace: "shop", Owner: owner, Kind: v1alpha1.RegularContainer,
		Images: []string{"nginx:1"}, Pods: []string{"web-1"}}
	for i, id := range []string{strings.Repeat("a", 64), strings.Repeat("b", 64)} {
		names.addContainer(&namedTarget{identity: identity, containerID: id, podName: "web-1"})
		c.handle(&bpf.CgroupEvent{ID: uint64(i + 1), ParentID: 9, Name: id})
	}
	c.handle(&bpf.CgroupEvent{ID: 3, ParentID: 9, Name: strings.Repeat("c", 64)}) // the sandbox
	bind := func(cg uint64) bpf.Check {
		return bpf.Check{CheckKey: bpf.CheckKey{CgroupID: cg, Exe: server, Syscall: 49, Cap: 10, InitUserNS: true}, Count: 2}
	}
	seeds, _ := names.recorded()
	containers, err := c.containers([]bpf.Check{bind(1), bind(2), bind(3)}, seeds)
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 1 {
		t.Fatalf("containers %+v, want one", containers)
	}
	got := containers[0]
	if got.Key() != identity.Key() || got.Kind != v1alpha1.RegularContainer || !reflect.DeepEqual(got.Pods, []string{"web-1"}) ||
		!reflect.DeepEqual(got.Images, []string{"nginx:1"}) || got.Capabilities[0].Count != 4 ||
		!reflect.DeepEqual(got.Coverage, &v1alpha1.Coverage{Instances: 2, FromStart: 2}) {
		t.Fatalf("container %+v, want shop/Deployment/web/nginx with both instances' 4 checks, both from their start", got)
	}
}

// TestSymbolCache: an address is looked up in kallsyms once, named or not;
// only addresses not seen before make the file be read again.
func TestSymbolCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kallsyms")
	write := func(data string) {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ffffffff81368210 T capable\nffffffff81a82a80 t cap_capable\n")
	c := symbolCache{}
	if err := c.name(path, []uint64{0xffffffff81368211, 0xffffffff81a82b00}); err != nil {
		t.Fatal(err)
	}
	// Another file with the same addresses: what was named stays, and a
	// new address is read from the new file.
	write("ffffffff81368210 T renamed\nffffffff81a82a80 t renamed_too\nffffffff81b00000 T later\n")
	if err := c.name(path, []uint64{0xffffffff81368211, 0xffffffff81b00010}); err != nil {
		t.Fatal(err)
	}
	want := symbolCache{0xffffffff81368211: "capable", 0xffffffff81a82b00: "cap_capable", 0xffffffff81b00010: "later"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("names %v, want %v", c, want)
	}
	// A file without addresses: the new address stays unnamed for good.
	write("0000000000000000 T capable\n")
	if err := c.name(path, []uint64{0x42}); err == nil || c[0x42] != "" {
		t.Fatalf("zero addresses: %v, name %q", err, c[0x42])
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := c.name(path, []uint64{0x42, 0xffffffff81368211}); err != nil {
		t.Fatalf("known addresses read the file again: %v", err)
	}
}

// TestClassifySampledStacks: a key's stacks are sampled; when they disagree
// the key takes the class that can make it required, and every call site.
func TestClassifySampledStacks(t *testing.T) {
	c := newCollector(bpf.ExeID{}, newTargetNames())
	c.symbols = symbolCache{0x101: "cap_capable", 0x201: "security_capable", 0x301: "ns_capable", 0x401: "security_vm_enough_memory_mm", 0x501: "__inet_bind"}
	key := bpf.CheckKey{CgroupID: 1, Cap: 21, Syscall: 9}
	noaudit := []uint64{0x101, 0x401}
	audited := []uint64{0x101, 0x201, 0x301, 0x501}
	if class, sites := c.classify(key); class != v1alpha1.UnknownAudit || sites != nil {
		t.Fatalf("no stacks: %s %v, want unknown", class, sites)
	}
	c.handle(&bpf.FirstCheck{Key: key, Stack: noaudit})
	c.handle(&bpf.CheckSample{Key: key, Stack: noaudit})
	if class, sites := c.classify(key); class != v1alpha1.NoAudit || !reflect.DeepEqual(sites, []string{"security_vm_enough_memory_mm"}) {
		t.Fatalf("noaudit stacks: %s %v", class, sites)
	}
	c.handle(&bpf.CheckSample{Key: key, Stack: audited})
	if class, sites := c.classify(key); class != v1alpha1.Audited || !reflect.DeepEqual(sites, []string{"__inet_bind", "security_vm_enough_memory_mm"}) {
		t.Fatalf("mixed stacks: %s %v, want audited with both call sites", class, sites)
	}
	if n := len(c.stacks[key]); n != 2 {
		t.Fatalf("%d stacks kept, want the 2 distinct ones", n)
	}
}

// TestCollectorPhasesAndOutcomes: steady-state checks and a denied check's
// followed syscalls reach the profile.
func TestCollectorPhasesAndOutcomes(t *testing.T) {
	names := newTargetNames()
	names.addCommand(5, &namedTarget{identity: v1alpha1.Identity{Name: "app"}})
	c := newCollector(bpf.ExeID{Dev: 1, Ino: 1}, names)
	nice := bpf.Check{CheckKey: bpf.CheckKey{CgroupID: 5, Exe: bpf.ExeID{Dev: 2, Ino: 2}, Syscall: 141, Cap: 23, Denied: true, InitUserNS: true, Steady: true},
		Count: 4, SyscallFailed: 3, SyscallSucceeded: 1}
	containers, err := c.containers([]bpf.Check{nice}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := containers[0].Capabilities[0].Sources[0]
	if s.Phase != v1alpha1.SteadyPhase || s.SyscallFailed != 3 || s.SyscallSucceeded != 1 || s.Syscall != "setpriority" || s.Outcome() != v1alpha1.SyscallFailed {
		t.Fatalf("source %+v, want steady setpriority with 3 failed and 1 succeeded syscalls", s)
	}
}

// TestAuditClassFromOptions: a check whose options the probe read (fexit,
// kprobe) takes its class from them, whatever its stacks suggest; others
// keep the stacks' class and say so.
func TestAuditClassFromOptions(t *testing.T) {
	noauditStack := []uint64{0x101, 0x201}
	tests := []struct {
		name  string
		check bpf.CheckKey
		class v1alpha1.AuditClass
		from  v1alpha1.AuditSource
	}{
		{"options: audited", bpf.CheckKey{Cap: 21, AuditKnown: true}, v1alpha1.Audited, v1alpha1.AuditFromOptions},
		{"options: noaudit", bpf.CheckKey{Cap: 22, AuditKnown: true, NoAudit: true}, v1alpha1.NoAudit, v1alpha1.AuditFromOptions},
		{"options: insetid", bpf.CheckKey{Cap: 23, AuditKnown: true, InSetID: true}, v1alpha1.InSetID, v1alpha1.AuditFromOptions},
		{"stack", bpf.CheckKey{Cap: 24}, v1alpha1.NoAudit, v1alpha1.AuditFromStack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(bpf.ExeID{}, newTargetNames())
			c.symbols = symbolCache{0x101: "cap_capable", 0x201: "security_vm_enough_memory_mm"}
			c.handle(&bpf.FirstCheck{Key: tt.check, Stack: noauditStack})
			class, from, sites := c.auditClass(tt.check)
			if class != tt.class || from != tt.from || !reflect.DeepEqual(sites, []string{"security_vm_enough_memory_mm"}) {
				t.Fatalf("auditClass = %s from %q at %v, want %s from %q", class, from, sites, tt.class, tt.from)
			}
		})
	}
	c := newCollector(bpf.ExeID{}, newTargetNames())
	if class, from, _ := c.auditClass(bpf.CheckKey{Cap: 1}); class != v1alpha1.UnknownAudit || from != "" {
		t.Fatalf("no stack, no options: %s from %q", class, from)
	}
}

func TestChangeSyscallAttribution(t *testing.T) {
	const (
		setgid    = 106
		setresuid = 117
		capset    = 126
	)
	root := bpf.Creds{Permitted: 0x1ff, Effective: 0x1ff, Bounding: 0x1ff}
	with := func(f func(*bpf.Creds)) bpf.Creds { c := root; f(&c); return c }
	dropEUID := with(func(c *bpf.Creds) { c.EUID, c.FSUID, c.Effective = 65534, 65534, 0 })
	for _, tc := range []struct {
		name       string
		syscall    int32
		fromCommit bool
		after      bpf.Creds
		want       string
	}{
		{"uid call changes uids and caps", setresuid, false, dropEUID, "setresuid"},
		{"gid call cannot change uids", setgid, false, dropEUID, "unknown"},
		{"gid call changes gids", setgid, false, with(func(c *bpf.Creds) { c.GID = 7 }), "setgid"},
		{"capset changes caps", capset, false, with(func(c *bpf.Creds) { c.Inheritable = 1 }), "capset"},
		{"no call checked", -1, false, dropEUID, "unknown"},
		{"bounding set is prctl's", setresuid, false, with(func(c *bpf.Creds) { c.Bounding = 1 }), "unknown"},
		{"commit_creds names its own syscall", setgid, true, dropEUID, "setgid"},
	} {
		e := &bpf.CredChange{Syscall: tc.syscall, FromCommit: tc.fromCommit, Before: root, After: tc.after}
		if got := changeSyscall(e); got != tc.want {
			t.Errorf("%s: changeSyscall = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestCheckOutputs: the profile and the events cannot share a file, however
// the paths are spelled; a directory is neither.
func TestCheckOutputs(t *testing.T) {
	dir := t.TempDir()
	profilePath := filepath.Join(dir, "p.json")
	if err := os.WriteFile(profilePath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(profilePath, filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		events, want string
	}{
		{profilePath, "is the profile's file (-o)"},
		{filepath.Join(dir, ".", "p.json"), "is the profile's file (-o)"},
		{filepath.Join(dir, "link.json"), "is the profile's file (-o)"},
		{dir, "is a directory"},
		{filepath.Join(dir, "events.json"), ""},
		{"-", ""},
	} {
		err := checkOutputs(profilePath, &EventsConfig{Output: tt.events})
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--events %q: %v, want %q", tt.events, err, tt.want)
		}
	}
}

// TestCollectorBounds: what a recording keeps grows with what is distinct,
// not with how often it happens, and is bounded where that is unbounded too.
func TestCollectorBounds(t *testing.T) {
	const cg = 42
	names := newTargetNames()
	names.addCommand(cg, &namedTarget{identity: v1alpha1.Identity{Name: "loop"}})
	c := newCollector(bpf.ExeID{Dev: 1, Ino: 1}, names)
	hdr := func(tgid uint32) bpf.Header { return bpf.Header{PID: tgid, TGID: tgid, CgroupID: cg} }
	const runs = 100000
	for i := range uint32(runs) {
		c.handle(&bpf.Exec{Header: hdr(1000 + i), Exe: bpf.ExeID{Ino: 2}, ExePath: "/bin/true", After: bpf.Creds{UID: 1000, EUID: 1000}})
		c.handle(&bpf.CredChange{Header: hdr(1000 + i), Exe: bpf.ExeID{Ino: 2}, Syscall: 105, After: bpf.Creds{UID: 1000 + i%3, EUID: 1000 + i%3}})
		c.handle(&bpf.Exit{Header: hdr(1000 + i), Status: 1 << 8})
	}
	for i := range uint32(maxExecutables + 10) {
		c.handle(&bpf.Exec{Header: hdr(10), Exe: bpf.ExeID{Ino: 10 + uint64(i)}, ExePath: fmt.Sprintf("/tmp/new-%d", i)})
	}
	if len(c.exePaths) > maxExecutables || c.execsNotKept != 11 { // /bin/true is one of the distinct ones
		t.Errorf("%d executables named, %d execs not kept; want at most %d named and 11 not kept", len(c.exePaths), c.execsNotKept, maxExecutables)
	}
	seeds, _ := names.recorded()
	containers, err := c.containers(nil, seeds)
	if err != nil {
		t.Fatal(err)
	}
	got := containers[0]
	if len(got.Execs) != maxExecutables || got.Execs[0].Executable != "/bin/true" || got.Execs[0].Count != runs ||
		!slices.Equal(got.Execs[0].ExitStatuses, []string{"1"}) {
		t.Errorf("%d exec entries, the first %+v; want %d, /bin/true counted %d times with exit status 1", len(got.Execs), got.Execs[0], maxExecutables, runs)
	}
	if len(got.CredentialChanges) != 3 || !slices.Equal(got.UIDs, []uint32{0, 1000, 1001, 1002}) {
		t.Errorf("%d credential changes and uids %v; want 3 and [0 1000 1001 1002]", len(got.CredentialChanges), got.UIDs)
	}
}

// TestUndecodableEventsCounted: an event that cannot be decoded is counted
// and the reader reads on, instead of stopping for the rest of the recording.
func TestUndecodableEventsCounted(t *testing.T) {
	names := newTargetNames()
	names.addCommand(7, &namedTarget{identity: v1alpha1.Identity{Name: "app"}})
	c := newCollector(bpf.ExeID{}, names)
	r := &scriptedReader{events: []any{
		&bpf.DecodeError{Err: errors.New("short exec event")},
		&bpf.Exec{Header: bpf.Header{TGID: 5, CgroupID: 7}, ExePath: "/app"},
		&bpf.DecodeError{Err: errors.New("unknown event type 99")},
	}}
	if err := (dispatcher{col: c}).consume(r.ReadEvent); err != nil {
		t.Fatal(err)
	}
	if n := c.undecodable.Load(); n != 2 || c.nExecs != 1 {
		t.Fatalf("%d undecodable, %d execs; want 2 and the exec after the first", n, c.nExecs)
	}
}

// scriptedReader hands out its events (or errors) in order, then ErrClosed.
type scriptedReader struct{ events []any }

func (r *scriptedReader) ReadEvent() (bpf.Event, error) {
	if len(r.events) == 0 {
		return nil, bpf.ErrClosed
	}
	next := r.events[0]
	r.events = r.events[1:]
	if err, ok := next.(error); ok {
		return nil, err
	}
	return next.(bpf.Event), nil
}

// TestUnreadableKernelSymbols: kallsyms with zero addresses (kptr_restrict,
// no CAP_SYSLOG) or missing is said at the start; at the end the checks
// whose stacks cannot be resolved are classed unknown, never audited, and
// the profile is still made.
func TestUnreadableKernelSymbols(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "kallsyms")
	os.WriteFile(zeros, []byte("0000000000000000 T _stext\n0000000000000000 T capable\n"), 0o644)
	if err := checkKernelSymbols(zeros); err == nil || !strings.Contains(err.Error(), "shows no addresses (kernel.kptr_restrict, or no CAP_SYSLOG)") {
		t.Errorf("zero addresses: %v", err)
	}
	if err := checkKernelSymbols(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing kallsyms passed")
	}
	for _, path := range []string{zeros, filepath.Join(dir, "missing")} {
		names := newTargetNames()
		names.addCommand(7, &namedTarget{identity: v1alpha1.Identity{Name: "app"}})
		c := newCollector(bpf.ExeID{}, names)
		c.kallsyms = path
		mmap := bpf.CheckKey{CgroupID: 7, Exe: bpf.ExeID{Ino: 3}, Syscall: 9, Cap: 21, InitUserNS: true}
		c.handle(&bpf.FirstCheck{Header: bpf.Header{TGID: 5, CgroupID: 7}, Key: mmap, ExePath: "/app", Stack: []uint64{0xffffffff81368211}})
		seeds, _ := names.recorded()
		containers, err := c.containers([]bpf.Check{{CheckKey: mmap, Count: 4}}, seeds)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if src := containers[0].Capabilities[0].Sources[0]; src.Audit != v1alpha1.UnknownAudit || c.symbolsErr == nil {
			t.Errorf("%s: source %+v (symbols error %v), want the audit class unknown and the reason kept", path, src, c.symbolsErr)
		}
	}
}
