package v1alpha1

import (
	"encoding/json"
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// APIVersion and Kind identify a capprof profile document.
const (
	APIVersion = "capprof.dev/v1alpha1"
	Kind       = "CapabilityProfile"
)

// Profile is one recording.
type Profile struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   Metadata    `json:"metadata"`
	Containers []Container `json:"containers"`
}

// Metadata describes the recording as a whole. It is the only part of a
// profile that changes between two recordings of the same workload.
type Metadata struct {
	StartTime      Time     `json:"startTime"`
	EndTime        Time     `json:"endTime"`
	Node           string   `json:"node"`
	KernelRelease  string   `json:"kernelRelease"`
	Probe          string   `json:"probe"`
	CapprofVersion string   `json:"capprofVersion"`
	Command        []string `json:"command,omitempty"`
	// Selector says which pods were recorded, on Node.
	Selector string `json:"selector,omitempty"`
	// StartupWindow is how long after a container's start its checks are
	// in the startup phase.
	StartupWindow Duration `json:"startupWindow"`
	Drops         Drops    `json:"drops"`
	// Gaps are the times a node recorded nothing while the recording ran
	// (its agent was down): what its containers did then is missing, and
	// containers still running after a gap were joined late.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Gaps []Gap `json:"gaps,omitempty"`
}

// Gap is a time a node's agent did not record.
type Gap struct {
	Node string `json:"node"`
	From Time   `json:"from"`
	To   Time   `json:"to"`
}

// Time is a time.Time with the deep copy the generated code needs, written
// as time.Time writes itself (RFC 3339 with nanoseconds).
//
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:Format=date-time
type Time struct {
	time.Time `json:"-"`
}

// DeepCopyInto copies t: a time.Time is a value (its location is shared
// and never changed).
func (t *Time) DeepCopyInto(out *Time) { *out = *t }

// Duration is a time.Duration written as Go writes durations ("10s", "1m30s").
//
// +kubebuilder:validation:Type=string
type Duration time.Duration

// MarshalJSON writes "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "10s".
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := jsonv2.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"10s\", got a JSON %s", jsontext.Value(data).Kind())
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Drops counts what the kernel side could not deliver. Non-zero values mean
// the profile may be incomplete.
type Drops struct {
	// Events lost because the ring buffer was full: an exec, exit or
	// credential change not seen, or a first check's details (its counts
	// are still exact).
	Events int64 `json:"events"`
	// UncountedChecks were not counted because the aggregation map was full.
	UncountedChecks int64 `json:"uncountedChecks"`
	// UnfollowedCredentialCalls could not be compared before and after.
	UnfollowedCredentialCalls int64 `json:"unfollowedCredentialCalls"`
	// UnfollowedDenials are denied checks whose syscall's outcome was not
	// seen, beyond the ones left out by sampling.
	UnfollowedDenials int64 `json:"unfollowedDenials"`
	// UntrackedCgroups are cgroups created below a target that could not
	// be tracked (the kernel's target set was full): what ran in them is
	// missing.
	UntrackedCgroups int64 `json:"untrackedCgroups,omitempty"`
	// UndecodableEvents could not be decoded (a bug, or a kernel that lays
	// events out differently): skipped, the recording went on.
	UndecodableEvents int64 `json:"undecodableEvents,omitempty"`
	// ExecsNotKept are execs of executables beyond the distinct ones a
	// recording keeps (a workload that runs ever new programs): their
	// checks are counted, their exec entries are not.
	ExecsNotKept int64 `json:"execsNotKept,omitempty"`
	// SkippedProbeRuns are hits of capprof's kernel hooks that ran none of
	// its programs (the kernel's recursion protection: with the kprobe
	// backend, another BPF program or a BPF map syscall on the same CPU):
	// a check or an event not seen for each.
	SkippedProbeRuns int64 `json:"skippedProbeRuns,omitempty"`
}

// Total is the sum of all drops.
func (d Drops) Total() int64 {
	return d.Events + d.UncountedChecks + d.UnfollowedCredentialCalls + d.UnfollowedDenials + d.UntrackedCgroups +
		d.UndecodableEvents + d.ExecsNotKept + d.SkippedProbeRuns
}

