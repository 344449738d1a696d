package recorder

import (
	"encoding/base64"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
)

// The live events of each kind of probe event, in Tetragon's shapes
// (events package): process_exec, process_exit and process_kprobe for
// capability checks and credential changes.

func (s *liveStream) onExec(e *bpf.Exec) {
	rates := map[rateKey]*events.ProcessKprobe{}
	if e.Existing {
		if _, known := s.procs.get(e.Exec); known {
			return // listed again when another target was added
		}
	} else if prev, ok := s.procs.current(e.TGID); ok && prev != e.Exec {
		s.end(prev, e.Time) // the process's previous program is gone
	} else if p, known := s.procs.get(prev); ok && known {
		rates = p.rates // its checks were named before the exec was known
	}
	p := &liveProcess{proc: s.execProcess(e), parent: e.Parent, rates: rates, cgroup: e.CgroupID}
	s.procs.start(e.Exec, p)
	exec := &events.ProcessExec{Process: p.proc, Parent: s.process(e.Parent)}
	if e.Details != nil {
		exec.Privileged = s.privileged(e.After, e.Details)
	}
	s.write(&events.Event{ProcessExec: exec}, e.Time)
}

// execProcess is the process an exec (or an existing process) starts.
func (s *liveStream) execProcess(e *bpf.Exec) *events.Process {
	flags := []string{"execve"}
	binary := e.Filename
	var args []string
	if e.Details != nil {
		args = e.Details.Args
	}
	if e.Existing {
		flags = []string{"procFS"}
		args = s.procArgs(e.TGID)
		if len(args) > 0 && strings.HasPrefix(args[0], "/") {
			binary = args[0]
		}
	}
	if binary == "" || strings.HasPrefix(binary, "/proc/") {
		binary = e.ExePath // a re-exec of /proc/self/exe (busybox's shell running an applet) names no program
	}
	creds := s.credentials(e.After)
	p := &events.Process{
		ExecID: s.execID(e.Exec), PID: e.TGID, TID: e.PID, UID: e.After.UID, Binary: binary,
		StartTime: s.wall(e.Exec.Start), AUID: 4294967295, Pod: s.pod(e.CgroupID), ParentExecID: s.execID(e.Parent),
		Cap: creds.Caps, Credentials: creds,
	}
	if d := e.Details; d != nil {
		if !strings.HasPrefix(binary, "/") && binary != e.ExePath {
			p.Binary = filepath.Join(d.Cwd, binary) // execve's relative filename
		}
		p.CWD, p.AUID = d.Cwd, d.LoginUID
		p.NS = s.namespaces(d, e.After.UserNSInode)
		if d.Cwd == "/" {
			flags = append(flags, "rootcwd")
		}
		if d.ArgsTruncated {
			flags = append(flags, "truncArgs")
		}
	}
	if args = s.cfg.Redact.Args(args); len(args) > 1 {
		p.Arguments = strings.Join(args[1:], " ")
	}
	p.Flags = strings.Join(flags, " ")
	return p
}

// privileged says why a process starting with these credentials and
// namespaces runs privileged: CAP_SYS_ADMIN in its effective set, or (in a
// pod) one of Kubernetes' host namespaces (hostNetwork, hostPID, hostIPC)
// or the host's mount namespace.
func (s *liveStream) privileged(c bpf.Creds, d *bpf.ExecDetails) []string {
	var why []string
	if v1alpha1.CapSet(c.Effective).Has(v1alpha1.Capability(unix.CAP_SYS_ADMIN)) {
		why = append(why, "CAP_SYS_ADMIN")
	}
	if !s.podsMode {
		return why
	}
	for _, ns := range []struct {
		index int
		name  string
	}{{bpf.NSNet, "host_net_ns"}, {bpf.NSPID, "host_pid_ns"}, {bpf.NSIPC, "host_ipc_ns"}, {bpf.NSMnt, "host_mnt_ns"}} {
		if inum := d.Namespaces[ns.index]; inum != 0 && inum == s.hostNS.ns[ns.index] {
			why = append(why, ns.name)
		}
	}
	return why
}

func (s *liveStream) onFork(e *bpf.Fork) {
	parent := s.lookup(e.Exec, e)
	child := *parent.proc
	child.ExecID, child.PID, child.TID = s.execID(e.Child), e.ChildPID, e.ChildPID
	child.StartTime, child.ParentExecID, child.Flags = s.wall(e.Child.Start), parent.proc.ExecID, "clone"
	s.procs.start(e.Child, &liveProcess{proc: &child, parent: e.Exec, rates: map[rateKey]*events.ProcessKprobe{}, cgroup: parent.cgroup})
}

