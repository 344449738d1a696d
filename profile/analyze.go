package profile

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/internal/escape"
)

// Decision is what capprof recommends for one capability of one container.
type Decision string

// Decisions.
const (
	// Required: keep it in capabilities.add.
	Required Decision = "required"
	// DeniedDecision: the workload asked for it, was refused, and the
	// syscall failed (or its outcome was not seen). A human decides whether
	// that refusal broke something.
	DeniedDecision Decision = "denied"
	// NotNeeded: only checks that a securityContext does not have to satisfy.
	NotNeeded Decision = "not needed"
)

// Decide is capprof's decision rule for one capability, given every
// aggregated check of it in one container. A check is the workload's when it
// was made against the initial user namespace, on the task's own
// credentials, by the workload (not the container runtime before the
// workload's program ran) and is not a noaudit probe. Then the capability is
//
//   - required when a workload check was granted (audited: an ordinary
//     capable()/ns_capable() call; "insetid" setuid-family checks count as
//     audited, and so do checks whose call stack was lost);
//   - denied, for a human to decide, when no workload check was granted but
//     one was denied and its syscall failed, or its outcome was not seen;
//   - not needed otherwise: noaudit probes (cap_vm_enough_memory on every
//     mmap, ns_capable_noaudit), checks against a nested user namespace,
//     checks on kernel-overridden or another task's credentials, checks the
//     container runtime made, and denials whose syscalls all succeeded
//     anyway (a probe the workload tolerated, or another capability that
//     sufficed).
//
// One kernel shortcut is not a need either: capset(2) asks for CAP_SETPCAP
// first (security/commoncap.c cap_capset -> cap_inh_is_capped) and, when it
// is granted, skips testing that the new inheritable set stays within the
// old inheritable and permitted sets. Unless a recorded capset raised the
// inheritable set beyond them, those SETPCAP checks are not needed.
//
// Startup and steady-state checks count alike; the reason says when every
// granted check came in the startup window. It returns the decision and a
// one-line reason.
func Decide(checks []v1alpha1.CapabilityChecks, changes []v1alpha1.CredentialChange) (Decision, string) {
	raised := inheritableRaised(changes)
	var granted, unknownAuditOnly, startupOnly = false, true, true
	var failed, unknown, tolerated, shortcut bool
	for _, c := range checks {
		if c.UserNamespace != v1alpha1.InitialNamespace {
			continue
		}
		for _, s := range c.Sources {
			if !isWorkloadCheck(s) {
				continue
			}
			if c.Verdict == v1alpha1.Granted && isUnneededShortcut(c.Capability, s, raised) {
				shortcut = true
				continue
			}
			if c.Verdict == v1alpha1.Granted {
				granted = true
				unknownAuditOnly = unknownAuditOnly && s.Audit == v1alpha1.UnknownAudit
				startupOnly = startupOnly && s.Phase == v1alpha1.StartupPhase
				continue
			}
			switch s.Outcome() {
			case v1alpha1.SyscallFailed:
				failed = true
			case v1alpha1.OutcomeUnknown:
				unknown = true
			default:
				tolerated = true
			}
		}
	}
	switch {
	case granted:
		reason := "granted in the initial user namespace"
		if unknownAuditOnly {
			reason += " (call stack lost, assumed audited)"
		}
		if startupOnly {
			reason += ", only during startup"
		}
		return Required, reason
	case failed:
		return DeniedDecision, "denied and the syscall failed: the workload may need it; check that it still worked"
	case unknown:
		return DeniedDecision, "denied, the syscall's outcome not seen: check that the workload still worked"
	}
	return NotNeeded, notNeededReason(checks, tolerated, shortcut)
}

// capSetpcap is CAP_SETPCAP.
const capSetpcap v1alpha1.Capability = 8

// isUnneededShortcut: a SETPCAP check made only by cap_capset, in a
// container where no capset raised the inheritable set beyond the old
// inheritable and permitted sets (raised: inheritableRaised), the one thing
// it would have allowed.
func isUnneededShortcut(c v1alpha1.Capability, s v1alpha1.Source, raised bool) bool {
	if c != capSetpcap || len(s.CallSites) == 0 || raised {
		return false
	}
	for _, site := range s.CallSites {
		if site != "cap_capset" {
			return false
		}
	}
	return true
}

