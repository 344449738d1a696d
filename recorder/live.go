package recorder

import (
	"container/heap"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/internal/outfile"
	"github.com/capprof/capprof/internal/redact"
	"github.com/capprof/capprof/profile"
)

// EventsConfig is what record --events needs.
type EventsConfig struct {
	// Output is the file to write, or "-" for Stdout. A file is written
	// under a temporary name and renamed when recording stops.
	Output string
	Stdout io.Writer
	// Format is one of events.Formats.
	Format string
	Filter events.Filter
	// RateLimit is the interval of capability-check events per exec,
	// capability and verdict (0: every check).
	RateLimit time.Duration
	// Redact masks secrets in the processes' arguments.
	Redact *redact.Redactor
}

// Live events are released in kernel time order once they are this old:
// checks come through their own ring buffer, and an exec, its checks and its
// exit must be written in the order they happened. Both ring buffers are
// read at least every 100 ms (bpf.pollInterval).
const (
	reorderDelay  = 500 * time.Millisecond
	releasePeriod = 100 * time.Millisecond
	// liveQueueLen bounds the events waiting for the writer: when the
	// reader of --events falls behind, events are dropped and counted
	// rather than slowing the recording.
	liveQueueLen = 16384
	// exitedKept is how many ended execs stay known, so that a late event
	// of theirs, or a child's parent, still finds them.
	exitedKept = 4096
)

// liveStream turns what the probe saw into live events. The collector and
// the live reader send to it without ever blocking; one goroutine orders,
// names and writes.
type liveStream struct {
	cfg      EventsConfig
	progress io.Writer
	probe    *bpf.Probe
	node     string
	self     bpf.ExeID
	podsMode bool // host namespaces mark a process privileged (in a pod, not for a command)
	names    *targetNames
	writer   events.Writer
	out      *outfile.File
	bootWall time.Time // wall time at CLOCK_MONOTONIC 0
	hostNS   hostNamespaces

	in          chan bpf.Event
	done        chan struct{}
	dropped     atomic.Uint64 // queue full
	undecodable atomic.Uint64 // check events that could not be decoded

	// Owned by run:
	pending  eventHeap
	procs    map[bpf.ExecKey]*liveProcess
	current  map[uint32]bpf.ExecKey // a process's current exec, by pid
	exited   []bpf.ExecKey          // oldest first
	symbols  map[uint64]string      // kernel return address → function
	written  uint64
	filtered uint64
	unnamed  uint64 // events of cgroups no selected container explains (a pod's sandbox)
	held     uint64 // checks the kernel's rate limit held back
	writeErr error  // the first; no event is written after it
	runErr   error
}

// liveProcess is an exec as live events show it.
type liveProcess struct {
	proc   *events.Process
	parent bpf.ExecKey
	// cgroup names the process's pod once the container it runs in is
	// known, which may come after its exec (see targetNames).
	cgroup uint64
	// rates are the (capability, verdict) pairs with checks sent, with the
	// last one's event; their held-back counts are read when the exec ends.
	rates map[rateKey]*events.ProcessKprobe
}

type rateKey struct {
	cap    uint8
	denied bool
}

// newLiveStream opens the output and starts the writer goroutine.
func newLiveStream(cfg EventsConfig, progress io.Writer, probe *bpf.Probe, node string, self bpf.ExeID, podsMode bool, names *targetNames) (*liveStream, error) {
	out, err := outfile.Open("--events", cfg.Output, cfg.Stdout)
	if err != nil {
		return nil, err
	}
	writer, err := events.NewWriter(cfg.Format, out)
	if err != nil {
		out.Abort()
		return nil, fmt.Errorf("--events-format: %w", err)
	}
	now, err := bpf.MonotonicNow()
	if err != nil {
		out.Abort()
		return nil, err
	}
	s := &liveStream{
		cfg: cfg, progress: progress, probe: probe, node: node, self: self, podsMode: podsMode, names: names, writer: writer, out: out,
		bootWall: time.Now().Add(-now), hostNS: readHostNamespaces(),
		in: make(chan bpf.Event, liveQueueLen), done: make(chan struct{}),
		procs: map[bpf.ExecKey]*liveProcess{}, current: map[uint32]bpf.ExecKey{},
		symbols: map[uint64]string{},
	}
	go s.run()
	return s, nil
}

