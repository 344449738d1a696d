package profile

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/capprof/capprof/api/v1alpha1"
)

// advise builds a container's securityContext from its capability
// decisions: drop ALL and add the required ones; no privileged mode; no
// privilege escalation unless an exec gained privileges; the runtime's
// default seccomp profile; and runAsNonRoot (with runAsUser when a single
// uid was seen) when no process ran as root.
func advise(c v1alpha1.Container, rows []CapabilityDecision, escalation bool) *corev1.SecurityContext {
	var add []corev1.Capability
	for _, row := range rows {
		if row.Decision == Required {
			add = append(add, corev1.Capability(row.Capability.KubernetesName()))
		}
	}
	sc := &corev1.SecurityContext{
		Capabilities:             &corev1.Capabilities{Add: add, Drop: []corev1.Capability{"ALL"}},
		Privileged:               new(false),
		AllowPrivilegeEscalation: new(escalation),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if len(c.UIDs) > 0 && !slices.Contains(c.UIDs, 0) {
		sc.RunAsNonRoot = new(true)
		if len(c.UIDs) == 1 {
			sc.RunAsUser = new(int64(c.UIDs[0]))
		}
	}
	return sc
}

// fileCapExec is an executable that gained capabilities at exec from its
// file capabilities (security.capability), without a uid change.
type fileCapExec struct {
	Executable string
	Gained     v1alpha1.CapSet
	// Effective are the gained capabilities raised into the effective set:
	// the file's effective bit is set, so the kernel refuses the exec with
	// EPERM when the bounding set lacks one of them (a "capability-dumb
	// binary": security/commoncap.c bprm_caps_from_vfs_caps).
	Effective v1alpha1.CapSet
}

type fileCapExecs []fileCapExec

// fileCapabilities finds the execs whose permitted set grew while the
// effective uid stayed the same: file capabilities, not setuid.
func fileCapabilities(changes []v1alpha1.CredentialChange) fileCapExecs {
	byExe := map[string]*fileCapExec{}
	for _, ch := range changes {
		gained := ch.After.Permitted &^ ch.Before.Permitted
		if ch.Syscall != "execve" || ch.Before.EUID != ch.After.EUID || gained == 0 {
			continue
		}
		fc := byExe[ch.Executable]
		if fc == nil {
			fc = &fileCapExec{Executable: ch.Executable}
			byExe[ch.Executable] = fc
		}
		fc.Gained |= gained
		fc.Effective |= gained & ch.After.Effective
	}
	var out fileCapExecs
	for _, fc := range byExe {
		out = append(out, *fc)
	}
	slices.SortFunc(out, func(a, b fileCapExec) int { return strings.Compare(a.Executable, b.Executable) })
	return out
}

// keeping returns the executables whose exec needs c in the bounding set.
func (f fileCapExecs) keeping(c v1alpha1.Capability) []string {
	var exes []string
	for _, fc := range f {
		if fc.Effective.Has(c) {
			exes = append(exes, fc.Executable)
		}
	}
	return exes
}

// adviceWarnings are the points a careful reviewer raises about the advice.
func adviceWarnings(c v1alpha1.Container, rows []CapabilityDecision, fileCaps fileCapExecs) []string {
	var warnings []string
	late := c.Coverage != nil && len(c.Coverage.Late) > 0
	if late {
		warnings = append(warnings, CoverageWarning(c.Coverage))
	}
	if !Observed(c) {
		if late {
			warnings = append(warnings, "no process of this container did anything the recording saw after it joined: the advice drops every capability without evidence")
		} else {
			warnings = append(warnings, "no process of this container was observed: the advice drops every capability without evidence; record while the container runs")
		}
	}
	nonRoot := nonRootExecs(c.Execs)
	for _, row := range rows {
		if row.Decision == DeniedDecision && len(row.Evidence) > 0 {
			e := row.Evidence[0]
			warnings = append(warnings, fmt.Sprintf("%s was denied to %s in %s (%s): decide whether the workload needs it; it is not in add",
				row.Capability, e.Executable, e.Syscall, e.Outcome))
		}
		if row.Decision != Required && row.Decision != DeniedDecision {
			continue
		}
		var asked []nonRootAsk
		for _, e := range row.Evidence {
			if uid, ok := nonRootWithout(nonRoot[e.Executable], row.Capability); ok {
				asked = append(asked, nonRootAsk{e.Executable, uid})
			}
		}
		if len(asked) > 0 {
			warnings = append(warnings, nonRootWarning(row.Capability, asked))
		}
	}
	for _, fc := range fileCaps {
		if fc.Effective != 0 {
			warnings = append(warnings, fmt.Sprintf("%s gains %s from its file capabilities at exec; they stay in add, because the kernel refuses the exec (EPERM) when the bounding set lacks one",
				fc.Executable, strings.Join(fc.Effective.KubernetesNames(), ", ")))
		}
		if rest := fc.Gained &^ fc.Effective; rest != 0 {
			warnings = append(warnings, fmt.Sprintf("%s has file capabilities %s without the effective bit: it gets them only while they are in add",
				fc.Executable, strings.Join(rest.KubernetesNames(), ", ")))
		}
	}
	return warnings
}

// nonRootAsk is an executable that asked for a capability as a non-root uid.
type nonRootAsk struct {
	executable string
	uid        uint32
}

// nonRootWarning says that executables that ran as non-root uids asked for
// c, which add alone does not give them: one warning per capability, however
// many executables (a profile can hold thousands), naming the first three.
func nonRootWarning(c v1alpha1.Capability, asked []nonRootAsk) string {
	const named = 3
	setcap := "setcap cap_" + strings.ToLower(c.KubernetesName()) + "+ep "
	if len(asked) == 1 {
		a := asked[0]
		return fmt.Sprintf("%s ran as uid %d when it asked for %s, but Kubernetes gives non-root processes no ambient capabilities, so add alone will not give it: "+
			"set it on the file (%s%s) or run the process as root with only this capability", a.executable, a.uid, c, setcap, a.executable)
	}
	var names []string
	for _, a := range asked[:min(named, len(asked))] {
		names = append(names, fmt.Sprintf("%s as uid %d", a.executable, a.uid))
	}
	list := strings.Join(names, ", ")
	if len(asked) > named {
		list += fmt.Sprintf(" and %d more", len(asked)-named)
	}
	return fmt.Sprintf("%d executables ran as non-root uids when they asked for %s (%s), but Kubernetes gives non-root processes no ambient capabilities, so add alone will not give it: "+
		"set it on each file (%sFILE) or run the processes as root with only this capability", len(asked), c, list, setcap)
}

// nonRootExecs are the execs that ran as a non-root uid, by executable.
func nonRootExecs(execs []v1alpha1.Exec) map[string][]v1alpha1.Exec {
	byExe := map[string][]v1alpha1.Exec{}
	for _, e := range execs {
		if e.EUID != 0 {
			byExe[e.Executable] = append(byExe[e.Executable], e)
		}
	}
	return byExe
}

// nonRootWithout finds, among an executable's non-root execs, one without
// c in its permitted set (so not from file capabilities).
func nonRootWithout(execs []v1alpha1.Exec, c v1alpha1.Capability) (uint32, bool) {
	for _, e := range execs {
		if !e.Permitted.Has(c) {
			return e.EUID, true
		}
	}
	return 0, false
}

// adviceOnlyPod is a pod holding only the container with the advised
// securityContext, to find the level the advice alone reaches.
func adviceOnlyPod(name string, kind v1alpha1.ContainerKind, sc *corev1.SecurityContext) *corev1.PodSpec {
	ctr := corev1.Container{Name: name, SecurityContext: sc}
	if kind == v1alpha1.InitContainer {
		return &corev1.PodSpec{InitContainers: []corev1.Container{ctr}}
	}
	return &corev1.PodSpec{Containers: []corev1.Container{ctr}}
}

// Pod Security Standards levels.
const (
	Restricted = string(psaapi.LevelRestricted)
	Baseline   = string(psaapi.LevelBaseline)
	Privileged = string(psaapi.LevelPrivileged)
)

// PodSecurity is the strictest Pod Security Standards level a pod spec
// meets, and why it misses restricted.
type PodSecurity struct {
	Level string `json:"level"`
	// Reasons are the restricted policy's objections, as the API server's
	// admission would word them.
	Reasons []string `json:"reasons,omitempty"`
}

// podSecurityEvaluator is the API server's own Pod Security admission
// policy code (k8s.io/pod-security-admission), so the level reported is the
// level a namespace label enforces.
var podSecurityEvaluator = sync.OnceValues(func() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
})

