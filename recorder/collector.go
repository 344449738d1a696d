package recorder

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/profile"
	"golang.org/x/sys/unix"
)

// collector turns the event stream into per-cgroup profile parts. One
// goroutine (consume) writes; containers() reads after it has returned and
// names each cgroup's part then, so a cgroup may be identified after its
// first events.
type collector struct {
	// self is capprof's own executable. The child that starts the command
	// runs capprof's code until its execve completes, and execve itself
	// makes checks (cap_vm_enough_memory for the new stack) in the old mm;
	// they are capprof's, not the workload's, so they are left out.
	self bpf.ExeID

	mu       sync.Mutex // guards the counters summary() reads while recording
	nExecs   int
	nChecks  int
	nChanges int

	exePaths map[bpf.ExeID]string
	// stacks are the distinct kernel stacks seen per check key (Count zero):
	// the first check's and the sampled ones.
	stacks map[bpf.Check]map[string][]uint64
	// procExec maps a live process to its Exec entry, so its exit status
	// lands there; a forked child inherits its parent's until it execs.
	procExec map[uint32]*profile.Exec
	parts    map[uint64]*profile.Container // by cgroup id
	// execs are kept apart from parts[].Execs, which would move on append
	// under the pointers in procExec.
	execs map[uint64][]*profile.Exec
	// live receives the events live events are made of; nil without --events.
	live *liveStream
	// names learns the cgroups the kernel side made targets.
	names *targetNames
}

func newCollector(self bpf.ExeID, names *targetNames) *collector {
	return &collector{
		self:     self,
		names:    names,
		exePaths: map[bpf.ExeID]string{},
		stacks:   map[bpf.Check]map[string][]uint64{},
		procExec: map[uint32]*profile.Exec{},
		parts:    map[uint64]*profile.Container{},
		execs:    map[uint64][]*profile.Exec{},
	}
}

// consume reads events until the probe is flushed.
func (c *collector) consume(p *bpf.Probe) error {
	for {
		ev, err := p.ReadEvent()
		if errors.Is(err, bpf.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		c.handle(ev)
	}
}

func (c *collector) part(cgroupID uint64) *profile.Container {
	if c.parts[cgroupID] == nil {
		c.parts[cgroupID] = &profile.Container{}
	}
	return c.parts[cgroupID]
}

func (c *collector) handle(ev bpf.Event) {
	if e, ok := ev.(*bpf.Exec); ok && e.RuntimeInit {
		return // the container runtime executing itself: not the workload's program
	}
	if c.live != nil {
		switch e := ev.(type) {
		case *bpf.Exec:
			c.live.send(ev)
			if e.Existing {
				return // listed for live events, not an exec
			}
		case *bpf.Exit, *bpf.Fork, *bpf.CredChange:
			c.live.send(ev)
		}
	}
	switch e := ev.(type) {
	case *bpf.CgroupEvent:
		if !e.Removed { // a removed one keeps its name: its data is named at the end
			c.names.noteCgroup(e.ID, cgroupNode{parent: e.ParentID, name: e.Name, created: true})
		}
	case *bpf.FirstCheck:
		c.addStack(e.Check, e.Stack)
		if e.ExePath != "" {
			c.exePaths[e.Check.Exe] = e.ExePath
		}
		part := c.part(e.CgroupID)
		// The runtime (runc init) runs as root before it drops to the
		// workload's user: its uid says nothing about runAsNonRoot.
		if !e.Check.RuntimeInit {
			part.UIDs = append(part.UIDs, e.EUID)
		}
		c.count(&c.nChecks)
	case *bpf.CheckSample:
		c.addStack(e.Check, e.Stack)
	case *bpf.Exec:
		c.exePaths[e.Exe] = e.ExePath
		part := c.part(e.CgroupID)
		x := &profile.Exec{
			Executable: e.ExePath,
			UID:        e.After.UID, EUID: e.After.EUID, GID: e.After.GID, EGID: e.After.EGID,
			Effective:     profile.CapSet(e.After.Effective),
			Permitted:     profile.CapSet(e.After.Permitted),
			PrivilegeGain: e.PrivilegeGain,
			Count:         1,
		}
		if e.Script {
			x.Script = e.Filename
		}
		c.execs[e.CgroupID] = append(c.execs[e.CgroupID], x)
		c.procExec[e.TGID] = x
		part.UIDs = append(part.UIDs, e.After.EUID)
		if e.PrivilegeGain && e.Before != nil {
			part.CredentialChanges = append(part.CredentialChanges, profile.CredentialChange{
				Executable: e.ExePath, Syscall: "execve", Source: credentialSource(e.BeforeFromCommit),
				Before: credentials(*e.Before), After: credentials(e.After), Count: 1,
			})
		}
		c.count(&c.nExecs)
	case *bpf.Fork:
		if x, ok := c.procExec[e.TGID]; ok {
			c.procExec[e.ChildPID] = x
		}
	case *bpf.Exit:
		if x, ok := c.procExec[e.TGID]; ok {
			x.ExitStatuses = append(x.ExitStatuses, waitStatusString(e.Status))
			delete(c.procExec, e.TGID)
		}
	case *bpf.CredChange:
		part := c.part(e.CgroupID)
		change := profile.CredentialChange{
			Executable: c.executable(e.Exe), Syscall: changeSyscall(e), Source: credentialSource(e.FromCommit),
			Before: credentials(e.Before), After: credentials(e.After), Count: 1,
		}
		if e.RuntimeInit {
			change.Phase = profile.RuntimeInitPhase
		} else {
			part.UIDs = append(part.UIDs, e.After.EUID)
		}
		part.CredentialChanges = append(part.CredentialChanges, change)
		c.count(&c.nChanges)
	}
}

func (c *collector) addStack(key bpf.Check, stack []uint64) {
	if len(stack) == 0 {
		return
	}
	set := c.stacks[key]
	if set == nil {
		set = map[string][]uint64{}
		c.stacks[key] = set
	}
	set[fmt.Sprint(stack)] = stack
}

func (c *collector) count(n *int) {
	c.mu.Lock()
	*n++
	c.mu.Unlock()
}

func (c *collector) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d execs, %d distinct checks, %d credential changes", c.nExecs, c.nChecks, c.nChanges)
}