// inheritableRaised reports whether a capset raised the inheritable set
// beyond the old inheritable and permitted sets, which needs SETPCAP.
func inheritableRaised(changes []v1alpha1.CredentialChange) bool {
	return slices.ContainsFunc(changes, func(ch v1alpha1.CredentialChange) bool {
		return ch.Syscall == "capset" && ch.After.Inheritable&^(ch.Before.Inheritable|ch.Before.Permitted) != 0
	})
}

// isWorkloadCheck: made by the workload on its own credentials, not a
// noaudit probe. The user namespace is the check's, not the source's.
func isWorkloadCheck(s v1alpha1.Source) bool {
	return s.Credentials == v1alpha1.OwnCredentials && s.Audit != v1alpha1.NoAudit && s.Phase != v1alpha1.RuntimeInitPhase
}

func notNeededReason(checks []v1alpha1.CapabilityChecks, tolerated, shortcut bool) string {
	var nested, noaudit, foreign, runtime bool
	for _, c := range checks {
		if c.UserNamespace != v1alpha1.InitialNamespace {
			nested = true
			continue
		}
		for _, s := range c.Sources {
			if s.Audit == v1alpha1.NoAudit {
				noaudit = true
			}
			if s.Credentials != v1alpha1.OwnCredentials {
				foreign = true
			}
			if s.Phase == v1alpha1.RuntimeInitPhase {
				runtime = true
			}
		}
	}
	var why []string
	if noaudit {
		why = append(why, "noaudit kernel probes")
	}
	if nested {
		why = append(why, "checks in a nested user namespace")
	}
	if foreign {
		why = append(why, "checks on kernel-overridden or another task's credentials")
	}
	if runtime {
		why = append(why, "checks by the container runtime before the workload started")
	}
	if tolerated {
		why = append(why, "denials the workload tolerated (its syscalls succeeded)")
	}
	if shortcut {
		why = append(why, "capset's shortcut check; no capset raised the inheritable set beyond the permitted set")
	}
	if len(why) == 0 {
		return "no checks"
	}
	return "only " + strings.Join(why, " and ")
}

// CapabilityDecision is one row of an analysis.
type CapabilityDecision struct {
	Capability v1alpha1.Capability `json:"capability"`
	Decision   Decision            `json:"decision"`
	Reason     string              `json:"reason"`
	Granted    int64               `json:"granted"`
	Denied     int64               `json:"denied"`
	// Evidence is where the checks behind the decision came from, most
	// frequent first: for a required capability, what needed it.
	Evidence []v1alpha1.Evidence `json:"evidence"`
	// Verified is what `capprof verify` found; empty when the decision
	// rests on what was observed only.
	Verified v1alpha1.VerifiedVerdict `json:"verified,omitempty"`
	// LikelyRemovable says, for a required capability not verified, why
	// its denial would likely break nothing: each of its checks is one
	// whose denial the kernel answers without an error.
	LikelyRemovable string `json:"likelyRemovable,omitempty"`
}

// ContainerAnalysis is the recommendation for one container.
type ContainerAnalysis struct {
	// Identity has the pods the container was seen in over all recordings.
	v1alpha1.Identity
	SecurityContext *corev1.SecurityContext `json:"securityContext"`
	Capabilities    []CapabilityDecision    `json:"capabilities"`
	// PodSecurity is the Pod Security Standards level the advice reaches.
	PodSecurity PodSecurity `json:"podSecurity"`
	// PrivilegeGains are executables that gained privileges at exec; they
	// keep allowPrivilegeEscalation true.
	PrivilegeGains []string `json:"privilegeGains,omitempty"`
	// Warnings are what a reviewer should know before applying the advice.
	Warnings []string `json:"warnings,omitempty"`
	// Recordings is how many profiles contained this container.
	Recordings int `json:"recordings"`
	// Coverage says which instances were recorded from their start.
	Coverage *v1alpha1.Coverage `json:"coverage,omitempty"`
	// Verification is what `capprof verify` found, when it ran.
	Verification *v1alpha1.Verification `json:"verification,omitempty"`
	// NothingObserved: no process of the container was seen, so the
	// advice rests on no evidence.
	NothingObserved bool `json:"-"`
}