// Plus is the sum of two recordings' drops (nodes of one recording).
func (d Drops) Plus(o Drops) Drops {
	return Drops{
		Events: d.Events + o.Events, UncountedChecks: d.UncountedChecks + o.UncountedChecks,
		UnfollowedCredentialCalls: d.UnfollowedCredentialCalls + o.UnfollowedCredentialCalls,
		UnfollowedDenials:         d.UnfollowedDenials + o.UnfollowedDenials, UntrackedCgroups: d.UntrackedCgroups + o.UntrackedCgroups,
		UndecodableEvents: d.UndecodableEvents + o.UndecodableEvents, ExecsNotKept: d.ExecsNotKept + o.ExecsNotKept,
		SkippedProbeRuns: d.SkippedProbeRuns + o.SkippedProbeRuns,
	}
}

// String says what was dropped, for warnings.
func (d Drops) String() string {
	s := fmt.Sprintf("the kernel dropped %d events, %d checks, %d credential calls and %d denial outcomes",
		d.Events, d.UncountedChecks, d.UnfollowedCredentialCalls, d.UnfollowedDenials)
	if d.UntrackedCgroups > 0 {
		s += fmt.Sprintf(", and could not track %d new cgroups", d.UntrackedCgroups)
	}
	if d.SkippedProbeRuns > 0 {
		s += fmt.Sprintf("; it skipped capprof's probe %d times (each a check or an event not seen)", d.SkippedProbeRuns)
	}
	if d.UndecodableEvents > 0 {
		s += fmt.Sprintf("; capprof could not decode %d events", d.UndecodableEvents)
	}
	if d.ExecsNotKept > 0 {
		s += fmt.Sprintf("; %d execs beyond the executables a recording keeps were counted but not listed", d.ExecsNotKept)
	}
	return s
}

// Identity says which container a profile entry is about. Name, Namespace
// and Owner make its Key: entries with the same three are the same container
// (replicas, nodes, runs) and are merged. Namespace and Owner are empty in
// command mode.
type Identity struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Owner     *Owner `json:"owner,omitempty"`
	// Kind is the container's place in the pod spec; empty when unknown
	// (command mode, or a CRI runtime, which does not say).
	Kind ContainerKind `json:"kind,omitempty"`
	// Images are the images the container ran, as the pod spec names them.
	Images []string `json:"images,omitempty"`
	// Pods are the names of the pods the container was seen in.
	Pods []string `json:"pods,omitempty"`
}

// Container is what one container (in command mode: the command's process
// tree) did. It holds no pids or times (but for the instances whose start
// was not seen, in Coverage), so recordings of a deterministic workload
// give identical containers.
type Container struct {
	Identity          `json:",inline"`
	Capabilities      []CapabilityChecks `json:"capabilities"`
	Execs             []Exec             `json:"execs"`
	CredentialChanges []CredentialChange `json:"credentialChanges"`
	// UIDs are the effective uids processes ran with.
	UIDs []uint32 `json:"uids"`
	// Coverage says how much of its instances' lives was recorded; nil in
	// profiles of capprof versions that did not say.
	Coverage *Coverage `json:"coverage,omitempty"`
	// Verification is what `capprof verify` found, when it ran.
	Verification *Verification `json:"verification,omitempty"`
}

// Coverage says which container instances (a restart, a replica, a run is
// an instance) were recorded from their first instruction, and how late
// the recording joined the others: what a late one did before, its startup
// above all, is not in the profile.
type Coverage struct {
	Instances int `json:"instances"`
	// FromStart counts the instances recorded from their first instruction:
	// their cgroup was a target from its creation.
	FromStart int `json:"fromStart"`
	// Late are the other instances.
	Late []LateInstance `json:"late,omitempty"`
}

// LateInstance is a container instance that was already running when the
// recording joined it.
type LateInstance struct {
	Pod         string `json:"pod,omitempty"`
	ContainerID string `json:"containerID,omitempty"`
	// JoinedAfter is how long after the instance started the recording
	// joined it; nil when the start time is unknown.
	JoinedAfter *Duration `json:"joinedAfter,omitempty"`
}

// Owner is the workload a pod belongs to: its controller's controller where
// there is one (a Deployment, not its ReplicaSet; a CronJob, not its Job),
// else the Pod itself.
type Owner struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// ContainerKind is where a container sits in a pod spec.
type ContainerKind string

// Container kinds.
const (
	InitContainer      ContainerKind = "init"
	RegularContainer   ContainerKind = "regular"
	EphemeralContainer ContainerKind = "ephemeral"
)

