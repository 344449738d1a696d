package recorder

import (
	"fmt"
	"iter"
	"os"
	"strings"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/internal/escape"
)

// exitedKept is how many ended execs stay known, so that a late event of
// theirs, or a child's parent, still finds them.
const exitedKept = 4096

// liveProcess is an exec as live events show it.
type liveProcess struct {
	proc   *events.Process
	parent bpf.ExecKey
	// cgroup names the process's pod once the container it runs in is
	// known, which may come after its exec (see targetNames).
	cgroup uint64
	// rates are the (capability, verdict) pairs with checks sent, with the
	// last one's event; their held-back counts are read when the exec ends.
	// nil once it has ended.
	rates map[rateKey]*events.ProcessKprobe
}

// processTable is the execs live events know: those running, by process,
// and the last exitedKept that ended.
type processTable struct {
	procs   map[bpf.ExecKey]*liveProcess
	running map[uint32]bpf.ExecKey // a process's current exec, by pid
	exited  []bpf.ExecKey          // oldest first
}

func newProcessTable() *processTable {
	return &processTable{procs: map[bpf.ExecKey]*liveProcess{}, running: map[uint32]bpf.ExecKey{}}
}

func (t *processTable) get(key bpf.ExecKey) (*liveProcess, bool) {
	p, ok := t.procs[key]
	return p, ok
}

// current is the exec a process runs now.
func (t *processTable) current(tgid uint32) (bpf.ExecKey, bool) {
	key, ok := t.running[tgid]
	return key, ok
}

// start makes p the exec its process runs now.
func (t *processTable) start(key bpf.ExecKey, p *liveProcess) {
	t.procs[key] = p
	t.running[key.TGID] = key
}

// adopt adds an exec seen only through its events: its process's current
// one unless another is known.
func (t *processTable) adopt(key bpf.ExecKey, p *liveProcess) {
	t.procs[key] = p
	if _, ok := t.running[key.TGID]; !ok {
		t.running[key.TGID] = key
	}
}

// addGone adds a process outside the targets (a parent), kept like an
// ended exec.
func (t *processTable) addGone(key bpf.ExecKey, p *liveProcess) {
	t.procs[key] = p
	t.forgetLater(key)
}

// end marks an exec ended; it is forgotten once exitedKept others have
// ended after it.
func (t *processTable) end(key bpf.ExecKey) {
	p, ok := t.procs[key]
	if !ok {
		return
	}
	p.rates = nil
	if t.running[key.TGID] == key {
		delete(t.running, key.TGID)
	}
	t.forgetLater(key)
}

func (t *processTable) forgetLater(key bpf.ExecKey) {
	t.exited = append(t.exited, key)
	if len(t.exited) > exitedKept {
		delete(t.procs, t.exited[0])
		t.exited = t.exited[1:]
	}
}

// unended yields the execs that have not ended.
func (t *processTable) unended() iter.Seq[bpf.ExecKey] {
	return func(yield func(bpf.ExecKey) bool) {
		for key, p := range t.procs {
			if p.rates != nil && !yield(key) {
				return
			}
		}
	}
}

// lookup finds the exec an event came from. An exec makes checks (for its
// new stack, say) after it has switched to the new program but before
// sched_process_exec reports it; such a check's exec is taken from the
// pending events first. One never seen (an event lost, or a process that
// joined a target without exec) is named from the event and /proc, flagged
// "procFS".
func (s *liveStream) lookup(key bpf.ExecKey, ev bpf.Event) *liveProcess {
	if p, ok := s.procs.get(key); ok {
		if p.proc.Pod == nil && p.cgroup != 0 { // its container has been named since
			p.proc.Pod = s.pod(p.cgroup)
		}
		return p
	}
	if e := s.pending.takeExec(key); e != nil {
		s.onExec(e)
		p, _ := s.procs.get(key)
		return p
	}
	h := ev.EventHeader()
	proc := s.procProcess(key, h.Comm)
	proc.Pod = s.pod(h.CgroupID)
	p := &liveProcess{proc: proc, rates: map[rateKey]*events.ProcessKprobe{}, cgroup: h.CgroupID}
	s.procs.adopt(key, p)
	return p
}

// process is the process of an exec for a parent field; nil when unknown
// (key zero: the kernel's idle task, or a process outside every target that
// has gone).
func (s *liveStream) process(key bpf.ExecKey) *events.Process {
	if key == (bpf.ExecKey{}) {
		return nil
	}
	if p, ok := s.procs.get(key); ok {
		return p.proc
	}
	proc := s.procProcess(key, "")
	s.procs.addGone(key, &liveProcess{proc: proc})
	return proc
}

// procProcess names a process capprof saw no exec of from /proc: a parent
// outside the targets (the container runtime), or a process whose events
// were lost.
func (s *liveStream) procProcess(key bpf.ExecKey, comm string) *events.Process {
	p := &events.Process{ExecID: s.execID(key), PID: key.TGID, TID: key.TGID, Binary: comm, Flags: "procFS",
		StartTime: s.wall(key.Start), AUID: 4294967295}
	if !s.hostPIDs {
		return p // /proc is another PID namespace's: the command name alone
	}
	if args := s.cfg.Redact.Args(s.procArgs(key.TGID)); len(args) > 0 {
		p.Binary = args[0]
		p.Arguments = strings.Join(args[1:], " ")
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", key.TGID)); err == nil && !strings.HasPrefix(p.Binary, "/") {
		p.Binary = escape.Name(exe)
	}
	return p
}

// procArgs reads a process's arguments from /proc, as the kernel's are
// recorded (escape.Name); nil when it is gone, or when /proc is another
// PID namespace's.
func (s *liveStream) procArgs(pid uint32) []string {
	if !s.hostPIDs {
		return nil
	}
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
