package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/profile"
)

// collector turns the event stream into per-cgroup profile parts. One
// goroutine (consume) writes; containers() reads, while it runs (a cluster
// agent's periodic results) or after it has returned, and names each
// cgroup's part then, so a cgroup may be identified after its first events.
type collector struct {
	// state guards what handle writes and containers reads: held once per
	// event, never contended but while containers runs.
	state sync.Mutex

	// self is capprof's own executable. The child that starts the command
	// runs capprof's code until its execve completes, and execve itself
	// makes checks (cap_vm_enough_memory for the new stack) in the old mm;
	// they are capprof's, not the workload's, so they are left out.
	self bpf.ExeID

	mu       sync.Mutex // guards the counters summary() reads while recording
	nExecs   int
	nChecks  int
	nChanges int

	// exePaths names executables, up to maxExecutables of them.
	exePaths map[bpf.ExeID]string
	// stacks are the distinct kernel stacks seen per check key:
	// the first check's and the sampled ones.
	stacks map[bpf.CheckKey]stackSet
	// firstSeen are the check keys whose first check event was handled.
	firstSeen map[bpf.CheckKey]bool
	// procExec maps a live process to its Exec entry, so its exit status
	// lands there; a forked child inherits its parent's until it execs.
	procExec map[uint32]*v1alpha1.Exec
	// cgroups are those with an event: each that is named has an entry in
	// the profile, even one that made no check.
	cgroups map[uint64]bool
	// execs, changes and uids are aggregated as they come, by cgroup: a
	// workload that runs /bin/true a million times makes one entry, not a
	// million. containers() adds them to the entries.
	execs   map[uint64]map[execKey]*v1alpha1.Exec
	changes map[uint64]map[v1alpha1.CredentialChange]int64 // by the change, its count left zero
	uids    map[uint64]map[uint32]bool
	// executables are the distinct executables with exec entries, up to
	// maxExecutables; execsNotKept counts the execs beyond.
	executables  map[string]bool
	execsNotKept int64
	// undecodable counts the events that could not be decoded.
	undecodable atomic.Uint64
	// kallsyms resolves call stacks (kallsymsPath) into symbols;
	// symbolsErr says why it could not.
	kallsyms   string
	symbols    symbolCache
	symbolsErr error
	// names learns the cgroups the kernel side made targets.
	names *targetNames
}

func newCollector(self bpf.ExeID, names *targetNames) *collector {
	return &collector{
		self:        self,
		names:       names,
		exePaths:    map[bpf.ExeID]string{},
		stacks:      map[bpf.CheckKey]stackSet{},
		firstSeen:   map[bpf.CheckKey]bool{},
		procExec:    map[uint32]*v1alpha1.Exec{},
		cgroups:     map[uint64]bool{},
		execs:       map[uint64]map[execKey]*v1alpha1.Exec{},
		changes:     map[uint64]map[v1alpha1.CredentialChange]int64{},
		uids:        map[uint64]map[uint32]bool{},
		executables: map[string]bool{},
		kallsyms:    kallsymsPath,
		symbols:     symbolCache{},
	}
}

// maxExecutables bounds the distinct executables a recording names and
// lists execs of: a workload that runs ever new programs (150,000 distinct
// executables took 388 MiB) costs a bounded amount; beyond, its checks are
// still counted, its execs are counted as not kept.
const maxExecutables = 20000

// execKey is what tells two exec entries apart.
type execKey struct {
	executable, script   string
	uid, euid, gid, egid uint32
	effective, permitted v1alpha1.CapSet
	privilegeGain        bool
}

// readEvents hands what read returns to handle until the probe is flushed.
// An event that cannot be decoded is counted in undecodable and skipped:
// the reader reads on.
func readEvents(read func() (bpf.Event, error), undecodable *atomic.Uint64, handle func(bpf.Event)) error {
	for {
		ev, err := read()
		var decodeErr *bpf.DecodeError
		switch {
		case errors.Is(err, bpf.ErrClosed):
			return nil
		case errors.As(err, &decodeErr):
			undecodable.Add(1)
		case err != nil:
			return err
		default:
			handle(ev)
		}
	}
}

// addUID notes an effective uid processes of a cgroup ran with.
func (c *collector) addUID(cgroupID uint64, uid uint32) {
	set := c.uids[cgroupID]
	if set == nil {
		set = map[uint32]bool{}
		c.uids[cgroupID] = set
	}
	set[uid] = true
}

