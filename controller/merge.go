package controller

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/profile"
)

// Merged is what a recording's node results add up to.
type Merged struct {
	// Profiles are one CapabilityProfile per workload recorded.
	Profiles []v1alpha1.CapabilityProfile
	Status   v1alpha1.CapabilityRecordingStatus
	// Recheck is when the status changes by time alone (the duration
	// ends, the wait for final results is over); zero when never.
	Recheck time.Time
}

// Merge adds up a recording's node results (those of this recording, in
// any order) at now: the containers of every node merged per workload, as
// capprof analyze merges per-node files, and the recording's status. The
// nodes' own results say how each node recorded. grace is how long after
// the recording's end nodes' final results are waited for.
func Merge(rec *v1alpha1.CapabilityRecording, results []v1alpha1.CapabilityNodeResult, now time.Time, grace time.Duration, version string) (Merged, error) {
	var all []v1alpha1.Container
	var nodes []v1alpha1.CapabilityNodeResult
	for _, r := range results {
		all = append(all, r.Spec.Containers...)
		if r.Spec.Workload == nil {
			nodes = append(nodes, r)
		}
	}
	slices.SortFunc(nodes, func(a, b v1alpha1.CapabilityNodeResult) int { return cmp.Compare(a.Spec.Node, b.Spec.Node) })
	p := &v1alpha1.Profile{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Metadata: metadata(rec, nodes, version), Containers: profile.MergeContainers(all...)}
	objects, err := profile.Objects(p)
	if err != nil {
		return Merged{}, err
	}
	m := Merged{Profiles: objects}
	for i := range m.Profiles {
		if len(validation.IsValidLabelValue(rec.Name)) == 0 {
			m.Profiles[i].Labels[v1alpha1.RecordingLabel] = rec.Name
		}
		m.Status.Profiles = append(m.Status.Profiles, m.Profiles[i].Name)
	}
	m.Status.ObservedGeneration = rec.Generation
	m.Status.NodeCount = int32(len(nodes))
	m.Status.Pods = countPods(p.Containers, results, nodes)
	m.Status.Conditions = slices.Clone(rec.Status.Conditions)

	end, ends := rec.End()
	var notFinal []string
	for _, r := range nodes {
		if !r.Spec.Final {
			notFinal = append(notFinal, r.Spec.Node)
		}
	}
	over := ends && !now.Before(end)
	switch {
	case over && (len(notFinal) == 0 || !now.Before(end.Add(grace))):
		m.Status.Phase = v1alpha1.RecordingComplete
	case len(nodes) == 0 && !over:
		m.Status.Phase = v1alpha1.RecordingPending
		m.Recheck = end
	default:
		m.Status.Phase = v1alpha1.RecordingRecording
		if over {
			m.Recheck = end.Add(grace)
		} else {
			m.Recheck = end
		}
	}
	if !ends {
		m.Recheck = time.Time{}
	}
	conditions(&m.Status, rec.Generation, p, notFinal, over)
	return m, nil
}

// metadata is the recording's metadata from the nodes' own results: from
// the first start to the last write of any node, the nodes, kernels and
// probes that recorded, the drops summed and every node's gaps.
func metadata(rec *v1alpha1.CapabilityRecording, nodes []v1alpha1.CapabilityNodeResult, version string) v1alpha1.Metadata {
	m := v1alpha1.Metadata{CapprofVersion: version, Selector: Describe(rec)}
	if w := rec.Spec.StartupWindow; w != nil {
		m.StartupWindow = v1alpha1.Duration(w.Duration)
	}
	var names, kernels, probes []string
	for _, r := range nodes {
		rm := r.Spec.Recorded
		if m.StartTime.IsZero() || rm.StartTime.Before(m.StartTime.Time) {
			m.StartTime = rm.StartTime
		}
		if rm.EndTime.After(m.EndTime.Time) {
			m.EndTime = rm.EndTime
		}
		names, kernels, probes = append(names, r.Spec.Node), append(kernels, rm.KernelRelease), append(probes, rm.Probe)
		m.Drops = m.Drops.Plus(rm.Drops)
		m.Gaps = append(m.Gaps, rm.Gaps...)
		m.StartupWindow = rm.StartupWindow
	}
	m.Node, m.KernelRelease, m.Probe = joined(names), joined(kernels), joined(probes)
	return m
}

// joined is the distinct values, sorted, comma-separated.
func joined(values []string) string {
	slices.Sort(values)
	return strings.Join(slices.Compact(values), ",")
}

