package recorder

import (
	"slices"

	"strings"

	"github.com/capprof/capprof/api/v1alpha1"
)

// auditClassByFunction fixes a check's audit class from a function on its
// call stack. The tracepoint (include/trace/events/capability.h, Linux 6.14)
// passes no CAP_OPT_* flags, so the callers that set them are recognised
// instead. From Linux 6.18:
//   - kernel/capability.c: ns_capable_noaudit (ns_capable_common with
//     CAP_OPT_NOAUDIT), has_ns_capability_noaudit and has_capability_noaudit
//     (security_capable with CAP_OPT_NOAUDIT), ptracer_capable (the same,
//     for the tracer's credentials), ns_capable_setid (CAP_OPT_INSETID);
//   - security/commoncap.c: cap_vm_enough_memory calls cap_capable with
//     CAP_OPT_NOAUDIT on every accountable mapping (mmap, brk, fork's
//     dup_mmap, execve's stack), which makes any root process look like it
//     uses CAP_SYS_ADMIN. It ends in a tail call, so on 6.18 its frame is
//     gone and cap_capable's caller reads as security_vm_enough_memory_mm
//     (security/security.c), which reaches cap_capable by no other path.
var auditClassByFunction = map[string]v1alpha1.AuditClass{
	"security_vm_enough_memory_mm": v1alpha1.NoAudit,
	"ns_capable_noaudit":           v1alpha1.NoAudit,
	"has_ns_capability_noaudit":    v1alpha1.NoAudit,
	"has_capability_noaudit":       v1alpha1.NoAudit,
	"ptracer_capable":              v1alpha1.NoAudit,
	"cap_vm_enough_memory":         v1alpha1.NoAudit,
	"ns_capable_setid":             v1alpha1.InSetID,
}

// capabilityPlumbing are the frames between a kernel feature and the check
// itself; the call site is the first frame that is not one of them.
var capabilityPlumbing = map[string]bool{
	"cap_capable":               true,
	"security_capable":          true,
	"ns_capable":                true,
	"ns_capable_noaudit":        true,
	"ns_capable_setid":          true,
	"capable":                   true,
	"has_ns_capability":         true,
	"has_ns_capability_noaudit": true,
	"has_capability_noaudit":    true,
	"file_ns_capable":           true,
	"capable_wrt_inode_uidgid":  true,
	"sk_ns_capable":             true,
	"sk_capable":                true,
	"sk_net_capable":            true,
	"netlink_ns_capable":        true,
	"netlink_capable":           true,
	"netlink_net_capable":       true,
}

// tracingFramePrefixes name the glue between the hook and the check on top
// of the stack: the BPF program itself, and per backend the tracepoint's
// (bpf_trace_run5), the BPF trampoline's (bpf_trampoline_<btf id>, a new
// symbol per attachment) and the kprobe's (ftrace or int3 entry,
// kprobe_perf_func, trace_call_bpf; rethook for the kretprobe).
var tracingFramePrefixes = []string{
	"bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_", "bpf_trampoline_",
	"trace_call_bpf", "kprobe_", "kretprobe_", "__kretprobe_trampoline", "rethook_", "arch_rethook_",
	"ftrace_", "arch_ftrace_", "__ftrace_", "kprobe_int3_handler", "exc_int3", "asm_exc_int3",
}

// isTracingFrame matches the glue on top of the stack.
func isTracingFrame(fn string) bool {
	for _, p := range tracingFramePrefixes {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// classifyStack returns the audit class and call site of one check's stack,
// given as function names innermost first. An empty stack is UnknownAudit.
func classifyStack(frames []string) (v1alpha1.AuditClass, string) {
	if !slices.ContainsFunc(frames, func(fn string) bool { return fn != "" }) {
		// No frame named (no stack, or no kernel symbols to name it): a
		// silent probe and real use look alike.
		return v1alpha1.UnknownAudit, ""
	}
	class := v1alpha1.Audited
	callSite := ""
	for _, fn := range frames {
		if fn == "" || isTracingFrame(fn) {
			continue
		}
		if c, ok := auditClassByFunction[fn]; ok && class == v1alpha1.Audited {
			class = c
		}
		if callSite == "" && !capabilityPlumbing[fn] {
			callSite = fn
		}
	}
	return class, callSite
}
