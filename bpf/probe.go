package bpf

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// tracefsDir is where kprobes are created on kernels without the kprobe PMU
// (cilium/ebpf falls back to its kprobe_events); the kprobe backend mounts
// it when the host has not (minimal hosts and VMs often do not).
const tracefsDir = "/sys/kernel/tracing"

// Probe is a loaded, not yet attached set of capprof programs and maps.
type Probe struct {
	backend Backend
	// spec and coll are capprof.o: the programs every backend runs and
	// every map, which the backend's object (hooksSpec, hooks) uses too.
	spec      *ebpf.CollectionSpec
	coll      *ebpf.Collection
	hooksSpec *ebpf.CollectionSpec
	hooks     *ebpf.Collection
	links     []link.Link
	reader    *ringbuf.Reader
	// liveReader reads live check events; nil without Options.LiveEvents.
	liveReader *ringbuf.Reader
	startup    time.Duration
	// kprobesMissed are the hits the kprobes themselves missed (their
	// nmissed), read when they are detached.
	kprobesMissed uint64
	closed        bool // Close has run
}

// Options tune a Probe.
type Options struct {
	// Startup is how long after its start a target's checks count as
	// startup; later ones are steady state (Check.Steady).
	Startup time.Duration
	// Backend chooses the hooks; Auto (or "") picks the first of Backends
	// that this kernel can run.
	Backend Backend
	// LiveEvents makes capability checks also come out of ReadLiveEvent,
	// and execs carry ExecDetails. Without it they cost nothing.
	LiveEvents bool
	// CheckInterval is the live events' rate limit: at most one LiveCheck
	// per exec, capability and verdict per interval (0: every check).
	CheckInterval time.Duration
	// PreferAuditOptions makes Auto try first the backends that read
	// cap_capable's audit options (PreferredBackends): the tracepoint's
	// checks are classed by their call stacks, which need kernel symbols.
	PreferAuditOptions bool
	// EventBufferBytes sizes the event ring buffer (a power of two of at
	// least a page; 0: the object's 4 MiB). It holds the events that come
	// while the reader waits for a CPU.
	EventBufferBytes uint32
	// credFieldsApart reads struct cred field by field where one span
	// would do, so that tests compare both ways on one kernel.
	credFieldsApart bool
}

// Load loads and verifies the programs of one backend (Open picks one for
// Auto) and every map, without attaching them.
func Load(opts Options) (*Probe, error) {
	if opts.Backend == Auto || opts.Backend == "" {
		return nil, errors.New("load: a backend, not auto: Open picks one")
	}
	kernel, err := kernelSpec()
	if err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. Raising it
	// needs CAP_SYS_RESOURCE, which some hosts withhold even from root; newer
	// kernels charge the memory cgroup instead, so a failure here is harmless.
	_ = rlimit.RemoveMemlock()
	return load(kernel, opts.Backend, opts)
}

// Open loads and attaches the programs of the chosen backend. With Auto it
// takes the first of Backends (or of PreferredBackends, with
// Options.PreferAuditOptions) that loads and attaches: a backend that the
// verifier accepts can still fail to attach (a kprobe the kernel refuses, a
// tracing link a policy forbids), and the next one is tried then.
func Open(opts Options) (*Probe, error) {
	if opts.Backend != Auto && opts.Backend != "" {
		return openBackend(opts)
	}
	order := Backends
	if opts.PreferAuditOptions {
		order = PreferredBackends
	}
	var probe *Probe
	err := firstBackend(order, func(b Backend) error {
		o := opts
		o.Backend = b
		var err error
		probe, err = openBackend(o)
		return err
	})
	return probe, err
}