func (c *collector) executable(id bpf.ExeID) string {
	if p, ok := c.exePaths[id]; ok {
		return p
	}
	if id == (bpf.ExeID{}) {
		return "(kernel)"
	}
	return "(" + id.String() + ")"
}

// containers adds the aggregated checks to what the events built, names each
// cgroup's part after its container and returns the containers merged and
// normalized with the seeds (one per recorded instance, with its coverage),
// so that targets that did nothing are there too. Cgroups with no name (a
// pod's sandbox, the pod's own cgroup) are left out.
func (c *collector) containers(checks []bpf.Check, seeds []profile.Container) ([]profile.Container, error) {
	var symbols *kernelSymbols
	if len(c.stacks) > 0 {
		var err error
		var returnAddrs []uint64
		for _, set := range c.stacks {
			for _, stack := range set {
				returnAddrs = append(returnAddrs, stack...)
			}
		}
		if symbols, err = loadKernelSymbols("/proc/kallsyms", returnAddrs); err != nil {
			return nil, err
		}
	}
	for _, chk := range checks {
		if chk.Exe == c.self {
			continue
		}
		part := c.part(chk.CgroupID)
		key := chk
		key.Count, key.SyscallFailed, key.SyscallSucceeded = 0, 0, 0
		audit, auditFrom, callSites := c.auditClass(symbols, key)
		verdict := profile.Granted
		if chk.Denied {
			verdict = profile.Denied
		}
		scope := profile.NestedNamespace
		if chk.InitUserNS {
			scope = profile.InitialNamespace
		}
		creds := profile.OwnCredentials
		switch {
		case chk.OtherCred:
			creds = profile.OtherTaskCredentials
		case chk.CredOverride:
			creds = profile.OverriddenCredentials
		}
		phase, exe := profile.StartupPhase, c.executable(chk.Exe)
		switch {
		case chk.RuntimeInit:
			phase = profile.RuntimeInitPhase
			if _, known := c.exePaths[chk.Exe]; !known {
				// runc init runs the host's runc binary, whose path the
				// in-kernel walk cannot give from inside the container's root.
				exe = "(container runtime, " + strings.Trim(exe, "()") + ")"
			}
		case chk.Steady:
			phase = profile.SteadyPhase
		}
		part.Capabilities = append(part.Capabilities, profile.CapabilityChecks{
			Capability: profile.Capability(chk.Cap), Verdict: verdict, UserNamespace: scope, Count: chk.Count,
			Sources: []profile.Source{{
				Executable: exe, Syscall: syscallName(chk.Syscall), CallSites: callSites,
				Audit: audit, AuditFrom: auditFrom, Credentials: creds, Phase: phase, Count: chk.Count,
				SyscallFailed: chk.SyscallFailed, SyscallSucceeded: chk.SyscallSucceeded,
			}},
		})
	}
	all := slices.Clone(seeds)
	for id, part := range c.parts {
		target := c.names.name(id)
		if target == nil {
			continue
		}
		part.Identity = target.identity
		for _, x := range c.execs[id] {
			part.Execs = append(part.Execs, *x)
		}
		all = append(all, *part)
	}
	return profile.MergeContainers(all...), nil
}

// auditClass gives a check key its audit class, where the class came from,
// and its call sites. The options cap_capable was called with, when the
// probe saw them, are the class; otherwise the stacks tell (classify).
func (c *collector) auditClass(symbols *kernelSymbols, key bpf.Check) (profile.AuditClass, profile.AuditSource, []string) {
	class, sites := c.classify(symbols, key)
	if !key.AuditKnown {
		if class == profile.UnknownAudit {
			return class, "", sites
		}
		return class, profile.AuditFromStack, sites
	}
	return optionsClass(key), profile.AuditFromOptions, sites
}