// EvaluatePodSecurity finds the Pod Security Standards level (latest
// version) that a pod spec meets.
func EvaluatePodSecurity(meta *metav1.ObjectMeta, spec *corev1.PodSpec) PodSecurity {
	evaluator, err := podSecurityEvaluator()
	if err != nil {
		// The built-in checks are fixed at compile time: only a broken
		// dependency gets here.
		return PodSecurity{Level: "unknown", Reasons: []string{"pod security checks: " + err.Error()}}
	}
	failures := func(level psaapi.Level) []string {
		var out []string
		for _, r := range evaluator.EvaluatePod(psaapi.LevelVersion{Level: level, Version: psaapi.LatestVersion()}, meta, spec) {
			if r.Allowed {
				continue
			}
			reason := r.ForbiddenReason + ": " + r.ForbiddenDetail
			if r.ForbiddenReason == "unrestricted capabilities" {
				reason += " (restricted allows only NET_BIND_SERVICE in add, with drop ALL)"
			}
			out = append(out, reason)
		}
		return out
	}
	reasons := failures(psaapi.LevelRestricted)
	switch {
	case len(reasons) == 0:
		return PodSecurity{Level: Restricted}
	case len(failures(psaapi.LevelBaseline)) == 0:
		return PodSecurity{Level: Baseline, Reasons: reasons}
	}
	return PodSecurity{Level: Privileged, Reasons: reasons}
}

// Observed reports whether any process of the container was seen.
func Observed(c v1alpha1.Container) bool {
	return len(c.Execs) > 0 || len(c.Capabilities) > 0 || len(c.UIDs) > 0
}

// CoverageWarning says which instances were joined after they started; ""
// when every instance was recorded from its start (or coverage is unknown).
func CoverageWarning(cov *v1alpha1.Coverage) string {
	if cov == nil || len(cov.Late) == 0 {
		return ""
	}
	const shown = 3
	var which []string
	for i, l := range cov.Late {
		if i == shown {
			which = append(which, fmt.Sprintf("%d more", len(cov.Late)-shown))
			break
		}
		what := "container " + shortID(l.ContainerID)
		if l.Pod != "" {
			what = "pod " + l.Pod
		}
		if l.JoinedAfter != nil {
			what += fmt.Sprintf(" joined %s after its start", time.Duration(*l.JoinedAfter).Round(time.Second))
		}
		which = append(which, what)
	}
	instances := "instances"
	if cov.Instances == 1 {
		instances = "instance"
	}
	return fmt.Sprintf("startup not observed for %d of %d %s (%s): the advice may miss capabilities used at start; restart the container while recording",
		len(cov.Late), cov.Instances, instances, strings.Join(which, ", "))
}

// shortID is a container id's first 12 characters, as runtimes show them.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
