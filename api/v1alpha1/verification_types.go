package v1alpha1

import (
	"fmt"
	"strings"
)

// Verification is what `capprof verify` found by running a command with a
// container's advised capabilities and then without each of them: the
// kernel cannot say what would have happened had a granted check been
// denied, an experiment can.
type Verification struct {
	// Command is what was run, redacted as the profile's command is; or
	// Canaries names the canary pods that ran the workload's pod template,
	// for Window each.
	Command  []string `json:"command,omitempty"`
	Canaries string   `json:"canaries,omitempty"`
	Window   Duration `json:"window,omitempty"`
	Time     Time     `json:"time"`
	// RunsPerSet is how many times each set of capabilities was run.
	RunsPerSet int `json:"runsPerSet"`
	// Advised is the advice's set when verification began, and how its
	// runs went.
	Advised VerifiedSet `json:"advised"`
	// Capabilities has one entry per advised capability, in the order they
	// were taken away: each run lacked it and the removable ones before it.
	Capabilities []VerifiedCapability `json:"capabilities"`
}

// VerifiedSet is a set of capabilities the command ran with.
type VerifiedSet struct {
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Capabilities CapSet `json:"capabilities"`
	// NoNewPrivs: allowPrivilegeEscalation was false (no_new_privs set).
	NoNewPrivs bool `json:"noNewPrivs"`
	Passed     int  `json:"passed"`
	Failed     int  `json:"failed"`
	// FailedRun is the first failed run, when one failed.
	FailedRun *FailedRun `json:"failedRun,omitempty"`
}

// VerifiedVerdict is what the runs without a capability showed.
type VerifiedVerdict string

// Verified verdicts.
const (
	// VerifiedNeeded: a run without the capability failed and the
	// capability was denied in it.
	VerifiedNeeded VerifiedVerdict = "needed"
	// VerifiedRemovable: runs without it passed, none failed with it denied.
	VerifiedRemovable VerifiedVerdict = "removable"
	// VerifiedUndecided: every run without it failed, but it was never
	// denied in them: the command fails for another reason.
	VerifiedUndecided VerifiedVerdict = "undecided"
)

// VerifiedCapability is one advised capability, taken away.
type VerifiedCapability struct {
	Capability Capability      `json:"capability"`
	Verified   VerifiedVerdict `json:"verified"`
	Passed     int             `json:"passed"`
	Failed     int             `json:"failed"`
	// FailedRun is the evidence of a needed capability: the first failed
	// run in which it was denied.
	FailedRun *FailedRun `json:"failedRun,omitempty"`
}

// FailedRun is how a run failed: its exit status and the denied checks that
// tell why.
type FailedRun struct {
	// ExitStatus is the command's exit code, 128+N for signal N; for a
	// canary pod, its failed container's last one.
	ExitStatus int `json:"exitStatus"`
	// Reason says how a canary pod failed ("container app restarted 3
	// times"); empty for a command.
	Reason string `json:"reason,omitempty"`
	// Denials are the workload's denied checks whose syscalls failed, and
	// the denied checks of the capability taken away.
	Denials []DeniedChecks `json:"denials"`
}

// DeniedChecks are the denied checks of one capability, by executable,
// syscall and call site.
type DeniedChecks struct {
	Capability Capability `json:"capability"`
	Evidence   []Evidence `json:"evidence"`
}

// String is a run's failure in one line: "exit 1; denied CAP_FSETID:
// /bin/app: chmod → setattr_prepare (syscall succeeded)".
func (f FailedRun) String() string {
	var b strings.Builder
	if f.Reason != "" {
		b.WriteString(f.Reason)
	} else {
		fmt.Fprintf(&b, "exit %d", f.ExitStatus)
	}
	for _, d := range f.Denials {
		fmt.Fprintf(&b, "; denied %s:", d.Capability)
		for i, e := range d.Evidence {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %s: %s", e.Executable, e.Syscall)
			if len(e.CallSites) > 0 {
				fmt.Fprintf(&b, " → %s", strings.Join(e.CallSites, ","))
			}
			if e.Outcome != "" {
				fmt.Fprintf(&b, " (%s)", e.Outcome)
			}
		}
	}
	return b.String()
}

// Evidence is the checks of one executable in one syscall and phase.
type Evidence struct {
	Executable string   `json:"executable"`
	Syscall    string   `json:"syscall"`
	CallSites  []string `json:"callSites,omitempty"`
	Phase      Phase    `json:"phase"`
	Count      int64    `json:"count"`
	// Outcome is set for denied checks.
	Outcome DenialOutcome `json:"outcome,omitempty"`
}