// send queues an event without blocking; a full queue drops it.
func (s *liveStream) send(ev bpf.Event) {
	select {
	case s.in <- ev:
	default:
		s.dropped.Add(1)
	}
}

func (s *liveStream) pod(cgroupID uint64) *events.Pod { return s.names.pod(cgroupID) }

// readLive forwards the probe's live check events until it is flushed.
func (s *liveStream) readLive() error {
	return readEvents(s.probe.ReadLiveEvent, &s.undecodable, s.send)
}

func (s *liveStream) run() {
	defer close(s.done)
	tick := time.NewTicker(releasePeriod)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-s.in:
			if !ok {
				s.release(-1)
				s.endAll()
				return
			}
			heap.Push(&s.pending, ev)
		case <-tick.C:
			if now, err := bpf.MonotonicNow(); err == nil {
				s.release(now - reorderDelay)
			}
		}
	}
}

// release handles the pending events older than before (all when -1), oldest first.
func (s *liveStream) release(before time.Duration) {
	s.resolveStacks(before)
	for s.pending.Len() > 0 && (before < 0 || s.pending[0].EventHeader().Time < before) {
		s.handle(heap.Pop(&s.pending).(bpf.Event))
	}
	if err := s.writer.Flush(); err != nil {
		s.writeFailed(err)
	}
}

// writeFailed notes the first write error: the events stop there, the
// recording goes on. A reader of stdout that went away is said once at
// the end; anything else (a full disk) at once.
func (s *liveStream) writeFailed(err error) {
	if s.writeErr != nil {
		return
	}
	s.writeErr = err
	if !s.readerGone() {
		fmt.Fprintf(s.progress, "capprof: warning: events: writing %s failed after %d events: %v; no more events are written, the recording goes on\n",
			s.out.Name(), s.written, outfile.Cause(err))
	}
}

// readerGone is `capprof record --events - | head`: the reader of stdout
// went away (broken pipe).
func (s *liveStream) readerGone() bool {
	return s.cfg.Output == "-" && errors.Is(s.writeErr, syscall.EPIPE)
}

// close stops the stream once every event sent has been written, and
// reports what was written and lost. The caller has stopped sending.
func (s *liveStream) close(progress io.Writer, kernelDrops uint64) error {
	close(s.in)
	<-s.done
	var err error
	switch {
	case s.runErr != nil:
		s.out.Abort()
		err = fmt.Errorf("--events %q: %w", s.cfg.Output, s.runErr)
	case s.readerGone():
		// The recording went on; the profile is what matters.
		fmt.Fprintf(progress, "capprof: warning: events: stdout was closed by its reader (broken pipe) after %d events; the events stopped there, the recording went on\n", s.written)
		s.out.Abort()
	default:
		// A write error makes this say so, and the file does not appear.
		err = s.out.Commit()
	}
	if err != nil {
		return err
	}
	dropped := s.dropped.Load() + kernelDrops
	fmt.Fprintf(progress, "capprof: events: %d written to %s, %d filtered out, %d checks held back by the rate limit (counted in the lines that followed)",
		s.written, s.out.Name(), s.filtered, s.held)
	if s.unnamed > 0 {
		fmt.Fprintf(progress, ", %d of processes in no selected container (pod sandboxes) left out", s.unnamed)
	}
	if dropped > 0 {
		fmt.Fprintf(progress, "; %d lost (%d in the kernel: ring buffer or rate-limit map full; %d in capprof: the events' reader was too slow)",
			dropped, kernelDrops, s.dropped.Load())
	}
	if n := s.undecodable.Load(); n > 0 {
		fmt.Fprintf(progress, "; %d check events could not be decoded", n)
	}
	fmt.Fprintln(progress)
	return nil
}

// discard stops the stream and removes its file, for a recording that failed.
func (s *liveStream) discard() {
	close(s.in)
	<-s.done
	s.out.Abort()
}

