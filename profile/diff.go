package profile

import (
	"slices"
	"strings"

	"github.com/capprof/capprof/api/v1alpha1"
)

// Diff is what changed between two analyses, per container.
type Diff struct {
	Base string `json:"base"`
	Head string `json:"head"`
	// Containers lists the containers that changed, in key order.
	Containers []ContainerDiff `json:"containers"`
	// Unchanged counts the containers in both that did not change.
	Unchanged int `json:"unchanged"`
}

// Container statuses in a diff.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// ContainerDiff is how one container's needs changed from base to head.
type ContainerDiff struct {
	Container string `json:"container"`
	// Status is added (only in head), removed (only in base) or changed.
	Status string `json:"status"`
	// NewlyRequired and NoLongerRequired are capability names (CAP_...).
	NewlyRequired    []string `json:"newlyRequired,omitempty"`
	NoLongerRequired []string `json:"noLongerRequired,omitempty"`
	// NewDenials are capabilities decided "denied" in head but not in base.
	NewDenials []string `json:"newDenials,omitempty"`
	// NewPrivilegeGains are executables that gained privileges at exec in
	// head but not in base.
	NewPrivilegeGains []string `json:"newPrivilegeGains,omitempty"`
	// NewPrivilegedExecutables are executables behind a required
	// capability in head that were behind none in base, as
	// "executable (CAP_X, CAP_Y)".
	NewPrivilegedExecutables []string `json:"newPrivilegedExecutables,omitempty"`
	// PodSecurity is "baseline -> privileged" when the advice's level changed.
	PodSecurity string `json:"podSecurity,omitempty"`
	// Verification says which of head's decisions capprof verify proved
	// and which were only observed (ContainerAnalysis.VerificationSummary).
	Verification string `json:"verification,omitempty"`
}

// NewCapabilities reports whether any container newly requires a capability.
func (d *Diff) NewCapabilities() bool {
	return slices.ContainsFunc(d.Containers, func(c ContainerDiff) bool { return len(c.NewlyRequired) > 0 })
}

// Changed reports whether anything changed.
func (d *Diff) Changed() bool { return len(d.Containers) > 0 }

// DiffAnalyses compares the containers of two analyses by key.
func DiffAnalyses(baseName string, base Analysis, headName string, head Analysis) Diff {
	d := Diff{Base: baseName, Head: headName, Containers: []ContainerDiff{}}
	byKey := func(a Analysis) map[v1alpha1.Key]*ContainerAnalysis {
		m := map[v1alpha1.Key]*ContainerAnalysis{}
		for i := range a.Containers {
			m[a.Containers[i].Key()] = &a.Containers[i]
		}
		return m
	}
	baseByKey, headByKey := byKey(base), byKey(head)
	var keys []v1alpha1.Key
	for k := range baseByKey {
		keys = append(keys, k)
	}
	for k := range headByKey {
		if _, ok := baseByKey[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareKeys)
	empty := &ContainerAnalysis{}
	for _, k := range keys {
		b, h := baseByKey[k], headByKey[k]
		cd := ContainerDiff{Container: k.String(), Status: Changed}
		switch {
		case b == nil:
			cd.Status, b = Added, empty
		case h == nil:
			cd.Status, h = Removed, empty
		}
		cd.NewlyRequired = missingFrom(decided(h, Required), decided(b, Required))
		cd.NoLongerRequired = missingFrom(decided(b, Required), decided(h, Required))
		cd.NewDenials = missingFrom(decided(h, DeniedDecision), decided(b, DeniedDecision))
		cd.NewPrivilegeGains = missingFrom(h.PrivilegeGains, b.PrivilegeGains)
		cd.NewPrivilegedExecutables = newPrivilegedExecutables(b, h)
		if cd.Status == Changed && b.PodSecurity.Level != h.PodSecurity.Level {
			cd.PodSecurity = b.PodSecurity.Level + " -> " + h.PodSecurity.Level
		}
		if cd.Status == Changed && len(cd.NewlyRequired)+len(cd.NoLongerRequired)+len(cd.NewDenials)+
			len(cd.NewPrivilegeGains)+len(cd.NewPrivilegedExecutables)+len(cd.PodSecurity) == 0 {
			d.Unchanged++
			continue
		}
		cd.Verification = h.VerificationSummary()
		d.Containers = append(d.Containers, cd)
	}
	return d
}

// decided lists the capabilities with decision d.
func decided(c *ContainerAnalysis, d Decision) []string {
	var out []string
	for _, row := range c.Capabilities {
		if row.Decision == d {
			out = append(out, row.Capability.String())
		}
	}
	return out
}

// missingFrom returns the members of a that b lacks, sorted.
func missingFrom(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// requiredBy maps each executable behind a required capability to them.
func requiredBy(c *ContainerAnalysis) map[string][]string {
	out := map[string][]string{}
	for _, row := range c.Capabilities {
		if row.Decision != Required {
			continue
		}
		for _, e := range row.Evidence {
			if !slices.Contains(out[e.Executable], row.Capability.String()) {
				out[e.Executable] = append(out[e.Executable], row.Capability.String())
			}
		}
	}
	return out
}

func newPrivilegedExecutables(base, head *ContainerAnalysis) []string {
	before, after := requiredBy(base), requiredBy(head)
	var out []string
	for exe, caps := range after {
		if _, ok := before[exe]; ok {
			continue
		}
		slices.Sort(caps)
		out = append(out, exe+" ("+strings.Join(caps, ", ")+")")
	}
	slices.Sort(out)
	return out
}