// openBackend loads and attaches the programs of opts.Backend.
func openBackend(opts Options) (*Probe, error) {
	p, err := Load(opts)
	if err != nil {
		return nil, err
	}
	if err := attachProbe(p); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// attachProbe is Attach; tests make it fail.
var attachProbe = (*Probe).Attach

// setVariable sets a volatile const before loading, in each object that
// has it (every object includes the headers that use it).
func setVariable(specs []*ebpf.CollectionSpec, name string, value any) error {
	found := false
	for _, spec := range specs {
		if v, ok := spec.Variables[name]; ok {
			if err := v.Set(value); err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("set %s: no such variable in the eBPF objects", name)
	}
	return nil
}

func load(kernel *btf.Spec, backend Backend, opts Options) (*Probe, error) {
	if err := checkBackend(kernel, backend); err != nil {
		return nil, err
	}
	spec, err := loadCapprof()
	if err != nil {
		return nil, fmt.Errorf("parse embedded eBPF object: %w", err)
	}
	hooksSpec, err := hookObjects[backend]()
	if err != nil {
		return nil, fmt.Errorf("parse embedded eBPF object of %s: %w", backend, err)
	}
	specs := []*ebpf.CollectionSpec{spec, hooksSpec}
	for _, s := range specs {
		fitKfuncs(s, kernel)
	}
	if apart, err := credFieldsApart(kernel); err != nil {
		return nil, err
	} else if apart || opts.credFieldsApart {
		if err := setVariable(specs, "cred_fields_apart", uint8(1)); err != nil {
			return nil, err
		}
	}
	if err := setVariable(specs, "startup_window_ns", uint64(opts.Startup)); err != nil {
		return nil, err
	}
	if backend == Tracepoint {
		if err := setVariable(specs, "compare_creds_lazily", uint8(1)); err != nil {
			return nil, err
		}
	}
	if legacy, err := capCapableAuditArg(kernel); err != nil {
		return nil, err
	} else if legacy {
		if err := setVariable(specs, "cap_capable_audit_arg", uint8(1)); err != nil {
			return nil, err
		}
	}
	if opts.LiveEvents {
		if err := setVariable(specs, "stream_events", uint8(1)); err != nil {
			return nil, err
		}
		if err := setVariable(specs, "check_event_interval_ns", uint64(opts.CheckInterval)); err != nil {
			return nil, err
		}
	}
	if opts.EventBufferBytes != 0 {
		for _, s := range specs {
			if m, ok := s.Maps["events"]; ok {
				m.MaxEntries = opts.EventBufferBytes
			}
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, loadError(backend, err)
	}
	hooks, err := ebpf.NewCollectionWithOptions(hooksSpec, ebpf.CollectionOptions{MapReplacements: sharedMaps(hooksSpec, coll)})
	if err != nil {
		coll.Close()
		return nil, loadError(backend, err)
	}
	p := &Probe{backend: backend, spec: spec, coll: coll, hooksSpec: hooksSpec, hooks: hooks, startup: opts.Startup}
	if p.reader, err = ringbuf.NewReader(coll.Maps["events"]); err != nil {
		p.closeObjects()
		return nil, fmt.Errorf("open event ring buffer: %w", err)
	}
	if opts.LiveEvents {
		if p.liveReader, err = ringbuf.NewReader(coll.Maps["live_events"]); err != nil {
			p.reader.Close()
			p.closeObjects()
			return nil, fmt.Errorf("open live event ring buffer: %w", err)
		}
	}
	return p, nil
}

// sharedMaps are capprof.o's maps that a backend's object declares too
// (lib/maps.h, and the target pre-filter's section), to be used in place of
// its own: every program then counts into the same maps. Read-only data stays
// each object's own: the constants set above.
func sharedMaps(hooks *ebpf.CollectionSpec, shared *ebpf.Collection) map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	for name := range hooks.Maps {
		if m, ok := shared.Maps[name]; ok && !strings.HasPrefix(name, ".rodata") {
			out[name] = m
		}
	}
	return out
}

// fitKfuncs fits capprof's weak kfunc declarations to this kernel's, so
// that one object loads on every kernel. A kfunc whose kernel prototype
// differs only in parameter types (void * against struct bpf_map *, say)
// takes the kernel's: the arguments are the same registers, and the
// verifier checks them against the kernel's types anyway. One whose
// parameters differ in number is renamed, so cilium/ebpf finds no such
// kfunc and leaves the call out (weak) instead of refusing the object.
// lib/check.h declares both forms of bpf_task_work_schedule_resume (6.18's
// _impl, 6.19+'s with an implicit argument) and calls the one that exists.
// (Verified on Debian's 6.1, 6.12, 7.3 and the 6.18 development kernel.)
func fitKfuncs(spec *ebpf.CollectionSpec, kernel *btf.Spec) {
	for typ := range spec.Types.All() {
		fn, ok := typ.(*btf.Func)
		if !ok || fn.Linkage != btf.ExternFunc {
			continue
		}
		// Since 6.19 an X_impl kfunc is the legacy twin of X, whose last
		// argument is implicit; 7.3 lists X_impl in its BTF but cannot
		// resolve its address, so X_impl is dropped wherever X exists.
		var plain *btf.Func
		if base, ok := strings.CutSuffix(fn.Name, "_impl"); ok && kernel.TypeByName(base, &plain) == nil {
			fn.Name += "___superseded"
			continue
		}
		var target *btf.Func
		if err := kernel.TypeByName(fn.Name, &target); err != nil || btf.CheckTypeCompatibility(fn.Type, target.Type) == nil {
			continue
		}
		if sameArity(fn, target) {
			fn.Type = target.Type
		} else {
			fn.Name += "___incompatible"
		}
	}
}

func sameArity(a, b *btf.Func) bool {
	pa, okA := a.Type.(*btf.FuncProto)
	pb, okB := b.Type.(*btf.FuncProto)
	return okA && okB && len(pa.Params) == len(pb.Params)
}

// loadError explains a refused load; the verifier's log follows its error.
func loadError(backend Backend, err error) error {
	if backend == Fexit && errors.Is(err, unix.EPERM) {
		// cilium/ebpf's wrapping suggests MEMLOCK, which is not the cause here.
		return fmt.Errorf("kernel %s refuses fentry/fexit programs (bpf(BPF_PROG_LOAD): %v): BPF trampolines are not allowed here "+
			"(a lockdown or security policy, or a kernel without trampoline support); use --probe auto or kprobe", KernelRelease(), unix.EPERM)
	}
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		return fmt.Errorf("load eBPF programs: %w\n%+v", err, verr)
	}
	return fmt.Errorf("load eBPF programs: %w", err)
}

// Backend returns the backend the probe was loaded with.
func (p *Probe) Backend() Backend { return p.backend }

// Target is how a cgroup joins the in-kernel target set.
type Target struct {
	// Started is when the target's workload started; the zero time means
	// it has not yet, and its first exec starts it.
	Started time.Time
	// Runtime says that a container runtime starts the target's processes:
	// a task entering it from outside the target set is the runtime's until
	// it executes the workload (a pod's cgroups; not a recorded command's).
	// Cgroups created below the target inherit it.
	Runtime bool
}

// AddTarget puts a cgroup2 id into the in-kernel target set; cgroups
// created below it join by themselves (CgroupEvent). Checks and events carry
// the cgroup id, which is how user space tells targets apart. It returns
// false when the cgroup was a target already (the kernel side added it at
// its creation), which it leaves as it is.
func (p *Probe) AddTarget(cgroupID uint64, t Target) (bool, error) {
	target := capprofTarget{Phase: uint32(capprofTargetPhaseTARGET_NOT_STARTED)}
	if t.Runtime {
		target.Flags = uint32(capprofTargetFlagTARGET_RUNTIME)
	}
	if started := t.Started; !started.IsZero() {
		now, err := MonotonicNow()
		if err != nil {
			return false, err
		}
		age := max(time.Since(started), 0)
		target.StartedNs = uint64(max(now-age, 1))
		target.Phase = uint32(p.phaseAt(now, time.Duration(target.StartedNs)))
	}
	if err := p.coll.Maps["targets"].Update(cgroupID, &target, ebpf.UpdateNoExist); errors.Is(err, ebpf.ErrKeyExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("add cgroup %d to the target set: %w", cgroupID, err)
	}
	// The exact entry exists before its pre-filter slot opens, so no check
	// passes the filter and then misses the map for a target being added.
	// Its size is TARGET_FILTER_SLOTS, taken from the object.
	// The kernel side sets slots too (on_cgroup_mkdir): only this one is
	// written, so none of its is lost.
	if err := p.openFilterSlot(cgroupID); err != nil {
		return false, fmt.Errorf("set target filter: %w", err)
	}
	return true, nil
}

// openFilterSlot sets cgroupID's byte of target_filter in place, through the
// memory mapping of its section: the kernel side sets slots too
// (on_cgroup_mkdir), so a read-modify-write of the whole array could undo
// one of its.
func (p *Probe) openFilterSlot(cgroupID uint64) error {
	filter := p.coll.Variables["target_filter"]
	section, offset, err := variableOffset(p.spec, "target_filter")
	if err != nil {
		return err
	}
	mem, err := p.coll.Maps[section].Memory()
	if err != nil {
		return err
	}
	_, err = mem.WriteAt([]byte{1}, int64(offset)+int64(cgroupID%uint64(filter.Size())))
	return err
}

// variableOffset finds a global variable's section and offset in it.
func variableOffset(spec *ebpf.CollectionSpec, name string) (string, uint32, error) {
	for section, m := range spec.Maps {
		ds, ok := m.Value.(*btf.Datasec)
		if !ok {
			continue
		}
		for _, v := range ds.Vars {
			if vr, ok := v.Type.(*btf.Var); ok && vr.Name == name {
				return section, v.Offset, nil
			}
		}
	}
	return "", 0, fmt.Errorf("no variable %s in the eBPF object", name)
}

// ArmPod makes the cgroup the kubelet creates for the pod with this uid a
// target at its creation (pod<uid>, or <...>-pod<uid_>.slice for the
// systemd driver), and so every container cgroup below it from its first
// instruction. Arm a pod before looking for its cgroup: one created in
// between is then a target either way.
func (p *Probe) ArmPod(uid string) error {
	var key capprofPodKey
	if len(uid) != len(key.Uid) {
		return fmt.Errorf("arm pod %q: a pod uid has %d characters", uid, len(key.Uid))
	}
	for i := range key.Uid {
		key.Uid[i] = int8(uid[i])
	}
	if err := p.coll.Maps["armed_pods"].Put(&key, uint8(1)); err != nil {
		return fmt.Errorf("arm pod %s: %w", uid, err)
	}
	return nil
}

// ArmAllPods makes the cgroup of every pod the kubelet creates from now on
// a target at its creation, for when pods are known only after their
// cgroup exists; RemoveTarget drops the ones not wanted.
func (p *Probe) ArmAllPods() error {
	if err := p.coll.Maps["armed_pods"].Put(&capprofPodKey{}, uint8(1)); err != nil {
		return fmt.Errorf("arm every new pod: %w", err)
	}
	return nil
}

// RemoveTarget takes a cgroup out of the target set; cgroups created below
// it from then on are not targets. What it recorded stays.
func (p *Probe) RemoveTarget(cgroupID uint64) error {
	if err := p.coll.Maps["targets"].Delete(cgroupID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("remove cgroup %d from the target set: %w", cgroupID, err)
	}
	return nil
}

func (p *Probe) phaseAt(now, started time.Duration) capprofTargetPhase {
	if now-started >= p.startup {
		return capprofTargetPhaseTARGET_STEADY
	}
	return capprofTargetPhaseTARGET_STARTUP
}

// MonotonicNow reads CLOCK_MONOTONIC, the clock of event times.
func MonotonicNow() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// Attach attaches every program to its hook, as named by its ELF section.
func (p *Probe) Attach() error {
	if p.backend == Kprobe {
		if err := EnsureTracefs(); err != nil {
			return err
		}
	}
	for section, prog := range p.programs() {
		var (
			l   link.Link
			err error
		)
		switch kind, hook, _ := strings.Cut(section, "/"); kind {
		case "iter": // run by ListProcesses, not attached to a hook
			continue
		case "tp_btf", "fentry", "fexit":
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		case "kprobe":
			l, err = link.Kprobe(hook, prog, nil)
		case "kretprobe":
			l, err = link.Kretprobe(hook, prog, nil)
		default:
			err = fmt.Errorf("unknown section kind %q", kind)
		}
		if err != nil {
			p.detach()
			return fmt.Errorf("attach %s: %w", section, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// programs yields every loaded program, capprof.o's and the backend's,
// with its ELF section, which names its hook.
func (p *Probe) programs() iter.Seq2[string, *ebpf.Program] {
	return func(yield func(string, *ebpf.Program) bool) {
		for _, o := range []struct {
			spec *ebpf.CollectionSpec
			coll *ebpf.Collection
		}{{p.spec, p.coll}, {p.hooksSpec, p.hooks}} {
			for name, prog := range o.coll.Programs {
				if !yield(o.spec.Programs[name].SectionName, prog) {
					return
				}
			}
		}
	}
}

// EnsureTracefs mounts tracefs at /sys/kernel/tracing unless it is there:
// cilium/ebpf looks for kprobe_events in it, and bpftrace for its
// tracepoints (without it bpftrace attaches nothing and says so only in a
// warning).
func EnsureTracefs() error {
	if _, err := os.Stat(tracefsDir + "/events"); err == nil {
		return nil
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs at %s: %w (mount it yourself: mount -t tracefs tracefs %s)", tracefsDir, err, tracefsDir)
	}
	return nil
}

// Detach stops every hook and counts every thread's run of checks in
// progress (lib/pending.h) in the aggregation; counters keep their values and
// queued events stay readable, so a recording is final once Detach returns.
func (p *Probe) Detach() error {
	p.detach()
	if _, err := p.runIter("take_pending"); err != nil {
		return fmt.Errorf("count the checks in progress: %w", err)
	}
	return nil
}

func (p *Probe) detach() {
	for _, l := range p.links {
		p.kprobesMissed += kprobeMissed(l)
		l.Close()
	}
	p.links = nil
}

// kprobeMissed is how many hits a kprobe link's probe missed (another
// kprobe running on the CPU; a kretprobe without a free instance): Linux
// 6.7+ reports it, earlier kernels and other links count 0.
func kprobeMissed(l link.Link) uint64 {
	info, err := l.Info()
	if err != nil || info.PerfEvent() == nil || info.PerfEvent().Kprobe() == nil {
		return 0
	}
	return info.PerfEvent().Kprobe().Missed
}

// Close detaches and frees everything.
func (p *Probe) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	p.detach()
	p.reader.Close()
	if p.liveReader != nil {
		p.liveReader.Close()
	}
	p.closeObjects()
	return nil
}

func (p *Probe) closeObjects() {
	p.hooks.Close()
	p.coll.Close()
}

// ListProcesses reports every process now running in a target cgroup as an
// *Exec with Existing set, through ReadEvent, so that live events can name
// processes that started before their cgroup became a target. It runs a
// task iterator over every task on the node.
func (p *Probe) ListProcesses() error {
	_, err := p.runIter("list_processes")
	return err
}

// runIter runs the task iterator program name over every task on the node
// and returns what it wrote.
func (p *Probe) runIter(name string) ([]byte, error) {
	it, err := link.AttachIter(link.IterOptions{Program: p.coll.Programs[name]})
	if err != nil {
		return nil, fmt.Errorf("attach task iterator %s: %w", name, err)
	}
	defer it.Close()
	r, err := it.Open()
	if err != nil {
		return nil, fmt.Errorf("run task iterator %s: %w", name, err)
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("run task iterator %s: %w", name, err)
	}
	return out, nil
}

// TakeSuppressed returns how many checks of exec with capability cap and
// this verdict the rate limit held back since the last LiveCheck, and
// forgets them: call it when the exec has ended (its exit, or the next
// exec), so that every check is accounted for.
func (p *Probe) TakeSuppressed(exec ExecKey, cap uint8, denied bool) (uint64, error) {
	key := capprofRateKey{StartNs: uint64(exec.Start), Tgid: exec.TGID, ExecSeq: exec.Seq, Cap: cap}
	if denied {
		key.Denied = 1
	}
	var st capprofRateState
	err := p.coll.Maps["check_rates"].LookupAndDelete(&key, &st)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read live event rate limit: %w", err)
	}
	return st.Suppressed, nil
}

// Stats are the losses counted in the kernel.
type Stats struct {
	RingBufferDrops    uint64 // events lost because the ring buffer was full
	AggregationMapFull uint64 // checks not counted because the checks map was full
	PendingMapFull     uint64 // credential changes not followed: no task state could be stored
	OutcomesLost       uint64 // denied checks whose syscall's return was not followed
	LiveDrops          uint64 // live check events lost: their ring buffer or the rate limiter's map was full
	TargetsFull        uint64 // cgroups created below a target but not tracked: the target map was full
	// SkippedRuns are hits of capprof's hooks that ran none of its
	// programs: the kernel's recursion protection skipped them (a kprobe
	// finds the CPU's bpf_prog_active held by another BPF program or a BPF
	// map syscall: Linux 6.7+ counts these), or the kprobe missed them
	// (read at Detach). A check or an event is missing for each.
	SkippedRuns uint64
}

// Stats sums the per-CPU loss counters.
func (p *Probe) Stats() (Stats, error) {
	sum := func(index capprofStatIndex) (uint64, error) {
		var perCPU []uint64
		if err := p.coll.Maps["stats"].Lookup(index, &perCPU); err != nil {
			return 0, fmt.Errorf("read stats[%d]: %w", uint32(index), err)
		}
		var total uint64
		for _, v := range perCPU {
			total += v
		}
		return total, nil
	}
	var s Stats
	var err error
	if s.RingBufferDrops, err = sum(capprofStatIndexSTAT_RINGBUF_DROPS); err != nil {
		return s, err
	}
	if s.AggregationMapFull, err = sum(capprofStatIndexSTAT_AGG_FULL); err != nil {
		return s, err
	}
	if s.PendingMapFull, err = sum(capprofStatIndexSTAT_PENDING_FULL); err != nil {
		return s, err
	}
	if s.OutcomesLost, err = sum(capprofStatIndexSTAT_OUTCOME_LOST); err != nil {
		return s, err
	}
	if s.LiveDrops, err = sum(capprofStatIndexSTAT_LIVE_DROPS); err != nil {
		return s, err
	}
	if s.TargetsFull, err = sum(capprofStatIndexSTAT_TARGETS_FULL); err != nil {
		return s, err
	}
	s.SkippedRuns = p.kprobesMissed
	for section, prog := range p.programs() {
		st, err := prog.Stats()
		if err != nil {
			return s, fmt.Errorf("read statistics of program %s: %w", section, err)
		}
		s.SkippedRuns += st.RecursionMisses
	}
	return s, nil
}

// Checks returns every aggregated capability check with its total count
// and, for denied ones, the outcomes of the syscalls that were followed.
func (p *Probe) Checks() ([]Check, error) {
	var (
		key     capprofAggKey
		perCPU  []uint64
		outcome capprofOutcome
		out     []Check
	)
	outcomes := p.coll.Maps["outcomes"]
	it := p.coll.Maps["checks"].Iterate()
	for it.Next(&key, &perCPU) {
		c := Check{CheckKey: checkFromKey(&key)}
		for _, v := range perCPU {
			c.Count += v
		}
		if c.Denied {
			err := outcomes.Lookup(&key, &outcome)
			switch {
			case err == nil:
				c.SyscallFailed, c.SyscallSucceeded = outcome.Failed, outcome.Succeeded
			case !errors.Is(err, ebpf.ErrKeyNotExist):
				return nil, fmt.Errorf("read denial outcomes: %w", err)
			}
		}
		out = append(out, c)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read aggregated checks: %w", err)
	}
	if p.links == nil { // detached: the runs in progress are in the map
		return out, nil
	}
	return p.addRuns(out)
}

// addRuns adds to checks, read from the aggregation while the probe runs,
// the threads' runs of checks not yet counted there (lib/pending.h). The
// map is read first: a run that ends in between is missing from this
// snapshot, never counted twice.
func (p *Probe) addRuns(checks []Check) ([]Check, error) {
	raw, err := p.runIter("peek_pending")
	if err != nil {
		return nil, fmt.Errorf("read the checks in progress: %w", err)
	}
	var run capprofPendingRun
	size := int(unsafe.Sizeof(run))
	if len(raw)%size != 0 {
		return nil, fmt.Errorf("read the checks in progress: %d bytes, not whole records of %d", len(raw), size)
	}
	index := make(map[CheckKey]int, len(checks))
	for i, c := range checks {
		index[c.CheckKey] = i
	}
	for off := 0; off < len(raw); off += size {
		if err := decode(raw[off:off+size], &run); err != nil {
			return nil, fmt.Errorf("read the checks in progress: %w", err)
		}
		key := checkFromKey(&run.Key)
		i, ok := index[key]
		if !ok {
			i = len(checks)
			index[key] = i
			checks = append(checks, Check{CheckKey: key})
		}
		checks[i].Count += run.Count
	}
	return checks, nil
}