func (s *liveStream) onExit(e *bpf.Exit) {
	p := s.lookup(e.Exec, e)
	s.end(e.Exec, e.Time)
	exit := &events.ProcessExit{Process: withTID(p.proc, e.PID), Parent: s.process(p.parent), Time: s.wall(e.Time)}
	if ws := syscall.WaitStatus(e.Status); ws.Signaled() {
		exit.Signal = unix.SignalName(ws.Signal())
	} else {
		exit.Status = uint32(ws.ExitStatus())
	}
	s.write(&events.Event{ProcessExit: exit}, e.Time)
}

func (s *liveStream) onCheck(e *bpf.LiveCheck) {
	if e.Key.Exe == s.self || e.Key.RuntimeInit {
		// capprof's own child before its exec, and the container runtime
		// setting up an exec: the profile keeps them apart too.
		return
	}
	p := s.lookup(e.Exec, e)
	ns := &events.UserNSArg{Level: e.UserNS.Level, Owner: e.UserNS.Owner, Group: e.UserNS.Group,
		NS: &events.Namespace{Inum: e.UserNS.Inode, IsHost: e.UserNS.Inode == s.hostNS.user}}
	k := events.CapabilityCheck(withTID(p.proc, e.PID), s.process(p.parent), int32(e.Key.Cap), e.Return, ns)
	audit, site := s.audit(e)
	k.Audit, k.CallSite = string(audit), site
	k.Syscall = &events.Syscall{Name: syscallName(e.Key.Syscall)}
	k.Suppressed, k.Checks = e.Suppressed, 1+e.Suppressed
	s.held += e.Suppressed
	if p.rates != nil {
		p.rates[rateKey{cap: e.Key.Cap, denied: e.Key.Denied}] = k
	} else if n, err := s.probe.TakeSuppressed(e.Exec, e.Key.Cap, e.Key.Denied); err == nil {
		k.Suppressed += n // a check of an exec already ended: count what it held at once
		k.Checks += n
		s.held += n
	}
	s.write(&events.Event{ProcessKprobe: k}, e.Time)
}

// audit gives a check its audit class, from cap_capable's options where the
// probe sees them and from its stack otherwise (the tracepoint), as the
// profile does, and its call site.
func (s *liveStream) audit(e *bpf.LiveCheck) (v1alpha1.AuditClass, string) {
	frames := make([]string, len(e.Stack))
	for i, addr := range e.Stack {
		frames[i] = s.symbols[addr]
	}
	class, site := classifyStack(frames) // unknown when kallsyms named no frame
	if e.Key.AuditKnown {
		class = optionsClass(e.Key)
	}
	return class, site
}

// resolveStacks names the functions of the stacks of the checks to be
// released (older than before, all when -1) not named yet, with one read of
// /proc/kallsyms for all of them.
func (s *liveStream) resolveStacks(before time.Duration) {
	var addrs []uint64
	for _, c := range s.pending.checks(before) {
		addrs = append(addrs, c.Stack...)
	}
	s.symbols.name(kallsymsPath, addrs) // unnamed frames class the check unknown
}

func (s *liveStream) onCredChange(e *bpf.CredChange) {
	p := s.lookup(e.Exec, e)
	name := changeSyscall(e)
	call := &events.Syscall{Name: name}
	for i := range syscallArity[name] {
		call.Args = append(call.Args, int64(int32(e.Args[i]))) // ids: -1 is "unchanged"
	}
	before, after := s.credentials(e.Before), s.credentials(e.After)
	// Later events show the process with its new credentials.
	proc := *p.proc
	proc.UID, proc.Credentials, proc.Cap = e.After.UID, after, after.Caps
	p.proc = &proc
	k := events.CredentialChange(withTID(p.proc, e.PID), s.process(p.parent), call, before, after)
	s.write(&events.Event{ProcessKprobe: k}, e.Time)
}

// syscallArity is how many arguments of each set*id call name ids; capset's
// are pointers, and its effect is in the credentials.
var syscallArity = map[string]int{
	"setuid": 1, "setgid": 1, "setfsuid": 1, "setfsgid": 1,
	"setreuid": 2, "setregid": 2, "setresuid": 3, "setresgid": 3,
}

func withTID(p *events.Process, tid uint32) *events.Process {
	if p.TID == tid {
		return p
	}
	c := *p
	c.TID = tid
	return &c
}

// execID is unique per exec on the node: base64 of node:start:pid:exec, as
// Tetragon's is of node:time:pid.
func (s *liveStream) execID(k bpf.ExecKey) string {
	if k == (bpf.ExecKey{}) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(s.node + ":" + strconv.FormatInt(int64(k.Start), 10) + ":" +
		strconv.FormatUint(uint64(k.TGID), 10) + ":" + strconv.FormatUint(uint64(k.Seq), 10)))
}

