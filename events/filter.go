package events

import (
	"fmt"
	"slices"
	"strings"

	"github.com/capprof/capprof/api/v1alpha1"
)

// Filter selects events (--events-filter). Each field lists the values
// accepted for one attribute; an event passes when, for every non-empty
// field, its value is one of them. Caps and Verdicts concern capability
// checks: other events do not pass a filter that sets them. Audits chooses
// the audit classes of the checks shown and leaves other events alone;
// without it, checks of class noaudit are left out: they are the kernel
// probing (every mmap checks CAP_SYS_ADMIN), not the workload asking, and
// the profile classifies them as noise.
type Filter struct {
	Types []Type
	// Pods are pod names, or namespace/name.
	Pods       []string
	Containers []string
	Caps       []string // kernel names: CAP_SYS_ADMIN
	Verdicts   []string // Allowed, Denied
	Audits     []string // audited, noaudit, insetid, unknown
}

// FilterKeys are the keys ParseFilter accepts.
var FilterKeys = []string{"type", "pod", "container", "cap", "verdict", "audit"}

// auditClasses are the values of audit=.
var auditClasses = []string{"audited", "noaudit", "insetid", "unknown"}

// ParseFilter reads KEY=VALUE terms: type=exec|exit|cap|creds,
// pod=NAME|NAMESPACE/NAME, container=NAME, cap=CAP_NAME|NAME,
// verdict=allowed|denied. Terms with the same key are alternatives.
func ParseFilter(terms []string) (Filter, error) {
	var f Filter
	for _, term := range terms {
		key, value, ok := strings.Cut(strings.TrimSpace(term), "=")
		if !ok || value == "" {
			return f, fmt.Errorf("%q: want KEY=VALUE with KEY one of %s", term, strings.Join(FilterKeys, ", "))
		}
		switch key {
		case "type":
			t := Type(value)
			if !slices.Contains(Types, t) {
				return f, fmt.Errorf("%q: unknown type %q: use exec, exit, cap or creds", term, value)
			}
			f.Types = append(f.Types, t)
		case "pod":
			f.Pods = append(f.Pods, value)
		case "container":
			f.Containers = append(f.Containers, value)
		case "cap":
			c, err := v1alpha1.ParseCapability(value)
			if err != nil {
				return f, fmt.Errorf("%q: %w", term, err)
			}
			f.Caps = append(f.Caps, c.String())
		case "verdict":
			if value != Allowed && value != Denied {
				return f, fmt.Errorf("%q: unknown verdict %q: use allowed or denied", term, value)
			}
			f.Verdicts = append(f.Verdicts, value)
		case "audit":
			if !slices.Contains(auditClasses, value) {
				return f, fmt.Errorf("%q: unknown audit class %q: use %s", term, value, strings.Join(auditClasses, ", "))
			}
			f.Audits = append(f.Audits, value)
		default:
			return f, fmt.Errorf("%q: unknown key %q: use one of %s", term, key, strings.Join(FilterKeys, ", "))
		}
	}
	return f, nil
}

// Match reports whether the event passes the filter.
func (f Filter) Match(e *Event) bool {
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type()) {
		return false
	}
	proc := e.Process()
	var pod *Pod
	if proc != nil {
		pod = proc.Pod
	}
	if len(f.Pods) > 0 && (pod == nil || pod.Name == "" ||
		!slices.ContainsFunc(f.Pods, func(p string) bool { return p == pod.Name || p == pod.Namespace+"/"+pod.Name })) {
		return false
	}
	if len(f.Containers) > 0 && (pod == nil || pod.Container == nil || !slices.Contains(f.Containers, pod.Container.Name)) {
		return false
	}
	k := e.ProcessKprobe
	if k == nil || k.Capability == nil {
		return len(f.Caps) == 0 && len(f.Verdicts) == 0
	}
	if len(f.Audits) == 0 && k.Audit == "noaudit" {
		return false
	}
	return (len(f.Caps) == 0 || slices.Contains(f.Caps, k.Capability.Name)) &&
		(len(f.Verdicts) == 0 || slices.Contains(f.Verdicts, k.Verdict)) &&
		(len(f.Audits) == 0 || slices.Contains(f.Audits, k.Audit))
}