// addChange counts a credential change (its Count zero) of a cgroup.
func (c *collector) addChange(cgroupID uint64, ch v1alpha1.CredentialChange) {
	set := c.changes[cgroupID]
	if set == nil {
		set = map[v1alpha1.CredentialChange]int64{}
		c.changes[cgroupID] = set
	}
	set[ch]++
}

// addExec counts an exec of a cgroup and returns its entry, or nil when it
// is of an executable beyond maxExecutables.
func (c *collector) addExec(cgroupID uint64, x v1alpha1.Exec) *v1alpha1.Exec {
	if !c.executables[x.Executable] {
		if len(c.executables) >= maxExecutables {
			c.execsNotKept++
			return nil
		}
		c.executables[x.Executable] = true
	}
	set := c.execs[cgroupID]
	if set == nil {
		set = map[execKey]*v1alpha1.Exec{}
		c.execs[cgroupID] = set
	}
	k := execKey{x.Executable, x.Script, x.UID, x.EUID, x.GID, x.EGID, x.Effective, x.Permitted, x.PrivilegeGain}
	if e := set[k]; e != nil {
		e.Count++
		return e
	}
	x.Count = 1
	set[k] = &x
	return &x
}

// namePath notes an executable's path, unless maxExecutables are named.
func (c *collector) namePath(id bpf.ExeID, path string) {
	if _, known := c.exePaths[id]; known || len(c.exePaths) < maxExecutables {
		c.exePaths[id] = path
	}
}

// handle adds an event to what the profile is built from (see dispatcher).
func (c *collector) handle(ev bpf.Event) {
	c.state.Lock()
	defer c.state.Unlock()
	switch e := ev.(type) {
	case *bpf.CgroupEvent:
		if !e.Removed { // a removed one keeps its name: its data is named at the end
			c.names.noteCgroup(e.ID, cgroupNode{parent: e.ParentID, name: e.Name, created: true})
		}
	case *bpf.FirstCheck:
		c.firstSeen[e.Key] = true
		c.addStack(e.Key, e.Stack)
		if e.ExePath != "" {
			c.namePath(e.Key.Exe, e.ExePath)
		}
		c.cgroups[e.CgroupID] = true
		// The runtime (runc init) runs as root before it drops to the
		// workload's user: its uid says nothing about runAsNonRoot.
		if !e.Key.RuntimeInit {
			c.addUID(e.CgroupID, e.EUID)
		}
		c.count(&c.nChecks)
	case *bpf.CheckSample:
		c.addStack(e.Key, e.Stack)
	case *bpf.Exec:
		c.namePath(e.Exe, e.ExePath)
		c.cgroups[e.CgroupID] = true
		x := v1alpha1.Exec{
			Executable: e.ExePath,
			UID:        e.After.UID, EUID: e.After.EUID, GID: e.After.GID, EGID: e.After.EGID,
			Effective:     v1alpha1.CapSet(e.After.Effective),
			Permitted:     v1alpha1.CapSet(e.After.Permitted),
			PrivilegeGain: e.PrivilegeGain,
		}
		if e.Script {
			x.Script = e.Filename
		}
		if entry := c.addExec(e.CgroupID, x); entry != nil {
			c.procExec[e.TGID] = entry
		} else {
			delete(c.procExec, e.TGID) // its exit status belongs to no entry
		}
		c.addUID(e.CgroupID, e.After.EUID)
		if e.PrivilegeGain && e.Before != nil {
			c.addChange(e.CgroupID, v1alpha1.CredentialChange{
				Executable: e.ExePath, Syscall: "execve", Source: credentialSource(e.BeforeFromCommit),
				Before: credentials(*e.Before), After: credentials(e.After),
			})
		}
		c.count(&c.nExecs)
	case *bpf.Fork:
		if x, ok := c.procExec[e.TGID]; ok {
			c.procExec[e.ChildPID] = x
		}
	case *bpf.Exit:
		if x, ok := c.procExec[e.TGID]; ok {
			// Distinct statuses only: a few hundred at most.
			if s := waitStatusString(e.Status); !slices.Contains(x.ExitStatuses, s) {
				x.ExitStatuses = append(x.ExitStatuses, s)
			}
			delete(c.procExec, e.TGID)
		}
	case *bpf.CredChange:
		c.cgroups[e.CgroupID] = true
		change := v1alpha1.CredentialChange{
			Executable: c.executable(e.Exe), Syscall: changeSyscall(e), Source: credentialSource(e.FromCommit),
			Before: credentials(e.Before), After: credentials(e.After),
		}
		if e.RuntimeInit {
			change.Phase = v1alpha1.RuntimeInitPhase
		} else {
			c.addUID(e.CgroupID, e.After.EUID)
		}
		c.addChange(e.CgroupID, change)
		c.count(&c.nChanges)
	}
}