// Analysis is the result of analyzing one or more profiles.
type Analysis struct {
	Containers []ContainerAnalysis `json:"containers"`
	Warnings   []string            `json:"warnings,omitempty"`
}

// Input is a profile and where it came from, for warnings.
type Input struct {
	Source  string
	Profile *v1alpha1.Profile
}

// Analyze merges the profiles (same namespace, owner and container name =
// same container) and decides every capability of every container.
func Analyze(inputs []Input) Analysis {
	var all []v1alpha1.Container
	recordings := map[v1alpha1.Key]int{}
	notes := map[v1alpha1.Key][]string{}
	a := Analysis{Containers: []ContainerAnalysis{}}
	for _, in := range inputs {
		if d := in.Profile.Metadata.Drops; d.Total() > 0 {
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s: %s; the profile may be incomplete", in.Source, d))
		}
		for _, g := range in.Profile.Metadata.Gaps {
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s: node %s recorded nothing for %s from %s (its agent was down): what ran then is missing",
				in.Source, escape.Name(g.Node), g.To.Sub(g.From.Time).Round(time.Second), g.From.UTC().Format(time.RFC3339)))
		}
		short := shortRecording(in)
		for _, c := range in.Profile.Containers {
			recordings[c.Key()]++
			if short != "" {
				notes[c.Key()] = append(notes[c.Key()], short)
			}
			all = append(all, c)
		}
	}
	for _, c := range MergeContainers(all...) {
		ca := analyzeContainer(c)
		ca.Recordings = recordings[c.Key()]
		ca.Warnings = append(ca.Warnings, notes[c.Key()]...)
		a.Containers = append(a.Containers, ca)
	}
	return a
}

// shortRecording warns about a pod recording that ended before a container
// could leave its startup window: steady-state behaviour was not seen. A
// recorded command ran until it exited (or was stopped), so it is exempt.
func shortRecording(in Input) string {
	m := in.Profile.Metadata
	length := m.EndTime.Sub(m.StartTime.Time)
	if len(m.Command) > 0 || length >= time.Duration(m.StartupWindow) {
		return ""
	}
	return fmt.Sprintf("%s recorded for %s, less than its %s startup window: steady-state behaviour was not seen; record longer",
		in.Source, length.Round(time.Second), time.Duration(m.StartupWindow))
}