// optionsClass is the audit class cap_capable's options give a check the
// probe saw them for (key.AuditKnown).
func optionsClass(key bpf.Check) profile.AuditClass {
	switch {
	case key.NoAudit:
		return profile.NoAudit
	case key.InSetID:
		return profile.InSetID
	}
	return profile.Audited
}

// classify gives a check key the audit class and call sites of its sampled
// stacks. A key whose stacks disagree takes the class that can make it
// required (audited over insetid over noaudit): a recommendation must be
// sufficient first. No stack at all is UnknownAudit.
func (c *collector) classify(symbols *kernelSymbols, key bpf.Check) (profile.AuditClass, []string) {
	class := profile.UnknownAudit
	sites := map[string]bool{}
	for _, stack := range c.stacks[key] {
		frames := make([]string, len(stack))
		for i, addr := range stack {
			frames[i] = symbols.function(addr)
		}
		cl, site := classifyStack(frames)
		if auditRank[cl] > auditRank[class] {
			class = cl
		}
		if site != "" {
			sites[site] = true
		}
	}
	return class, slices.Sorted(maps.Keys(sites))
}

// auditRank orders audit classes by how strongly they can make a check required.
var auditRank = map[profile.AuditClass]int{profile.UnknownAudit: 0, profile.NoAudit: 1, profile.InSetID: 2, profile.Audited: 3}

func credentialSource(fromCommit bool) profile.CredentialSource {
	if fromCommit {
		return profile.FromCommitCreds
	}
	return profile.FromSyscall
}

func credentials(b bpf.Creds) profile.Credentials {
	return profile.Credentials{
		UID: b.UID, EUID: b.EUID, SUID: b.SUID, FSUID: b.FSUID,
		GID: b.GID, EGID: b.EGID, SGID: b.SGID, FSGID: b.FSGID,
		Effective: profile.CapSet(b.Effective), Permitted: profile.CapSet(b.Permitted),
		Inheritable: profile.CapSet(b.Inheritable), Bounding: profile.CapSet(b.Bounding),
		Ambient: profile.CapSet(b.Ambient), UserNamespaceLevel: b.UserNSLevel,
	}
}

//go:generate ./gen_syscalls.sh

// syscallName names an x86-64 syscall number; -1 (no syscall) is "none".
func syscallName(nr int32) string {
	if nr < 0 {
		return "none"
	}
	if name, ok := syscallNames[nr]; ok {
		return name
	}
	return "syscall_" + strconv.Itoa(int(nr))
}

// credFields are groups of credential fields.
type credFields uint8

const (
	uidFields credFields = 1 << iota
	gidFields
	capFields // inheritable, permitted, effective, ambient
	otherFields
)

// changeableBy is what each set*id and capset call can change: the uid calls
// also adjust the capability sets (security/commoncap.c cap_task_fix_setuid),
// capset sets three of them, and none touches the bounding set or the user
// namespace.
var changeableBy = map[string]credFields{
	"setuid": uidFields | capFields, "setreuid": uidFields | capFields,
	"setresuid": uidFields | capFields, "setfsuid": uidFields | capFields,
	"setgid": gidFields, "setregid": gidFields, "setresgid": gidFields, "setfsgid": gidFields,
	"capset": capFields,
}

func changedFields(b, a bpf.Creds) credFields {
	var f credFields
	if a.UID != b.UID || a.EUID != b.EUID || a.SUID != b.SUID || a.FSUID != b.FSUID {
		f |= uidFields
	}
	if a.GID != b.GID || a.EGID != b.EGID || a.SGID != b.SGID || a.FSGID != b.FSGID {
		f |= gidFields
	}
	if a.Inheritable != b.Inheritable || a.Permitted != b.Permitted || a.Effective != b.Effective || a.Ambient != b.Ambient {
		f |= capFields
	}
	if a.Bounding != b.Bounding || a.UserNSLevel != b.UserNSLevel || a.UserNSInode != b.UserNSInode {
		f |= otherFields
	}
	return f
}

// changeSyscall names the syscall a credential change is attributed to.
// commit_creds (fexit, kprobe probes) sees the syscall that made it. The
// tracepoint probe finds a change when it next looks and attributes it to
// the set*id/capset call checked since it last looked; that call may have
// failed or changed nothing while a later call that needed no check made
// the change, so a change it could not have made is "unknown", as is one
// with no call checked.
func changeSyscall(e *bpf.CredChange) string {
	name := syscallName(e.Syscall)
	if e.FromCommit {
		return name
	}
	if can, ok := changeableBy[name]; !ok || changedFields(e.Before, e.After)&^can != 0 {
		return "unknown"
	}
	return name
}

// waitStatusString renders a wait(2) status: "0", "1", or "SIGKILL".
func waitStatusString(status int32) string {
	ws := syscall.WaitStatus(status)
	if ws.Signaled() {
		return unix.SignalName(ws.Signal())
	}
	return strconv.Itoa(ws.ExitStatus())
}