func (c *collector) addStack(key bpf.CheckKey, stack []uint64) {
	if len(stack) == 0 {
		return
	}
	set := c.stacks[key]
	if set == nil {
		set = stackSet{}
		c.stacks[key] = set
	}
	set.add(stack)
}

// stackSet holds distinct call stacks, each as a string of its return
// addresses' bytes (8 a frame): a stack is kept once, and small. Kept as
// a key made with fmt.Sprint with the frames beside it, the stacks were
// half of the agent's sampled heap in make bench's node-scale mix.
type stackSet map[string]struct{}

func (s stackSet) add(stack []uint64) {
	b := make([]byte, 0, 8*len(stack))
	for _, addr := range stack {
		b = binary.LittleEndian.AppendUint64(b, addr)
	}
	s[string(b)] = struct{}{}
}

// all yields each stack's return addresses.
func (s stackSet) all() iter.Seq[[]uint64] {
	return func(yield func([]uint64) bool) {
		for key := range s {
			stack := make([]uint64, len(key)/8)
			for i := range stack {
				stack[i] = binary.LittleEndian.Uint64([]byte(key[8*i : 8*i+8]))
			}
			if !yield(stack) {
				return
			}
		}
	}
}

// described keeps the checks whose first check event was handled. While
// the probe runs, a check's count can be read before its event: without
// the event's call stack and executable path it would be classed and named
// wrongly, so it waits for a later read.
func (c *collector) described(checks []bpf.Check) []bpf.Check {
	c.state.Lock()
	defer c.state.Unlock()
	return slices.DeleteFunc(checks, func(chk bpf.Check) bool { return !c.firstSeen[chk.CheckKey] })
}