func analyzeContainer(c v1alpha1.Container) ContainerAnalysis {
	ca := ContainerAnalysis{Identity: c.Identity, Capabilities: []CapabilityDecision{}, Coverage: c.Coverage,
		Verification: c.Verification, NothingObserved: !Observed(c)}
	// The container runtime's own credential changes say nothing of the workload.
	c.CredentialChanges = slices.DeleteFunc(slices.Clone(c.CredentialChanges), func(ch v1alpha1.CredentialChange) bool { return ch.Phase == v1alpha1.RuntimeInitPhase })
	byCap := map[v1alpha1.Capability][]v1alpha1.CapabilityChecks{}
	var caps []v1alpha1.Capability
	for _, cc := range c.Capabilities {
		if _, ok := byCap[cc.Capability]; !ok {
			caps = append(caps, cc.Capability)
		}
		byCap[cc.Capability] = append(byCap[cc.Capability], cc)
	}
	fileCaps := fileCapabilities(c.CredentialChanges)
	for _, fc := range fileCaps {
		for _, capability := range fc.Effective.List() {
			if _, ok := byCap[capability]; !ok {
				caps = append(caps, capability)
				byCap[capability] = nil
			}
		}
	}
	slices.Sort(caps)

	for _, capability := range caps {
		checks := byCap[capability]
		decision, reason := Decide(checks, c.CredentialChanges)
		if exes := fileCaps.keeping(capability); len(exes) > 0 && decision != Required {
			decision = Required
			reason = "file capability of " + strings.Join(exes, ", ") + ": its exec fails (EPERM) unless the capability stays in the bounding set"
		}
		var verified v1alpha1.VerifiedVerdict
		if vc := verifiedCapability(c.Verification, capability); vc != nil {
			verified = vc.Verified
			switch {
			case decision == Required && vc.Verified == v1alpha1.VerifiedRemovable:
				decision = NotNeeded
				reason = fmt.Sprintf("verified removable: %d of %d runs without it passed (observed: %s)", vc.Passed, vc.Passed+vc.Failed, reason)
			case vc.Verified == v1alpha1.VerifiedNeeded && vc.FailedRun != nil:
				reason += "; verified needed: without it, " + vc.FailedRun.String()
			}
		}
		row := CapabilityDecision{Capability: capability, Decision: decision, Reason: reason, Verified: verified}
		if decision == Required && verified == "" {
			if row.LikelyRemovable = silentDenial(capability, checks); row.LikelyRemovable != "" {
				row.Reason += "; likely removable, verify: " + row.LikelyRemovable
			}
		}
		for _, cc := range checks {
			if cc.Verdict == v1alpha1.Granted {
				row.Granted += cc.Count
			} else {
				row.Denied += cc.Count
			}
		}
		row.Evidence = evidence(decision, checks, c.CredentialChanges)
		ca.Capabilities = append(ca.Capabilities, row)
	}

	gains := map[string]bool{}
	for _, e := range c.Execs {
		if e.PrivilegeGain {
			gains[e.Executable] = true
		}
	}
	ca.PrivilegeGains = sortedKeys(gains)
	ca.SecurityContext = advise(c, ca.Capabilities, len(ca.PrivilegeGains) > 0)
	ca.PodSecurity = EvaluatePodSecurity(&metav1.ObjectMeta{}, adviceOnlyPod(c.Name, c.Kind, ca.SecurityContext))
	ca.Warnings = append(adviceWarnings(c, ca.Capabilities, fileCaps), verificationWarnings(c.Verification, ca.Capabilities)...)
	return ca
}

// explains reports whether a source contributed to the decision, so the
// evidence for a required capability is what needed it.
func explains(d Decision, cc v1alpha1.CapabilityChecks, s v1alpha1.Source, raised bool) bool {
	workload := cc.UserNamespace == v1alpha1.InitialNamespace && isWorkloadCheck(s)
	switch d {
	case Required:
		return cc.Verdict == v1alpha1.Granted && workload && !isUnneededShortcut(cc.Capability, s, raised)
	case DeniedDecision:
		return cc.Verdict == v1alpha1.Denied && workload && s.Outcome() != v1alpha1.SyscallSucceeded
	default:
		return true
	}
}

type evidenceKey struct {
	Executable, Syscall string
	Phase               v1alpha1.Phase
	Outcome             v1alpha1.DenialOutcome
}

// evidence groups the sources that explain the decision by executable,
// syscall, phase and (for denials) outcome, most checks first.
func evidence(d Decision, checks []v1alpha1.CapabilityChecks, changes []v1alpha1.CredentialChange) []v1alpha1.Evidence {
	byKey := map[evidenceKey]*v1alpha1.Evidence{}
	raised := inheritableRaised(changes)
	for _, cc := range checks {
		for _, s := range cc.Sources {
			if !explains(d, cc, s, raised) {
				continue
			}
			k := evidenceKey{s.Executable, s.Syscall, s.Phase, ""}
			if cc.Verdict == v1alpha1.Denied {
				k.Outcome = s.Outcome()
			}
			e := byKey[k]
			if e == nil {
				e = &v1alpha1.Evidence{Executable: k.Executable, Syscall: k.Syscall, Phase: k.Phase, Outcome: k.Outcome}
				byKey[k] = e
			}
			e.Count += s.Count
			e.CallSites = append(e.CallSites, s.CallSites...)
		}
	}
	out := make([]v1alpha1.Evidence, 0, len(byKey))
	for _, e := range byKey {
		e.CallSites = sortedSet(e.CallSites)
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b v1alpha1.Evidence) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Executable, b.Executable),
			cmp.Compare(a.Syscall, b.Syscall), cmp.Compare(a.Phase, b.Phase), cmp.Compare(a.Outcome, b.Outcome))
	})
	return out
}
