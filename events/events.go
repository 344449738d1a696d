// Package events is the model of capprof's live security-observability
// events (record --events): process execs and exits, capability checks and
// credential changes of the recorded containers, written as JSON lines with
// Tetragon's field names where the meaning is the same, so that jq filters
// written for `tetra getevents -o json` carry over, or as compact lines.
// It is pure Go: the recorder fills the model from what the eBPF probe saw.
package events

import (
	"time"

	"github.com/capprof/capprof/api/v1alpha1"
)

// Event is one line of the stream: exactly one of the process_* fields is
// set, as in Tetragon's GetEventsResponse.
type Event struct {
	ProcessExec   *ProcessExec   `json:"process_exec,omitempty"`
	ProcessExit   *ProcessExit   `json:"process_exit,omitempty"`
	ProcessKprobe *ProcessKprobe `json:"process_kprobe,omitempty"`
	NodeName      string         `json:"node_name"`
	Time          time.Time      `json:"time"`
}

// Type is the event's type as --events-filter type= names it.
func (e *Event) Type() Type {
	switch {
	case e.ProcessExec != nil:
		return Exec
	case e.ProcessExit != nil:
		return Exit
	case e.ProcessKprobe != nil && e.ProcessKprobe.Capability != nil:
		return Cap
	default:
		return Creds
	}
}

// Process returns the process the event is about.
func (e *Event) Process() *Process {
	switch {
	case e.ProcessExec != nil:
		return e.ProcessExec.Process
	case e.ProcessExit != nil:
		return e.ProcessExit.Process
	case e.ProcessKprobe != nil:
		return e.ProcessKprobe.Process
	}
	return nil
}

// Type names the kinds of event.
type Type string

// The event types, as --events-filter and the compact format name them.
const (
	Exec  Type = "exec"
	Exit  Type = "exit"
	Cap   Type = "cap"
	Creds Type = "creds"
)

// Types lists every Type.
var Types = []Type{Exec, Exit, Cap, Creds}

// Process is Tetragon's process object.
type Process struct {
	// ExecID is unique per exec on the node and names the process in every
	// event about it until its next exec or its exit.
	ExecID    string    `json:"exec_id"`
	PID       uint32    `json:"pid"`
	UID       uint32    `json:"uid"`
	CWD       string    `json:"cwd,omitempty"`
	Binary    string    `json:"binary"`
	Arguments string    `json:"arguments,omitempty"`
	Flags     string    `json:"flags"`
	StartTime time.Time `json:"start_time"`
	// AUID is the audit login uid; 4294967295 when unset (the usual case in
	// a container).
	AUID         uint32        `json:"auid"`
	Pod          *Pod          `json:"pod,omitempty"`
	ParentExecID string        `json:"parent_exec_id,omitempty"`
	Cap          *Capabilities `json:"cap,omitempty"`
	NS           *Namespaces   `json:"ns,omitempty"`
	TID          uint32        `json:"tid"`
	Credentials  *Credentials  `json:"process_credentials,omitempty"`
}

// Pod is the Kubernetes pod and container a process runs in. Recording a
// command, only Container.Name is set.
type Pod struct {
	Namespace    string            `json:"namespace,omitempty"`
	Name         string            `json:"name,omitempty"`
	Container    *Container        `json:"container,omitempty"`
	PodLabels    map[string]string `json:"pod_labels,omitempty"`
	Workload     string            `json:"workload,omitempty"`
	WorkloadKind string            `json:"workload_kind,omitempty"`
}

// Container is the container a process runs in.
type Container struct {
	ID    string `json:"id,omitempty"`
	Name  string `json:"name"`
	Image *Image `json:"image,omitempty"`
}

// Image is a container's image.
type Image struct {
	Name string `json:"name"`
}

// Capabilities are a process's capability sets, by kernel name.
type Capabilities struct {
	Permitted   []string `json:"permitted,omitempty"`
	Effective   []string `json:"effective,omitempty"`
	Inheritable []string `json:"inheritable,omitempty"`
}

// CapabilitiesOf names the sets of a credential's bitmasks.
func CapabilitiesOf(permitted, effective, inheritable uint64) *Capabilities {
	return &Capabilities{
		Permitted:   capNames(permitted),
		Effective:   capNames(effective),
		Inheritable: capNames(inheritable),
	}
}

func capNames(set uint64) []string {
	var names []string
	for _, c := range v1alpha1.CapSet(set).List() {
		names = append(names, c.String())
	}
	return names
}

// Namespace is one namespace of a process: its inode number, and whether it
// is the host's (PID 1's).
type Namespace struct {
	Inum   uint32 `json:"inum"`
	IsHost bool   `json:"is_host"`
}

// Namespaces are a process's namespaces; a kernel without one (time
// namespaces before Linux 5.6) leaves it nil.
type Namespaces struct {
	UTS             *Namespace `json:"uts,omitempty"`
	IPC             *Namespace `json:"ipc,omitempty"`
	Mnt             *Namespace `json:"mnt,omitempty"`
	PID             *Namespace `json:"pid,omitempty"`
	PIDForChildren  *Namespace `json:"pid_for_children,omitempty"`
	Net             *Namespace `json:"net,omitempty"`
	Time            *Namespace `json:"time,omitempty"`
	TimeForChildren *Namespace `json:"time_for_children,omitempty"`
	Cgroup          *Namespace `json:"cgroup,omitempty"`
	User            *Namespace `json:"user,omitempty"`
}

// Credentials are Tetragon's process_credentials: ids, capability sets and
// user namespace.
type Credentials struct {
	UID    uint32        `json:"uid"`
	GID    uint32        `json:"gid"`
	EUID   uint32        `json:"euid"`
	EGID   uint32        `json:"egid"`
	SUID   uint32        `json:"suid"`
	SGID   uint32        `json:"sgid"`
	FSUID  uint32        `json:"fsuid"`
	FSGID  uint32        `json:"fsgid"`
	Caps   *Capabilities `json:"caps,omitempty"`
	UserNS *UserNS       `json:"user_ns,omitempty"`
}

