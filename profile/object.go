package profile

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/internal/escape"
)

// Objects splits a profile into one CapabilityProfile per workload (a
// namespace and an owner), in namespace and name order, each with its
// status summed up. A command's containers belong to no workload and cannot
// be objects: they are refused.
func Objects(p *v1alpha1.Profile) ([]v1alpha1.CapabilityProfile, error) {
	type workload struct {
		namespace string
		owner     v1alpha1.Owner
	}
	byWorkload := map[workload][]v1alpha1.Container{}
	for _, c := range p.Containers {
		if c.Owner == nil || c.Namespace == "" {
			return nil, fmt.Errorf("container %q belongs to no Kubernetes workload (a command's recording): only pods' profiles can be CapabilityProfile objects", c.Name)
		}
		w := workload{c.Namespace, *c.Owner}
		byWorkload[w] = append(byWorkload[w], c)
	}
	var out []v1alpha1.CapabilityProfile
	for w, containers := range byWorkload {
		o := v1alpha1.CapabilityProfile{
			Spec: v1alpha1.CapabilityProfileSpec{Workload: &w.owner, Recording: p.Metadata, Containers: MergeContainers(containers...)},
		}
		o.APIVersion, o.Kind = v1alpha1.APIVersion, v1alpha1.Kind
		o.Name, o.Namespace = v1alpha1.ProfileName(w.owner), w.namespace
		o.Labels = map[string]string{v1alpha1.WorkloadKindLabel: w.owner.Kind}
		if len(validation.IsValidLabelValue(w.owner.Name)) == 0 {
			o.Labels[v1alpha1.WorkloadNameLabel] = w.owner.Name
		}
		o.Status = Summary(Analyze([]Input{{Profile: FromObject(&o)}}))
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b v1alpha1.CapabilityProfile) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// FromObject is the profile a CapabilityProfile holds, as a recording
// writes it: what capprof analyze, patch and diff read.
func FromObject(o *v1alpha1.CapabilityProfile) *v1alpha1.Profile {
	return &v1alpha1.Profile{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind,
		Metadata: o.Spec.Recording, Containers: o.Spec.Containers,
	}
}

// Summary is an analysis in a CapabilityProfile's three status columns:
// each container's added capabilities, the Pod Security level all of
// their advice meets, and how many instances were recorded from their
// start.
func Summary(a Analysis) v1alpha1.CapabilityProfileStatus {
	var required []string
	level := Restricted
	instances, fromStart, known := 0, 0, false
	for _, c := range a.Containers {
		adds := "none"
		if sc := c.SecurityContext; sc != nil && sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			names := make([]string, len(sc.Capabilities.Add))
			for i, n := range sc.Capabilities.Add {
				names[i] = string(n)
			}
			adds = strings.Join(names, ",")
		}
		required = append(required, escape.Name(c.Name)+"="+adds)
		if levelRank(c.PodSecurity.Level) < levelRank(level) {
			level = c.PodSecurity.Level
		}
		if cov := c.Coverage; cov != nil {
			instances, fromStart, known = instances+cov.Instances, fromStart+cov.FromStart, true
		}
	}
	s := v1alpha1.CapabilityProfileStatus{Required: strings.Join(required, " "), PodSecurity: level, Coverage: "unknown"}
	if known {
		s.Coverage = fmt.Sprintf("%d/%d from start", fromStart, instances)
	}
	return s
}

// levelRank orders Pod Security levels from the least strict.
func levelRank(level string) int {
	switch level {
	case Restricted:
		return 2
	case Baseline:
		return 1
	}
	return 0
}
