package profile

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Decision is what capprof recommends for one capability of one container.
type Decision string

// Decisions.
const (
	// Required: keep it in capabilities.add.
	Required Decision = "required"
	// DeniedDecision: the workload asked for it and was refused; it ran
	// without it. A human decides whether that refusal broke something.
	DeniedDecision Decision = "denied"
	// NotNeeded: only checks that a securityContext does not have to satisfy.
	NotNeeded Decision = "not needed"
)

// Decide is capprof's decision rule for one capability, given every
// aggregated check of it in one container:
//
//   - required when a check was granted, against the initial user namespace,
//     on the task's own credentials, and is audited (an ordinary capable()/
//     ns_capable() call; "insetid" setuid-family checks count as audited, and
//     so do checks whose call stack was lost);
//   - denied when no check made it required but such a check was denied;
//   - not needed otherwise: noaudit probes (cap_vm_enough_memory on every
//     mmap, ns_capable_noaudit), checks against a nested user namespace,
//     checks on overridden or another task's credentials, and checks the
//     container runtime (runc init) made before the workload's program ran.
//
// It returns the decision and a one-line reason.
func Decide(checks []CapabilityChecks) (Decision, string) {
	granted, denied := false, false
	unknownOnly := true // every granting source lost its stack
	for _, c := range checks {
		if c.UserNamespace != InitialNamespace {
			continue
		}
		for _, s := range c.Sources {
			if !countsForWorkload(s) {
				continue
			}
			if c.Verdict == Granted {
				granted = true
				if s.Audit != UnknownAudit {
					unknownOnly = false
				}
			} else {
				denied = true
			}
		}
	}
	switch {
	case granted && unknownOnly:
		return Required, "granted in the initial user namespace (call stack lost, assumed audited)"
	case granted:
		return Required, "granted in the initial user namespace"
	case denied:
		return DeniedDecision, "denied and never granted: the workload ran without it; check that it still worked"
	}
	return NotNeeded, notNeededReason(checks)
}

func countsForWorkload(s Source) bool {
	return s.Credentials == OwnCredentials && s.Audit != NoAudit && s.Phase != RuntimeInitPhase
}

func notNeededReason(checks []CapabilityChecks) string {
	var nested, noaudit, foreign, runtime bool
	for _, c := range checks {
		if c.UserNamespace != InitialNamespace {
			nested = true
			continue
		}
		for _, s := range c.Sources {
			if s.Audit == NoAudit {
				noaudit = true
			}
			if s.Credentials != OwnCredentials {
				foreign = true
			}
			if s.Phase == RuntimeInitPhase {
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
	if len(why) == 0 {
		return "no checks"
	}
	reason := "only " + why[0]
	for _, w := range why[1:] {
		reason += " and " + w
	}
	return reason
}

// CapabilityDecision is one row of an analysis.
type CapabilityDecision struct {
	Capability Capability `json:"capability"`
	Decision   Decision   `json:"decision"`
	Reason     string     `json:"reason"`
	Granted    uint64     `json:"granted"`
	Denied     uint64     `json:"denied"`
	// Executables made the checks behind the decision.
	Executables []string `json:"executables"`
}

// ContainerAnalysis is the recommendation for one container.
type ContainerAnalysis struct {
	// Identity has the pods the container was seen in over all recordings.
	Identity
	SecurityContext *corev1.SecurityContext `json:"securityContext"`
	Capabilities    []CapabilityDecision    `json:"capabilities"`
	// PrivilegeGains are executables that gained privileges at exec; they
	// keep allowPrivilegeEscalation true.
	PrivilegeGains []string `json:"privilegeGains,omitempty"`
	// Recordings is how many profiles contained this container.
	Recordings int `json:"recordings"`
}

// Analysis is the result of analyzing one or more profiles.
type Analysis struct {
	Containers []ContainerAnalysis `json:"containers"`
	Warnings   []string            `json:"warnings,omitempty"`
}

// Input is a profile and where it came from, for warnings.
type Input struct {
	Source  string
	Profile *Profile
}

// Analyze merges the profiles (same namespace, owner and container name =
// same container) and decides every capability of every container.
func Analyze(inputs []Input) Analysis {
	var all []Container
	recordings := map[Key]int{}
	a := Analysis{Containers: []ContainerAnalysis{}}
	for _, in := range inputs {
		if d := in.Profile.Metadata.Drops; d.Total() > 0 {
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s: the kernel dropped %d events, %d checks and %d credential calls; the profile may be incomplete",
				in.Source, d.Events, d.UncountedChecks, d.UnfollowedCredentialCalls))
		}
		for _, c := range in.Profile.Containers {
			recordings[c.Key()]++
			all = append(all, c)
		}
	}
	for _, c := range MergeContainers(all...) {
		ca := analyzeContainer(c)
		ca.Recordings = recordings[c.Key()]
		a.Containers = append(a.Containers, ca)
	}
	return a
}

func analyzeContainer(c Container) ContainerAnalysis {
	ca := ContainerAnalysis{Identity: c.Identity, Capabilities: []CapabilityDecision{}}
	byCap := map[Capability][]CapabilityChecks{}
	var caps []Capability
	for _, cc := range c.Capabilities {
		if _, ok := byCap[cc.Capability]; !ok {
			caps = append(caps, cc.Capability)
		}
		byCap[cc.Capability] = append(byCap[cc.Capability], cc)
	}
	slices.Sort(caps)

	var add []corev1.Capability
	for _, capability := range caps {
		checks := byCap[capability]
		decision, reason := Decide(checks)
		row := CapabilityDecision{Capability: capability, Decision: decision, Reason: reason, Executables: []string{}}
		exes := map[string]bool{}
		for _, cc := range checks {
			if cc.Verdict == Granted {
				row.Granted += cc.Count
			} else {
				row.Denied += cc.Count
			}
			for _, s := range cc.Sources {
				if explains(decision, cc, s) {
					exes[s.Executable] = true
				}
			}
		}
		for e := range exes {
			row.Executables = append(row.Executables, e)
		}
		slices.Sort(row.Executables)
		if decision == Required {
			add = append(add, corev1.Capability(capability.KubernetesName()))
		}
		ca.Capabilities = append(ca.Capabilities, row)
	}

	gains := map[string]bool{}
	for _, e := range c.Execs {
		if e.PrivilegeGain {
			gains[e.Executable] = true
		}
	}
	for e := range gains {
		ca.PrivilegeGains = append(ca.PrivilegeGains, e)
	}
	slices.Sort(ca.PrivilegeGains)

	allowEscalation := len(ca.PrivilegeGains) > 0
	ca.SecurityContext = &corev1.SecurityContext{
		Capabilities:             &corev1.Capabilities{Add: add, Drop: []corev1.Capability{"ALL"}},
		AllowPrivilegeEscalation: &allowEscalation,
	}
	return ca
}

// explains reports whether a source contributed to the decision, so the
// executables listed for a required capability are the ones that need it.
func explains(d Decision, cc CapabilityChecks, s Source) bool {
	switch d {
	case Required:
		return cc.Verdict == Granted && cc.UserNamespace == InitialNamespace && countsForWorkload(s)
	case DeniedDecision:
		return cc.Verdict == Denied && cc.UserNamespace == InitialNamespace && countsForWorkload(s)
	default:
		return true
	}
}