// Key is what makes two profile entries the same container.
type Key struct {
	Namespace, OwnerKind, OwnerName, Name string
}

// Key returns what makes two entries the same container.
func (c *Identity) Key() Key {
	k := Key{Namespace: c.Namespace, Name: c.Name}
	if c.Owner != nil {
		k.OwnerKind, k.OwnerName = c.Owner.Kind, c.Owner.Name
	}
	return k
}

// String is "name" in command mode, else "namespace/OwnerKind/owner/name".
func (k Key) String() string {
	if k.Namespace == "" && k.OwnerKind == "" {
		return k.Name
	}
	return k.Namespace + "/" + k.OwnerKind + "/" + k.OwnerName + "/" + k.Name
}

// Verdict is the outcome of a capability check.
type Verdict string

// Verdicts.
const (
	Granted Verdict = "granted"
	Denied  Verdict = "denied"
)

// UserNamespace says which user namespace a check was made against.
type UserNamespace string

// User namespace scopes.
const (
	// InitialNamespace: the host's user namespace; what a securityContext grants.
	InitialNamespace UserNamespace = "initial"
	// NestedNamespace: a user namespace created below it (hostUsers: false,
	// unshare -U); capabilities there are the namespace owner's, not the host's.
	NestedNamespace UserNamespace = "nested"
)

// AuditClass tells checks that the kernel would audit from those it makes
// silently to probe (ns_capable_noaudit, cap_vm_enough_memory, ...).
type AuditClass string

// Audit classes.
const (
	Audited AuditClass = "audited"
	NoAudit AuditClass = "noaudit"
	// InSetID: ns_capable_setid, the setuid-family check (CAP_OPT_INSETID); audited.
	InSetID AuditClass = "insetid"
	// UnknownAudit: no call stack was captured for this check.
	UnknownAudit AuditClass = "unknown"
)

// AuditSource says where a check's audit class came from.
type AuditSource string

// Audit class sources.
const (
	// AuditFromOptions: cap_capable's CAP_OPT_* argument, read by the probe.
	AuditFromOptions AuditSource = "options"
	// AuditFromStack: inferred from the functions on the check's sampled
	// kernel stacks (the tracepoint does not pass the options).
	AuditFromStack AuditSource = "stack"
)

// CredentialSource says how a credential change was seen.
type CredentialSource string

// Credential change sources.
const (
	// FromCommitCreds: commit_creds() installing the new credentials (fexit,
	// kprobe probes), which every path goes through: set*id, capset, prctl,
	// setgroups, unshare, execve.
	FromCommitCreds CredentialSource = "commit_creds"
	// FromSyscall (tracepoint probe): the task's credentials compared with
	// those it last had, at a set*id or capset call's capability check, at
	// an exec's start, and at its exit. Syscall names the set*id/capset call
	// whose check came in between, or is "unknown" for a change made without
	// one (setresuid among the task's own ids, prctl).
	FromSyscall CredentialSource = "syscall"
)

// CredentialsUsed says whose credentials a check tested.
type CredentialsUsed string

// Credential sources.
const (
	// OwnCredentials: the task's own subjective credentials.
	OwnCredentials CredentialsUsed = "own"
	// OverriddenCredentials: the kernel acting with override_creds().
	OverriddenCredentials CredentialsUsed = "overridden"
	// OtherTaskCredentials: another task's credentials were tested.
	OtherTaskCredentials CredentialsUsed = "other-task"
)

// Phase says when in the container's life, and by whom, a check was made.
type Phase string

// Phases.
const (
	// RuntimeInitPhase: the container runtime (runc init) setting up the
	// container or an exec into it, before the workload's program runs.
	RuntimeInitPhase Phase = "runtime-init"
	// StartupPhase: the workload, within the startup window after the
	// container's first exec of its own program.
	StartupPhase Phase = "startup"
	// SteadyPhase: the workload, after the startup window.
	SteadyPhase Phase = "steady"
)

// CapabilityChecks aggregates the checks of one capability with one verdict
// in one user-namespace scope.
type CapabilityChecks struct {
	Capability    Capability    `json:"capability"`
	Verdict       Verdict       `json:"verdict"`
	UserNamespace UserNamespace `json:"userNamespace"`
	Count         int64         `json:"count"`
	Sources       []Source      `json:"sources"`
}