func (s *liveStream) handle(ev bpf.Event) {
	switch e := ev.(type) {
	case *bpf.Exec:
		s.onExec(e)
	case *bpf.Fork:
		s.onFork(e)
	case *bpf.Exit:
		s.onExit(e)
	case *bpf.LiveCheck:
		s.onCheck(e)
	case *bpf.CredChange:
		s.onCredChange(e)
	}
}

func (s *liveStream) onExec(e *bpf.Exec) {
	rates := map[rateKey]*events.ProcessKprobe{}
	if e.Existing {
		if _, known := s.procs[e.Exec]; known {
			return // listed again when another target was added
		}
	} else if prev, ok := s.current[e.TGID]; ok && prev != e.Exec {
		s.end(prev, e.Time) // the process's previous program is gone
	} else if ok {
		rates = s.procs[prev].rates // its checks were named before the exec was known
	}
	p := &liveProcess{proc: s.execProcess(e), parent: e.Parent, rates: rates, cgroup: e.CgroupID}
	s.procs[e.Exec] = p
	s.current[e.TGID] = e.Exec
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
		args = procArgs(e.TGID)
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
	if profile.CapSet(c.Effective).Has(profile.Capability(unix.CAP_SYS_ADMIN)) {
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
	s.procs[e.Child] = &liveProcess{proc: &child, parent: e.Exec, rates: map[rateKey]*events.ProcessKprobe{}, cgroup: parent.cgroup}
	s.current[e.ChildPID] = e.Child
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

// end closes an exec: the checks its rate limit still holds back are
// written as summary lines, and it is forgotten once exitedKept others have
// ended after it.
func (s *liveStream) end(key bpf.ExecKey, at time.Duration) {
	p, ok := s.procs[key]
	if !ok {
		return
	}
	for r, last := range p.rates {
		s.summarize(p, key, r, last, at)
	}
	p.rates = nil
	if s.current[key.TGID] == key {
		delete(s.current, key.TGID)
	}
	s.exited = append(s.exited, key)
	if len(s.exited) > exitedKept {
		delete(s.procs, s.exited[0])
		s.exited = s.exited[1:]
	}
}

// endAll ends every exec still running when the recording stops.
func (s *liveStream) endAll() {
	now, _ := bpf.MonotonicNow()
	for key, p := range s.procs {
		if p.rates != nil {
			s.end(key, now)
		}
	}
	if err := s.writer.Flush(); err != nil {
		s.writeFailed(err)
	}
}

// summarize writes what the rate limit still holds back of an ended exec's
// checks of one capability and verdict, as a summary line like the last
// event of theirs.
func (s *liveStream) summarize(p *liveProcess, key bpf.ExecKey, r rateKey, last *events.ProcessKprobe, at time.Duration) {
	n, err := s.probe.TakeSuppressed(key, r.cap, r.denied)
	if err != nil {
		s.runErr = errors.Join(s.runErr, err)
		return
	}
	if n == 0 {
		return
	}
	s.held += n
	k := *last
	k.Process = p.proc
	k.Summary, k.Suppressed, k.Checks = true, n, n
	s.write(&events.Event{ProcessKprobe: &k}, at)
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
func (s *liveStream) audit(e *bpf.LiveCheck) (profile.AuditClass, string) {
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
	var missing []uint64
	for _, ev := range s.pending {
		if c, ok := ev.(*bpf.LiveCheck); ok && (before < 0 || c.Time < before) {
			for _, addr := range c.Stack {
				if _, known := s.symbols[addr]; !known {
					missing = append(missing, addr)
				}
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	ks, err := loadKernelSymbols(kallsymsPath, missing)
	for _, addr := range missing {
		s.symbols[addr] = ""
		if err == nil {
			s.symbols[addr] = ks.function(addr)
		}
	}
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

// lookup finds the exec an event came from. An exec makes checks (for its
// new stack, say) after it has switched to the new program but before
// sched_process_exec reports it; such a check's exec is taken from the
// pending events first. One never seen (an event lost, or a process that
// joined a target without exec) is named from the event and /proc, flagged
// "procFS".
func (s *liveStream) lookup(key bpf.ExecKey, ev bpf.Event) *liveProcess {
	if p, ok := s.procs[key]; ok {
		if p.proc.Pod == nil && p.cgroup != 0 { // its container has been named since
			p.proc.Pod = s.pod(p.cgroup)
		}
		return p
	}
	for i, pending := range s.pending {
		if e, ok := pending.(*bpf.Exec); ok && e.Exec == key {
			heap.Remove(&s.pending, i)
			s.onExec(e)
			return s.procs[key]
		}
	}
	h := ev.EventHeader()
	proc := s.procProcess(key, h.Comm)
	proc.Pod = s.pod(h.CgroupID)
	p := &liveProcess{proc: proc, rates: map[rateKey]*events.ProcessKprobe{}, cgroup: h.CgroupID}
	s.procs[key] = p
	if _, ok := s.current[key.TGID]; !ok {
		s.current[key.TGID] = key
	}
	return p
}

// process is the process of an exec for a parent field; nil when unknown
// (key zero: the kernel's idle task, or a process outside every target that
// has gone).
func (s *liveStream) process(key bpf.ExecKey) *events.Process {
	if key == (bpf.ExecKey{}) {
		return nil
	}
	if p, ok := s.procs[key]; ok {
		return p.proc
	}
	proc := s.procProcess(key, "")
	s.procs[key] = &liveProcess{proc: proc}
	s.exited = append(s.exited, key) // outside the targets: kept like an ended exec
	return proc
}

// procProcess names a process capprof saw no exec of from /proc: a parent
// outside the targets (the container runtime), or a process whose events
// were lost.
func (s *liveStream) procProcess(key bpf.ExecKey, comm string) *events.Process {
	p := &events.Process{ExecID: s.execID(key), PID: key.TGID, TID: key.TGID, Binary: comm, Flags: "procFS",
		StartTime: s.wall(key.Start), AUID: 4294967295}
	if args := s.cfg.Redact.Args(procArgs(key.TGID)); len(args) > 0 {
		p.Binary = args[0]
		p.Arguments = strings.Join(args[1:], " ")
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", key.TGID)); err == nil && !strings.HasPrefix(p.Binary, "/") {
		p.Binary = escape.Name(exe)
	}
	return p
}

// procArgs reads a process's arguments from /proc, as the kernel's are
// recorded (escape.Name); nil when it is gone.
func procArgs(pid uint32) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	for i, a := range args {
		args[i] = escape.Name(a)
	}
	return args
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

func (s *liveStream) write(e *events.Event, at time.Duration) {
	if p := e.Process(); s.podsMode && p != nil && p.Pod == nil {
		// A cgroup below a pod's that no selected container explains: the
		// pod's sandbox, or a container not named (yet) when its events
		// were due.
		s.unnamed++
		return
	}
	e.NodeName, e.Time = s.node, s.wall(at)
	if !s.cfg.Filter.Match(e) {
		s.filtered++
		return
	}
	if s.writeErr != nil {
		return
	}
	if err := s.writer.Write(e); err != nil {
		s.writeFailed(err)
		return
	}
	s.written++
}

// hostNamespaces are PID 1's namespaces, which is_host compares with; where
// PID 1's cannot be read (a sandboxed init), capprof's own, as a node agent
// runs in the host's.
type hostNamespaces struct {
	ns   [bpf.NamespaceCount]uint32
	user uint32
}

func readHostNamespaces() hostNamespaces {
	var h hostNamespaces
	for index, name := range map[int]string{
		bpf.NSUTS: "uts", bpf.NSIPC: "ipc", bpf.NSMnt: "mnt", bpf.NSPID: "pid", bpf.NSPIDForChildren: "pid_for_children",
		bpf.NSNet: "net", bpf.NSTime: "time", bpf.NSTimeForChildren: "time_for_children", bpf.NSCgroup: "cgroup",
	} {
		h.ns[index] = nsInode(name)
	}
	h.user = nsInode("user")
	return h
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

// eventHeap orders events by kernel time.
type eventHeap []bpf.Event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].EventHeader().Time < h[j].EventHeader().Time }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(bpf.Event)) }
func (h *eventHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
