package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/profile"
)

// runtimeDefaultNames are the capabilities each container runtime grants a
// container that does not say otherwise: containerd's and Docker's 14
// (containerd pkg/oci defaultUnixCaps, moby oci/caps/defaults.go) and
// CRI-O's 9 (default_capabilities in crio.conf).
var runtimeDefaultNames = map[string][]string{
	"containerd": {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"},
	"docker":     {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"},
	"crio":       {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "KILL"},
}

// Runtimes are the values of --runtime-defaults.
var Runtimes = []string{"containerd", "crio", "docker"}

// RuntimeDefaults returns the default capability set of a runtime.
func RuntimeDefaults(runtime string) (v1alpha1.CapSet, error) {
	names, ok := runtimeDefaultNames[runtime]
	if !ok {
		return 0, fmt.Errorf("unknown runtime %q (valid: %s)", runtime, strings.Join(Runtimes, ", "))
	}
	var set v1alpha1.CapSet
	for _, n := range names {
		c, err := v1alpha1.ParseCapability(n)
		if err != nil {
			return 0, err
		}
		set |= 1 << c
	}
	return set, nil
}

// allCapabilities is what a privileged container, or add: [ALL], gets.
var allCapabilities = func() v1alpha1.CapSet {
	var s v1alpha1.CapSet
	for c := v1alpha1.Capability(0); c <= v1alpha1.LastCapability; c++ {
		s |= 1 << c
	}
	return s
}()

// Granted is the capability (bounding) set a securityContext gives a
// container, as the CRI runtimes compute it: privileged gets everything;
// otherwise the defaults, or everything with add ALL, or nothing with drop
// ALL; then the named adds; then the named drops.
func Granted(sc *corev1.SecurityContext, defaults v1alpha1.CapSet) (v1alpha1.CapSet, error) {
	if sc == nil {
		return defaults, nil
	}
	if sc.Privileged != nil && *sc.Privileged {
		return allCapabilities, nil
	}
	if sc.Capabilities == nil {
		return defaults, nil
	}
	set := defaults
	if hasAll(sc.Capabilities.Add) {
		set = allCapabilities
	}
	if hasAll(sc.Capabilities.Drop) {
		set = 0
	}
	for _, list := range []struct {
		field string
		caps  []corev1.Capability
		add   bool
	}{{"add", sc.Capabilities.Add, true}, {"drop", sc.Capabilities.Drop, false}} {
		for _, name := range list.caps {
			if strings.EqualFold(string(name), "ALL") {
				continue
			}
			c, err := v1alpha1.ParseCapability(string(name))
			if err != nil {
				return 0, fmt.Errorf("securityContext.capabilities.%s: %w", list.field, err)
			}
			if list.add {
				set |= 1 << c
			} else {
				set &^= 1 << c
			}
		}
	}
	return set, nil
}

func hasAll(caps []corev1.Capability) bool {
	return slices.ContainsFunc(caps, func(c corev1.Capability) bool { return strings.EqualFold(string(c), "ALL") })
}

// Comparison is a manifest compared with the advice for its containers.
type Comparison struct {
	Manifest        string               `json:"manifest"`
	RuntimeDefaults string               `json:"runtimeDefaults"`
	Workloads       []WorkloadComparison `json:"workloads"`
	// Unprofiled are the manifest's containers no profile covers: left alone.
	Unprofiled []string `json:"unprofiled,omitempty"`
	// Elsewhere are profiled containers of workloads not in the manifest.
	Elsewhere []string `json:"elsewhere,omitempty"`
}

// WorkloadComparison is one workload of the manifest with profiled containers.
type WorkloadComparison struct {
	Workload  string `json:"workload"`
	Namespace string `json:"namespace,omitempty"`
	// PodSecurityToday and PodSecurityAdvised are the levels of the whole
	// pod spec, before and after the advice is applied to every profiled
	// container.
	PodSecurityToday   profile.PodSecurity   `json:"podSecurityToday"`
	PodSecurityAdvised profile.PodSecurity   `json:"podSecurityAdvised"`
	Containers         []ContainerComparison `json:"containers"`
}

// ContainerComparison is one manifest container: what it is granted
// today, what its profile needs, and what the advice would change.
type ContainerComparison struct {
	Container string                 `json:"container"`
	Kind      v1alpha1.ContainerKind `json:"kind"`
	// Profile is the profiled container's key.
	Profile string `json:"profile"`
	// GrantedToday is the bounding set the manifest's securityContext
	// gives it with the runtime's defaults.
	GrantedToday []string `json:"grantedToday"`
	Required     []string `json:"required"`
	// CanDrop are granted today and never needed.
	CanDrop []string `json:"canDrop"`
	// Missing are needed and not granted today.
	Missing []string `json:"missing"`
	// Changes are the securityContext fields the advice changes.
	Changes []FieldChange `json:"changes"`
}

// FieldChange is a securityContext field the advice sets differently.
type FieldChange struct {
	Field   string `json:"field"`
	Today   string `json:"today"`
	Advised string `json:"advised"`
}

// HasMissing reports whether a container lacks a capability it needs.
func (c *Comparison) HasMissing() bool {
	return c.any(func(cc ContainerComparison) bool { return len(cc.Missing) > 0 })
}

// HasExcess reports whether a container is granted a capability it never needed.
func (c *Comparison) HasExcess() bool {
	return c.any(func(cc ContainerComparison) bool { return len(cc.CanDrop) > 0 })
}

func (c *Comparison) any(f func(ContainerComparison) bool) bool {
	return slices.ContainsFunc(c.Workloads, func(w WorkloadComparison) bool { return slices.ContainsFunc(w.Containers, f) })
}

// Compare matches the analysis to the manifest and compares each matched
// container's grant today (with the runtime's defaults) with the advice.
func Compare(m *Manifest, a *profile.Analysis, runtime string) (*Comparison, error) {
	defaults, err := RuntimeDefaults(runtime)
	if err != nil {
		return nil, err
	}
	matching, err := m.Match(a)
	if err != nil {
		return nil, err
	}
	cmp := &Comparison{Manifest: m.Path, RuntimeDefaults: runtime, Workloads: []WorkloadComparison{},
		Unprofiled: matching.Unprofiled, Elsewhere: matching.Elsewhere}
	for _, wp := range plan(matching.Matches) {
		w, after := wp.workload, wp.applied()
		wc := WorkloadComparison{
			Workload: w.String(), Namespace: wp.namespace,
			PodSecurityToday:   profile.EvaluatePodSecurity(&w.PodMeta, &w.PodSpec),
			PodSecurityAdvised: profile.EvaluatePodSecurity(&after.PodMeta, &after.PodSpec),
		}
		for _, pc := range wp.containers {
			today, err := Granted(pc.today, defaults)
			if err != nil {
				return nil, fmt.Errorf("%s: %s container %s: %w", m.Path, w, pc.Container, err)
			}
			var required v1alpha1.CapSet
			for _, d := range pc.Analysis.Capabilities {
				if d.Decision == profile.Required {
					required |= 1 << d.Capability
				}
			}
			wc.Containers = append(wc.Containers, ContainerComparison{
				Container: pc.Container, Kind: pc.Kind, Profile: pc.Analysis.Key().String(),
				GrantedToday: today.KubernetesNames(),
				Required:     required.KubernetesNames(),
				CanDrop:      (today &^ required).KubernetesNames(),
				Missing:      (required &^ today).KubernetesNames(),
				Changes:      changes(w.PodSpec.SecurityContext, pc.today, pc.merged),
			})
		}
		cmp.Workloads = append(cmp.Workloads, wc)
	}
	return cmp, nil
}

// changes lists the advised fields whose value differs from today's,
// where today's value may come from the pod's securityContext.
func changes(pod *corev1.PodSecurityContext, today, advised *corev1.SecurityContext) []FieldChange {
	if today == nil {
		today = &corev1.SecurityContext{}
	}
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	var todayCaps, advisedCaps corev1.Capabilities
	if today.Capabilities != nil {
		todayCaps = *today.Capabilities
	}
	if advised.Capabilities != nil {
		advisedCaps = *advised.Capabilities
	}
	fields := []struct{ field, today, advised string }{
		{"capabilities.drop", capsValue(todayCaps.Drop), capsValue(advisedCaps.Drop)},
		{"capabilities.add", capsValue(todayCaps.Add), capsValue(advisedCaps.Add)},
		{"privileged", boolValue(today.Privileged), boolValue(advised.Privileged)},
		{"allowPrivilegeEscalation", boolValue(today.AllowPrivilegeEscalation), boolValue(advised.AllowPrivilegeEscalation)},
		{"runAsNonRoot", orPod(boolValue(today.RunAsNonRoot), boolValue(pod.RunAsNonRoot)), orPod(boolValue(advised.RunAsNonRoot), boolValue(pod.RunAsNonRoot))},
		{"runAsUser", orPod(intValue(today.RunAsUser), intValue(pod.RunAsUser)), orPod(intValue(advised.RunAsUser), intValue(pod.RunAsUser))},
		{"seccompProfile", orPod(seccompValue(today.SeccompProfile), seccompValue(pod.SeccompProfile)), orPod(seccompValue(advised.SeccompProfile), seccompValue(pod.SeccompProfile))},
	}
	out := []FieldChange{}
	for _, f := range fields {
		if f.today != f.advised {
			out = append(out, FieldChange{Field: f.field, Today: f.today, Advised: f.advised})
		}
	}
	return out
}

const unset = "unset"

func orPod(container, pod string) string {
	if container == unset && pod != unset {
		return pod + " (pod)"
	}
	return container
}

func capsValue(caps []corev1.Capability) string {
	if len(caps) == 0 {
		return unset
	}
	parts := make([]string, len(caps))
	for i, c := range caps {
		parts[i] = string(c)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func boolValue(b *bool) string {
	if b == nil {
		return unset
	}
	return strconv.FormatBool(*b)
}

func intValue(i *int64) string {
	if i == nil {
		return unset
	}
	return strconv.FormatInt(*i, 10)
}

func seccompValue(s *corev1.SeccompProfile) string {
	if s == nil {
		return unset
	}
	if s.Type == corev1.SeccompProfileTypeLocalhost && s.LocalhostProfile != nil {
		return "Localhost " + *s.LocalhostProfile
	}
	return string(s.Type)
}