// Source is where checks came from: which executable, in which syscall, from
// which kernel functions.
type Source struct {
	Executable string `json:"executable"`
	Syscall    string `json:"syscall"`
	// CallSites are the kernel functions that made the checks: on each
	// sampled stack, the first frame outside the capability plumbing.
	CallSites []string   `json:"callSites,omitempty"`
	Audit     AuditClass `json:"audit"`
	// AuditFrom says how Audit was learned: from cap_capable's options
	// (fexit, kprobe probes) or from the call stack (tracepoint probe).
	AuditFrom   AuditSource     `json:"auditFrom,omitempty"`
	Credentials CredentialsUsed `json:"credentials"`
	Phase       Phase           `json:"phase"`
	Count       int64           `json:"count"`
	// SyscallFailed and SyscallSucceeded are, for denied checks, how the
	// syscalls they were made in ended, over the ones followed (a sample).
	SyscallFailed    int64 `json:"syscallFailed,omitempty"`
	SyscallSucceeded int64 `json:"syscallSucceeded,omitempty"`
}

// DenialOutcome says what a denied source's syscalls did without the capability.
type DenialOutcome string

// Denial outcomes.
const (
	// SyscallFailed: at least one followed syscall returned an error.
	SyscallFailed DenialOutcome = "syscall failed"
	// SyscallSucceeded: every followed syscall succeeded: a tolerated probe.
	SyscallSucceeded DenialOutcome = "syscall succeeded"
	// OutcomeUnknown: no syscall was followed.
	OutcomeUnknown DenialOutcome = "outcome unknown"
)

// Outcome classifies a denied source by its followed syscalls.
func (s Source) Outcome() DenialOutcome {
	switch {
	case s.SyscallFailed > 0:
		return SyscallFailed
	case s.SyscallSucceeded > 0:
		return SyscallSucceeded
	}
	return OutcomeUnknown
}

// Exec is a program that was executed, with the credentials it started with.
type Exec struct {
	Executable string `json:"executable"`
	// Script is the script an interpreter (Executable) was started for.
	Script string `json:"script,omitempty"`
	UID    uint32 `json:"uid"`
	EUID   uint32 `json:"euid"`
	GID    uint32 `json:"gid"`
	EGID   uint32 `json:"egid"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Effective CapSet `json:"effective"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Permitted CapSet `json:"permitted"`
	// PrivilegeGain: the exec changed euid/egid or grew the permitted set
	// (a setuid/setgid or file-capability executable). no_new_privs, which
	// allowPrivilegeEscalation: false sets, would have prevented it.
	PrivilegeGain bool  `json:"privilegeGain,omitempty"`
	Count         int64 `json:"count"`
	// ExitStatuses are the distinct ways its processes ended: "0", "1", "SIGKILL".
	ExitStatuses []string `json:"exitStatuses,omitempty"`
}

// Credentials are a process's ids and capability sets.
type Credentials struct {
	UID   uint32 `json:"uid"`
	EUID  uint32 `json:"euid"`
	SUID  uint32 `json:"suid"`
	FSUID uint32 `json:"fsuid"`
	GID   uint32 `json:"gid"`
	EGID  uint32 `json:"egid"`
	SGID  uint32 `json:"sgid"`
	FSGID uint32 `json:"fsgid"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Effective CapSet `json:"effective"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Permitted CapSet `json:"permitted"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Inheritable CapSet `json:"inheritable"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Bounding CapSet `json:"bounding"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Ambient CapSet `json:"ambient"`
	// UserNamespaceLevel is the depth of the credentials' user namespace:
	// 0 for the initial one.
	UserNamespaceLevel uint32 `json:"userNamespaceLevel,omitempty"`
}

// CredentialChange is a change of a process's credentials: by a setuid-family
// or capset call, or by executing a privilege-gaining executable (execve).
type CredentialChange struct {
	Executable string `json:"executable"`
	// Syscall is the syscall in progress ("none" outside one).
	Syscall string `json:"syscall"`
	// Source says how the change was seen.
	Source CredentialSource `json:"source,omitempty"`
	// Phase is RuntimeInitPhase for the container runtime's own changes
	// (runc applying the container's capabilities and ids before executing
	// the workload), which the analysis leaves out; empty for the workload's.
	Phase  Phase       `json:"phase,omitempty"`
	Before Credentials `json:"before"`
	After  Credentials `json:"after"`
	Count  int64       `json:"count"`
}