// UserNS is a credential's user namespace.
type UserNS struct {
	Level int32      `json:"level"`
	NS    *Namespace `json:"ns,omitempty"`
}

// ProcessExec is an exec, or (flags "procFS") a process already running in
// a container when recording started.
type ProcessExec struct {
	Process *Process `json:"process"`
	Parent  *Process `json:"parent,omitempty"`
	// Privileged says why the process runs privileged: CAP_SYS_ADMIN in
	// its effective set, or a host namespace (host_net_ns, host_pid_ns,
	// host_ipc_ns, host_mnt_ns). capprof's; Tetragon has no such field.
	Privileged []string `json:"privileged,omitempty"`
}

// ProcessExit is the end of a process (its last thread).
type ProcessExit struct {
	Process *Process `json:"process"`
	Parent  *Process `json:"parent,omitempty"`
	// Signal is the signal that killed it ("SIGKILL"); empty when it exited.
	Signal string `json:"signal,omitempty"`
	// Status is its exit code when it exited.
	Status uint32    `json:"status"`
	Time   time.Time `json:"time"`
}

// ProcessKprobe is a kernel function a process called, as Tetragon's
// process_kprobe: capability checks are function_name "cap_capable" with a
// user_ns_arg and a capability_arg, credential changes "commit_creds" with
// the new process_credentials_arg. The fields after Action are capprof's.
type ProcessKprobe struct {
	Process      *Process         `json:"process"`
	Parent       *Process         `json:"parent,omitempty"`
	FunctionName string           `json:"function_name"`
	Args         []KprobeArgument `json:"args"`
	Return       *KprobeArgument  `json:"return,omitempty"`
	Action       string           `json:"action"`
	Capability   *CapabilityArg   `json:"capability,omitempty"`
	Verdict      string           `json:"verdict,omitempty"`
	// Audit is the check's audit class: audited, noaudit (a probe the
	// kernel would not log, such as cap_vm_enough_memory's CAP_SYS_ADMIN
	// at every mmap), insetid, or unknown.
	Audit string `json:"audit,omitempty"`
	// CallSite is the kernel function that asked for the capability, the
	// first frame above the capability plumbing (ns_capable and the like).
	CallSite string   `json:"call_site,omitempty"`
	Syscall  *Syscall `json:"syscall,omitempty"`
	// Suppressed counts the checks of the same exec, capability and verdict
	// that the rate limit held back since the previous event of theirs.
	Suppressed uint64 `json:"suppressed,omitempty"`
	// Checks is how many checks the line accounts for: 1 + Suppressed, or
	// Suppressed alone on a Summary line. Summed over a recording it is
	// the profile's count.
	Checks uint64 `json:"checks,omitempty"`
	// Summary marks a line written when an exec ended (exit, or another
	// exec) or the recording stopped, with the checks held back since the
	// last event of theirs; it stands for no check of its own.
	Summary bool `json:"summary,omitempty"`
	// Before holds a credential change's old credentials.
	Before *Credentials `json:"credentials_before,omitempty"`
}

// KprobeArgument is one of Tetragon's typed kprobe arguments.
type KprobeArgument struct {
	IntArg                *int32         `json:"int_arg,omitempty"`
	UserNSArg             *UserNSArg     `json:"user_ns_arg,omitempty"`
	CapabilityArg         *CapabilityArg `json:"capability_arg,omitempty"`
	ProcessCredentialsArg *Credentials   `json:"process_credentials_arg,omitempty"`
}

// UserNSArg is the user namespace a capability was checked against.
type UserNSArg struct {
	Level int32      `json:"level"`
	Owner uint32     `json:"owner"`
	Group uint32     `json:"group"`
	NS    *Namespace `json:"ns"`
}

// CapabilityArg is a capability, by number and kernel name.
type CapabilityArg struct {
	Value int32  `json:"value"`
	Name  string `json:"name"`
}

// Syscall is the system call in which a check or credential change happened.
type Syscall struct {
	Name string  `json:"name"`
	Args []int64 `json:"args,omitempty"`
}

// Verdicts of a capability check.
const (
	Allowed = "allowed"
	Denied  = "denied"
)

// The kprobe action Tetragon reports for an observed call.
const actionPost = "KPROBE_ACTION_POST"

// CapabilityCheck builds a capability check's kprobe event.
func CapabilityCheck(proc, parent *Process, capability int32, ret int32, ns *UserNSArg) *ProcessKprobe {
	name := v1alpha1.Capability(capability).String()
	verdict := Allowed
	if ret != 0 {
		verdict = Denied
	}
	return &ProcessKprobe{
		Process: proc, Parent: parent, FunctionName: "cap_capable",
		Args: []KprobeArgument{
			{UserNSArg: ns},
			{CapabilityArg: &CapabilityArg{Value: capability, Name: name}},
		},
		Return:     &KprobeArgument{IntArg: &ret},
		Action:     actionPost,
		Capability: &CapabilityArg{Value: capability, Name: name},
		Verdict:    verdict,
		Checks:     1,
	}
}

// CredentialChange builds a credential change's kprobe event.
func CredentialChange(proc, parent *Process, syscall *Syscall, before, after *Credentials) *ProcessKprobe {
	return &ProcessKprobe{
		Process: proc, Parent: parent, FunctionName: "commit_creds",
		Args:    []KprobeArgument{{ProcessCredentialsArg: after}},
		Action:  actionPost,
		Syscall: syscall,
		Before:  before,
	}
}