// notKept is execsNotKept, which handle writes.
func (c *collector) notKept() int64 {
	c.state.Lock()
	defer c.state.Unlock()
	return c.execsNotKept
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
// pod's sandbox, the pod's own cgroup) are left out. It changes nothing of
// what the events built, so it may be called again later.
func (c *collector) containers(checks []bpf.Check, seeds []v1alpha1.Container) ([]v1alpha1.Container, error) {
	c.state.Lock()
	defer c.state.Unlock()
	parts := make(map[uint64]*v1alpha1.Container, len(c.cgroups))
	part := func(id uint64) *v1alpha1.Container {
		if parts[id] == nil {
			parts[id] = &v1alpha1.Container{}
		}
		return parts[id]
	}
	for id := range c.cgroups {
		part(id)
	}
	var returnAddrs []uint64
	for _, set := range c.stacks {
		for stack := range set.all() {
			returnAddrs = append(returnAddrs, stack...)
		}
	}
	if err := c.symbols.name(c.kallsyms, returnAddrs); err != nil {
		// The stacks' unnamed frames class their checks unknown, and the
		// profile is still saved.
		c.symbolsErr = err
	}
	for _, chk := range checks {
		if chk.Exe == c.self {
			continue
		}
		part := part(chk.CgroupID)
		audit, auditFrom, callSites := c.auditClass(chk.CheckKey)
		verdict := v1alpha1.Granted
		if chk.Denied {
			verdict = v1alpha1.Denied
		}
		scope := v1alpha1.NestedNamespace
		if chk.InitUserNS {
			scope = v1alpha1.InitialNamespace
		}
		creds := v1alpha1.OwnCredentials
		switch {
		case chk.OtherCred:
			creds = v1alpha1.OtherTaskCredentials
		case chk.CredOverride:
			creds = v1alpha1.OverriddenCredentials
		}
		phase, exe := v1alpha1.StartupPhase, c.executable(chk.Exe)
		switch {
		case chk.RuntimeInit:
			phase = v1alpha1.RuntimeInitPhase
			if _, known := c.exePaths[chk.Exe]; !known {
				// runc init runs the host's runc binary, whose path the
				// in-kernel walk cannot give from inside the container's root.
				exe = "(container runtime, " + strings.Trim(exe, "()") + ")"
			}
		case chk.Steady:
			phase = v1alpha1.SteadyPhase
		}
		part.Capabilities = append(part.Capabilities, v1alpha1.CapabilityChecks{
			Capability: v1alpha1.Capability(chk.Cap), Verdict: verdict, UserNamespace: scope, Count: kernelCount(chk.Count),
			Sources: []v1alpha1.Source{{
				Executable: exe, Syscall: syscallName(chk.Syscall), CallSites: callSites,
				Audit: audit, AuditFrom: auditFrom, Credentials: creds, Phase: phase, Count: kernelCount(chk.Count),
				SyscallFailed: kernelCount(chk.SyscallFailed), SyscallSucceeded: kernelCount(chk.SyscallSucceeded),
			}},
		})
	}
	all := slices.Clone(seeds)
	for id, part := range parts {
		target := c.names.name(id)
		if target == nil {
			continue
		}
		part.Identity = target.identity
		for _, x := range c.execs[id] {
			x := *x
			// handle appends to the entry's statuses; merging sorts them.
			x.ExitStatuses = slices.Clone(x.ExitStatuses)
			part.Execs = append(part.Execs, x)
		}
		for ch, n := range c.changes[id] {
			ch.Count = n
			part.CredentialChanges = append(part.CredentialChanges, ch)
		}
		for uid := range c.uids[id] {
			part.UIDs = append(part.UIDs, uid)
		}
		all = append(all, *part)
	}
	return profile.MergeContainers(all...), nil
}

// auditClass gives a check key its audit class, where the class came from,
// and its call sites. The options cap_capable was called with, when the
// probe saw them, are the class; otherwise the stacks tell (classify).
func (c *collector) auditClass(key bpf.CheckKey) (v1alpha1.AuditClass, v1alpha1.AuditSource, []string) {
	class, sites := c.classify(key)
	if !key.AuditKnown {
		if class == v1alpha1.UnknownAudit {
			return class, "", sites
		}
		return class, v1alpha1.AuditFromStack, sites
	}
	return optionsClass(key), v1alpha1.AuditFromOptions, sites
}

// optionsClass is the audit class cap_capable's options give a check the
// probe saw them for (key.AuditKnown).
func optionsClass(key bpf.CheckKey) v1alpha1.AuditClass {
	switch {
	case key.NoAudit:
		return v1alpha1.NoAudit
	case key.InSetID:
		return v1alpha1.InSetID
	}
	return v1alpha1.Audited
}

// classify gives a check key the audit class and call sites of its sampled
// stacks. A key whose stacks disagree takes the class that can make it
// required (audited over insetid over noaudit): a recommendation must be
// sufficient first. No stack at all is UnknownAudit.
func (c *collector) classify(key bpf.CheckKey) (v1alpha1.AuditClass, []string) {
	class := v1alpha1.UnknownAudit
	sites := map[string]bool{}
	for stack := range c.stacks[key].all() {
		frames := make([]string, len(stack))
		for i, addr := range stack {
			frames[i] = c.symbols[addr]
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
var auditRank = map[v1alpha1.AuditClass]int{v1alpha1.UnknownAudit: 0, v1alpha1.NoAudit: 1, v1alpha1.InSetID: 2, v1alpha1.Audited: 3}

func credentialSource(fromCommit bool) v1alpha1.CredentialSource {
	if fromCommit {
		return v1alpha1.FromCommitCreds
	}
	return v1alpha1.FromSyscall
}

func credentials(b bpf.Creds) v1alpha1.Credentials {
	return v1alpha1.Credentials{
		UID: b.UID, EUID: b.EUID, SUID: b.SUID, FSUID: b.FSUID,
		GID: b.GID, EGID: b.EGID, SGID: b.SGID, FSGID: b.FSGID,
		Effective: v1alpha1.CapSet(b.Effective), Permitted: v1alpha1.CapSet(b.Permitted),
		Inheritable: v1alpha1.CapSet(b.Inheritable), Bounding: v1alpha1.CapSet(b.Bounding),
		Ambient: v1alpha1.CapSet(b.Ambient), UserNamespaceLevel: b.UserNSLevel,
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

// kernelCount is a count the kernel keeps as a u64 as a profile's int64
// count: it cannot reach 2^63 in practice, and would saturate, not wrap.
func kernelCount(n uint64) int64 { return int64(min(n, math.MaxInt64)) }
