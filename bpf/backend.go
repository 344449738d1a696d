package bpf

import (
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Backend names a set of kernel hooks that see capability checks and
// credential changes. Every backend feeds the same maps and events.
type Backend string

// Backends, and Auto, which picks one.
const (
	// Auto picks the first of Backends that the kernel can run.
	Auto Backend = "auto"
	// Tracepoint uses the capability:cap_capable tracepoint (Linux 6.14+)
	// and finds credential changes by comparing a task's credentials with
	// those it last had, at set*id/capset checks, exec and exit.
	Tracepoint Backend = "tracepoint"
	// Fexit uses fexit/cap_capable, which also sees the check's audit
	// options, and fentry/commit_creds, which sees every credential install
	// (Linux 5.5+ with BTF trampolines).
	Fexit Backend = "fexit"
	// Kprobe uses a kprobe/kretprobe pair on cap_capable and a kprobe on
	// commit_creds, for kernels that refuse BPF trampolines.
	Kprobe Backend = "kprobe"
)

// Backends in the order Auto tries them: the tracepoint is a stable kernel
// interface and the cheapest hook (no trampoline, no int3); fexit reads the
// most (audit options, commit_creds); kprobes work where trampolines do not.
var Backends = []Backend{Tracepoint, Fexit, Kprobe}

// PreferredBackends is the order Auto tries when kernel symbols cannot be
// read: the backends that see cap_capable's audit options first.
var PreferredBackends = []Backend{Fexit, Kprobe, Tracepoint}

// ParseBackend reads a --probe value.
func ParseBackend(s string) (Backend, error) {
	for _, b := range append([]Backend{Auto}, Backends...) {
		if s == string(b) {
			return b, nil
		}
	}
	return "", unknownProbe(s)
}

func unknownProbe(s string) error {
	return fmt.Errorf("unknown probe %q: use auto, tracepoint, fexit or kprobe", s)
}

// SeesAuditOptions says whether the backend reads cap_capable's opts, so
// that checks carry their audit class rather than one inferred from stacks.
func (b Backend) SeesAuditOptions() bool { return b == Fexit || b == Kprobe }

// hookObjects load the compiled object of each backend's hooks
// (tracepoint.c, fexit.c, kprobe.c); capprof.o, loaded with each, holds the
// programs they all run.
var hookObjects = map[Backend]func() (*ebpf.CollectionSpec, error){
	Tracepoint: loadTracepoint,
	Fexit:      loadFexit,
	Kprobe:     loadKprobe,
}

// kernelSpec is the running kernel's BTF, which every backend needs (CO-RE).
func kernelSpec() (*btf.Spec, error) {
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("read kernel BTF: %w (capprof needs a kernel built with CONFIG_DEBUG_INFO_BTF, exposed at /sys/kernel/btf/vmlinux)", err)
	}
	return kernel, nil
}

// CheckBackend reports why this kernel cannot run the backend, or nil, from
// what can be seen without loading programs (BTF types, kprobe support).
// Auto checks that some backend passes. A backend that passes can still
// be refused at load time (fentry under a lockdown, say): Load tells.
func CheckBackend(backend Backend) error {
	kernel, err := kernelSpec()
	if err != nil {
		return err
	}
	if backend != Auto {
		return checkBackend(kernel, backend)
	}
	return firstBackend(Backends, func(b Backend) error { return checkBackend(kernel, b) })
}

// firstBackend calls try with each of backends in order until one
// succeeds; when none does, the error gives each one's reason.
func firstBackend(backends []Backend, try func(Backend) error) error {
	var reasons []string
	for _, b := range backends {
		err := try(b)
		if err == nil {
			return nil
		}
		reasons = append(reasons, fmt.Sprintf("%s: %v", b, err))
	}
	return fmt.Errorf("no probe backend works on kernel %s: %s", KernelRelease(), strings.Join(reasons, "; "))
}

// kprobeInterfaces: the kprobe PMU exists when the kernel has kprobes
// (CONFIG_KPROBES) and lets perf_event_open create them; kprobe_events is
// the older tracefs route.
var kprobeInterfaces = []string{"/sys/bus/event_source/devices/kprobe/type", tracefsDir + "/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"}

func checkBackend(kernel *btf.Spec, backend Backend) error {
	switch backend {
	case Tracepoint:
		var tp *btf.Typedef
		if err := kernel.TypeByName("btf_trace_cap_capable", &tp); err != nil {
			return fmt.Errorf("kernel %s has no capability:cap_capable tracepoint (added in Linux 6.14): use --probe auto, fexit or kprobe", KernelRelease())
		}
	case Fexit, Kprobe:
		for _, fn := range []string{"cap_capable", "commit_creds"} {
			var f *btf.Func
			if err := kernel.TypeByName(fn, &f); err != nil {
				return fmt.Errorf("kernel %s has no function %s in its BTF: it cannot be hooked by %s", KernelRelease(), fn, backend)
			}
		}
		if backend == Kprobe && !anyExists(kprobeInterfaces) {
			return fmt.Errorf("kernel %s has no kprobes (built without CONFIG_KPROBES: no %s): use --probe auto, tracepoint or fexit",
				KernelRelease(), kprobeInterfaces[0])
		}
	default:
		return unknownProbe(string(backend))
	}
	return nil
}

func anyExists(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// capCapableAuditArg reports whether the kernel's cap_capable takes the
// pre-5.1 "int audit" argument rather than "unsigned int opts".
func capCapableAuditArg(kernel *btf.Spec) (bool, error) {
	var fn *btf.Func
	if err := kernel.TypeByName("cap_capable", &fn); err != nil {
		return false, nil // the tracepoint backend does not read it
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok || len(proto.Params) != 4 {
		return false, fmt.Errorf("kernel %s: cap_capable has an unknown prototype %v: capprof reads (cred, ns, cap, opts)", KernelRelease(), fn.Type)
	}
	return proto.Params[3].Name == "audit", nil
}

// KernelRelease is uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown release)"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// BackendStatus says whether a backend loads and attaches on this kernel.
type BackendStatus struct {
	Backend Backend
	Err     error // why it does not; nil when it works
}

// Survey loads and attaches each backend in turn, and closes it at once:
// what `capprof probes` shows. Needs root.
func Survey() []BackendStatus {
	out := make([]BackendStatus, 0, len(Backends))
	for _, b := range Backends {
		p, err := Open(Options{Backend: b})
		if err == nil {
			p.Close()
		}
		out = append(out, BackendStatus{Backend: b, Err: err})
	}
	return out
}

// FollowsDenials says whether the kernel lets capprof follow a denied
// check's syscall to its return (BPF task_work, Linux 6.18+), which tells a
// denial the workload tolerated from one that made it fail. Without it,
// denied checks' outcomes are unknown. It asks the kernel's BTF the way
// fitKfuncs does: a kfunc of either form, with the arity capprof calls.
func FollowsDenials() bool {
	kernel, err := kernelSpec()
	if err != nil {
		return false
	}
	for name, arity := range map[string]int{"bpf_task_work_schedule_resume": 4, "bpf_task_work_schedule_resume_impl": 5} {
		var fn *btf.Func
		if kernel.TypeByName(name, &fn) != nil {
			continue
		}
		if proto, ok := fn.Type.(*btf.FuncProto); ok && len(proto.Params) == arity {
			return true
		}
	}
	return false
}