func (s *liveStream) wall(monotonic time.Duration) time.Time {
	return s.bootWall.Add(monotonic).UTC()
}

func (s *liveStream) credentials(c bpf.Creds) *events.Credentials {
	return &events.Credentials{
		UID: c.UID, GID: c.GID, EUID: c.EUID, EGID: c.EGID, SUID: c.SUID, SGID: c.SGID, FSUID: c.FSUID, FSGID: c.FSGID,
		Caps:   events.CapabilitiesOf(c.Permitted, c.Effective, c.Inheritable),
		UserNS: &events.UserNS{Level: int32(c.UserNSLevel), NS: &events.Namespace{Inum: c.UserNSInode, IsHost: c.UserNSInode == s.hostNS.user}},
	}
}

func (s *liveStream) namespaces(d *bpf.ExecDetails, userNS uint32) *events.Namespaces {
	ns := func(index int) *events.Namespace {
		inum := d.Namespaces[index]
		if inum == 0 {
			return nil
		}
		return &events.Namespace{Inum: inum, IsHost: inum == s.hostNS.ns[index]}
	}
	return &events.Namespaces{
		UTS: ns(bpf.NSUTS), IPC: ns(bpf.NSIPC), Mnt: ns(bpf.NSMnt), PID: ns(bpf.NSPID),
		PIDForChildren: ns(bpf.NSPIDForChildren), Net: ns(bpf.NSNet), Time: ns(bpf.NSTime),
		TimeForChildren: ns(bpf.NSTimeForChildren), Cgroup: ns(bpf.NSCgroup),
		User: &events.Namespace{Inum: userNS, IsHost: userNS == s.hostNS.user},
	}
}

// hostNamespaces are the host's namespaces, which is_host compares with:
// those of the host's PID 1 when capprof shares the host's PID namespace
// (a node's record, an agent with hostPID), else (an agent in its own PID
// namespace) those the kernel gives fixed numbers, with the host's mount
// and network namespaces unknown (0: never said to be the host's).
type hostNamespaces struct {
	ns   [bpf.NamespaceCount]uint32
	user uint32
}

// The inode numbers of the initial namespaces, fixed by the kernel
// (include/linux/proc_ns.h: ipc, uts, user and pid since Linux 3.8, cgroup
// since 4.6, time since 5.6). The initial mount and network namespaces get
// theirs when created.
const (
	ipcInitIno    = 0xEFFFFFFF
	utsInitIno    = 0xEFFFFFFE
	userInitIno   = 0xEFFFFFFD
	pidInitIno    = 0xEFFFFFFC
	cgroupInitIno = 0xEFFFFFFB
	timeInitIno   = 0xEFFFFFFA
)

var nsNames = map[int]string{
	bpf.NSUTS: "uts", bpf.NSIPC: "ipc", bpf.NSMnt: "mnt", bpf.NSPID: "pid", bpf.NSPIDForChildren: "pid_for_children",
	bpf.NSNet: "net", bpf.NSTime: "time", bpf.NSTimeForChildren: "time_for_children", bpf.NSCgroup: "cgroup",
}

// hostNamespacesOf is hostNamespaces, read with inode (of PID 1's, else
// capprof's own namespace of that name) when capprof shares the host's PID
// namespace.
func hostNamespacesOf(hostPIDs bool, inode func(name string) uint32) hostNamespaces {
	var h hostNamespaces
	if hostPIDs {
		for index, name := range nsNames {
			h.ns[index] = inode(name)
		}
		h.user = inode("user")
		return h
	}
	h.ns[bpf.NSUTS], h.ns[bpf.NSIPC], h.ns[bpf.NSPID], h.ns[bpf.NSPIDForChildren] = utsInitIno, ipcInitIno, pidInitIno, pidInitIno
	h.ns[bpf.NSCgroup], h.ns[bpf.NSTime], h.ns[bpf.NSTimeForChildren] = cgroupInitIno, timeInitIno, timeInitIno
	h.user = userInitIno
	return h
}

// inHostPIDNamespace says whether capprof runs in the host's (initial) PID
// namespace, where /proc/PID is the process the kernel's events name.
func inHostPIDNamespace() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/self/ns/pid", &st) == nil && st.Ino == pidInitIno
}

func nsInode(name string) uint32 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/1/ns/"+name, &st); err != nil {
		if err := unix.Stat("/proc/self/ns/"+name, &st); err != nil {
			return 0
		}
	}
	return uint32(st.Ino)
}