// Describe says what a recording selects, as a profile's selector:
// "Deployment web in namespace shop".
func Describe(rec *v1alpha1.CapabilityRecording) string {
	what := "pods matching " + metav1.FormatLabelSelector(rec.Spec.Selector)
	if w := rec.Spec.Workload; w != nil {
		what = w.Kind + " " + w.Name
	}
	return fmt.Sprintf("%s in namespace %q (CapabilityRecording %s)", what, rec.Namespace, rec.Name)
}

// countPods counts the pods the containers were recorded in; those whose
// every container instance was recorded from its first instruction; and
// the partial ones: with an instance joined late, or on a node whose agent
// was down while the recording ran (a gap, maybe in the pod's life).
func countPods(containers []v1alpha1.Container, results, nodes []v1alpha1.CapabilityNodeResult) v1alpha1.RecordingPods {
	observed, late, partial := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range containers {
		for _, pod := range c.Pods {
			observed[c.Namespace+"/"+pod] = true
		}
		if c.Coverage != nil {
			for _, l := range c.Coverage.Late {
				late[c.Namespace+"/"+l.Pod], partial[c.Namespace+"/"+l.Pod] = true, true
			}
		}
	}
	down := map[string]bool{}
	for _, r := range nodes {
		down[r.Spec.Node] = len(r.Spec.Recorded.Gaps) > 0
	}
	for _, r := range results {
		if !down[r.Spec.Node] {
			continue
		}
		for _, c := range r.Spec.Containers {
			for _, pod := range c.Pods {
				partial[c.Namespace+"/"+pod] = true
			}
		}
	}
	return v1alpha1.RecordingPods{Observed: int32(len(observed)), FromStart: int32(len(observed) - len(late)), Partial: int32(len(partial))}
}

// conditions sets Recording, Complete and Degraded.
func conditions(s *v1alpha1.CapabilityRecordingStatus, generation int64, p *v1alpha1.Profile, notFinal []string, over bool) {
	set := func(kind string, status bool, reason, message string) {
		c := metav1.Condition{Type: kind, Status: metav1.ConditionFalse, Reason: reason, Message: message, ObservedGeneration: generation}
		if status {
			c.Status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&s.Conditions, c)
	}
	switch s.Phase {
	case v1alpha1.RecordingPending:
		set(v1alpha1.ConditionRecording, false, "NoAgentReported", "no node's agent has armed the recording yet")
		set(v1alpha1.ConditionComplete, false, "Pending", "the recording has not begun")
	case v1alpha1.RecordingRecording:
		set(v1alpha1.ConditionRecording, true, "AgentsRecording", fmt.Sprintf("%d node(s) recording; the profiles are merged as they report", s.NodeCount))
		msg := "the recording runs until it is deleted"
		if over {
			msg = "waiting for the final results of node(s) " + strings.Join(notFinal, ", ")
		}
		set(v1alpha1.ConditionComplete, false, "Recording", msg)
	case v1alpha1.RecordingComplete:
		set(v1alpha1.ConditionRecording, false, "DurationOver", "the recording's duration is over")
		set(v1alpha1.ConditionComplete, true, "AllResultsMerged", fmt.Sprintf("the profiles hold what %d node(s) recorded", s.NodeCount))
	}
	var why []string
	if late := s.Pods.Observed - s.Pods.FromStart; late > 0 {
		why = append(why, fmt.Sprintf("%d pod(s) were already running when recorded: their start is missing", late))
	}
	for _, g := range p.Metadata.Gaps {
		why = append(why, fmt.Sprintf("node %s recorded nothing for %s (its agent was down)", g.Node, g.To.Sub(g.From.Time).Round(time.Second)))
	}
	if d := p.Metadata.Drops; d.Total() > 0 {
		why = append(why, d.String())
	}
	if s.Phase == v1alpha1.RecordingComplete && s.NodeCount == 0 {
		why = append(why, "no node's agent reported: is capprof's agent DaemonSet running?")
	}
	if s.Phase == v1alpha1.RecordingComplete && len(notFinal) > 0 {
		why = append(why, "no final result from node(s) "+strings.Join(notFinal, ", ")+": what they recorded after their last write is missing")
	}
	if len(why) > 0 {
		set(v1alpha1.ConditionDegraded, true, "Incomplete", strings.Join(why, "; "))
	} else {
		set(v1alpha1.ConditionDegraded, false, "FullCoverage", "every recorded container was recorded from its first instruction, with no gap or loss")
	}
}
