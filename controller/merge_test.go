package controller

import (
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capprof/capprof/api/v1alpha1"
)

var (
	created = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	web     = &v1alpha1.Owner{Kind: "Deployment", Name: "web"}
	db      = &v1alpha1.Owner{Kind: "StatefulSet", Name: "db"}
)

func recording(duration time.Duration) *v1alpha1.CapabilityRecording {
	rec := &v1alpha1.CapabilityRecording{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-x", Generation: 2, CreationTimestamp: metav1.NewTime(created)},
		Spec: v1alpha1.CapabilityRecordingSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}}}
	if duration > 0 {
		rec.Spec.Duration = &metav1.Duration{Duration: duration}
	}
	return rec
}

// container is one container of owner in pods, each instance from its
// start but those in late.
func container(owner *v1alpha1.Owner, capability v1alpha1.Capability, pods []string, late ...string) v1alpha1.Container {
	c := v1alpha1.Container{
		Identity: v1alpha1.Identity{Name: "server", Namespace: "shop", Owner: owner, Kind: v1alpha1.RegularContainer, Pods: pods},
		Capabilities: []v1alpha1.CapabilityChecks{{Capability: capability, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 1,
			Sources: []v1alpha1.Source{{Executable: "/srv", Syscall: "bind", Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.SteadyPhase, Count: 1}}}},
		Execs: []v1alpha1.Exec{}, CredentialChanges: []v1alpha1.CredentialChange{}, UIDs: []uint32{0},
		Coverage: &v1alpha1.Coverage{Instances: len(pods), FromStart: len(pods) - len(late)},
	}
	for _, p := range late {
		c.Coverage.Late = append(c.Coverage.Late, v1alpha1.LateInstance{Pod: p})
	}
	return c
}

func result(node string, final bool, gaps []v1alpha1.Gap, containers ...v1alpha1.Container) v1alpha1.CapabilityNodeResult {
	r := v1alpha1.CapabilityNodeResult{Spec: v1alpha1.CapabilityNodeResultSpec{
		Recording: "web-x", Node: node, Session: "s", Final: final, Containers: containers,
		Recorded: v1alpha1.Metadata{Node: node, KernelRelease: "6.18", Probe: "tracepoint", StartupWindow: v1alpha1.Duration(10 * time.Second),
			StartTime: v1alpha1.Time{Time: created.Add(time.Second)}, EndTime: v1alpha1.Time{Time: created.Add(time.Minute)}, Gaps: gaps},
	}}
	r.Name = "web-x." + node
	return r
}

// workloadResult is a node's result of a workload's containers.
func workloadResult(node string, c v1alpha1.Container) v1alpha1.CapabilityNodeResult {
	r := result(node, false, nil, c)
	r.Spec.Workload = c.Owner
	return r
}

func TestMerge(t *testing.T) {
	gap := []v1alpha1.Gap{{Node: "node-b", From: v1alpha1.Time{Time: created.Add(10 * time.Second)}, To: v1alpha1.Time{Time: created.Add(14 * time.Second)}}}
	for _, tc := range []struct {
		name     string
		rec      *v1alpha1.CapabilityRecording
		results  []v1alpha1.CapabilityNodeResult
		now      time.Duration // after the recording's creation
		phase    v1alpha1.RecordingPhase
		pods     v1alpha1.RecordingPods
		profiles []string
		required string // of deployment-web
		degraded string // in the Degraded condition's message; "" when false
		recheck  time.Duration
	}{
		{name: "no agent yet", rec: recording(time.Hour), now: time.Second, phase: v1alpha1.RecordingPending, recheck: time.Hour},
		{name: "no agent ever", rec: recording(time.Minute), now: 2 * time.Minute, phase: v1alpha1.RecordingComplete, degraded: "no node's agent reported"},
		{name: "no duration", rec: recording(0), now: time.Hour, phase: v1alpha1.RecordingRecording,
			results: []v1alpha1.CapabilityNodeResult{result("node-a", false, nil)}},
		{
			name: "replicas on two nodes merge, while recording", rec: recording(time.Hour), now: time.Minute, phase: v1alpha1.RecordingRecording,
			results: []v1alpha1.CapabilityNodeResult{
				result("node-b", false, nil, container(web, 0, []string{"web-2"})),
				result("node-a", false, nil, container(web, 10, []string{"web-1"}), container(db, 21, []string{"db-0"}, "db-0")),
			},
			pods: v1alpha1.RecordingPods{Observed: 3, FromStart: 2, Partial: 1}, profiles: []string{"deployment-web", "statefulset-db"},
			required: "server=CHOWN,NET_BIND_SERVICE", degraded: "1 pod(s) were already running", recheck: time.Hour,
		},
		{
			name: "a gap makes the node's pods partial, not late", rec: recording(time.Hour), now: time.Minute, phase: v1alpha1.RecordingRecording,
			results: []v1alpha1.CapabilityNodeResult{
				result("node-a", false, nil), workloadResult("node-a", container(web, 10, []string{"web-1"})),
				result("node-b", false, gap), workloadResult("node-b", container(web, 0, []string{"web-2"})),
			},
			pods: v1alpha1.RecordingPods{Observed: 2, FromStart: 2, Partial: 1}, profiles: []string{"deployment-web"},
			required: "server=CHOWN,NET_BIND_SERVICE", degraded: "node node-b recorded nothing for 4s (its agent was down)", recheck: time.Hour,
		},
		{
			name: "over, waiting for a final result", rec: recording(time.Minute), now: time.Minute + time.Second, phase: v1alpha1.RecordingRecording,
			results: []v1alpha1.CapabilityNodeResult{
				result("node-a", true, nil, container(web, 10, []string{"web-1"})),
				result("node-b", false, nil, container(web, 0, []string{"web-2"})),
			},
			pods: v1alpha1.RecordingPods{Observed: 2, FromStart: 2}, profiles: []string{"deployment-web"},
			required: "server=CHOWN,NET_BIND_SERVICE", recheck: 2 * time.Minute,
		},
		{
			name: "complete without a final result after the grace", rec: recording(time.Minute), now: 2*time.Minute + time.Second, phase: v1alpha1.RecordingComplete,
			results: []v1alpha1.CapabilityNodeResult{
				result("node-a", true, nil, container(web, 10, []string{"web-1"})),
				result("node-b", false, nil, container(web, 0, []string{"web-2"})),
			},
			pods: v1alpha1.RecordingPods{Observed: 2, FromStart: 2}, profiles: []string{"deployment-web"},
			required: "server=CHOWN,NET_BIND_SERVICE", degraded: "no final result from node(s) node-b",
		},
		{
			name: "complete with every final result", rec: recording(time.Minute), now: time.Minute + time.Second, phase: v1alpha1.RecordingComplete,
			results: []v1alpha1.CapabilityNodeResult{
				result("node-a", true, nil, container(web, 10, []string{"web-1"})),
				result("node-b", true, nil),
			},
			pods: v1alpha1.RecordingPods{Observed: 1, FromStart: 1}, profiles: []string{"deployment-web"}, required: "server=NET_BIND_SERVICE",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Merge(tc.rec, tc.results, created.Add(tc.now), time.Minute, "test")
			if err != nil {
				t.Fatal(err)
			}
			s := m.Status
			nodes := len(slices.Compact(nodesOf(tc.results)))
			if s.Phase != tc.phase || s.Pods != tc.pods || !slices.Equal(s.Profiles, tc.profiles) || s.NodeCount != int32(nodes) || s.ObservedGeneration != 2 {
				t.Errorf("status %+v; want phase %s, pods %+v, profiles %v, %d nodes, generation 2", s, tc.phase, tc.pods, tc.profiles, nodes)
			}
			for _, kind := range []string{v1alpha1.ConditionRecording, v1alpha1.ConditionComplete, v1alpha1.ConditionDegraded} {
				if meta.FindStatusCondition(s.Conditions, kind) == nil {
					t.Errorf("no %s condition", kind)
				}
			}
			if got := meta.IsStatusConditionTrue(s.Conditions, v1alpha1.ConditionComplete); got != (tc.phase == v1alpha1.RecordingComplete) {
				t.Errorf("Complete %v in phase %s", got, tc.phase)
			}
			if got := meta.IsStatusConditionTrue(s.Conditions, v1alpha1.ConditionRecording); got != (tc.phase == v1alpha1.RecordingRecording) {
				t.Errorf("Recording %v in phase %s", got, tc.phase)
			}
			degraded := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionDegraded)
			if (tc.degraded == "") != (degraded.Status == metav1.ConditionFalse) || !strings.Contains(degraded.Message, tc.degraded) {
				t.Errorf("Degraded %s %q; want %q", degraded.Status, degraded.Message, tc.degraded)
			}
			if tc.pods.Observed == tc.pods.FromStart && strings.Contains(degraded.Message, "already running") {
				t.Errorf("Degraded %q speaks of pods joined late; none was", degraded.Message)
			}
			var wantRecheck time.Time
			if tc.recheck > 0 {
				wantRecheck = created.Add(tc.recheck)
			}
			if !m.Recheck.Equal(wantRecheck) {
				t.Errorf("recheck at %v, want %v", m.Recheck, wantRecheck)
			}
			for _, p := range m.Profiles {
				if p.Namespace != "shop" || p.Labels[v1alpha1.RecordingLabel] != "web-x" || p.Spec.Recording.Node != joined(nodesOf(tc.results)) ||
					!strings.Contains(p.Spec.Recording.Selector, "CapabilityRecording web-x") {
					t.Errorf("profile %s/%s labels %v recording %+v", p.Namespace, p.Name, p.Labels, p.Spec.Recording)
				}
				if p.Name == "deployment-web" && p.Status.Required != tc.required {
					t.Errorf("deployment-web requires %q, want %q", p.Status.Required, tc.required)
				}
			}
		})
	}
}

func nodesOf(results []v1alpha1.CapabilityNodeResult) []string {
	var nodes []string
	for _, r := range results {
		nodes = append(nodes, r.Spec.Node)
	}
	return nodes
}

// TestMergeKeepsTransitionTimes: merging again with nothing new changes
// no condition, so the controller writes no status.
func TestMergeKeepsTransitionTimes(t *testing.T) {
	rec := recording(time.Hour)
	results := []v1alpha1.CapabilityNodeResult{result("node-a", false, nil, container(web, 10, []string{"web-1"}))}
	first, err := Merge(rec, results, created.Add(time.Minute), time.Minute, "test")
	if err != nil {
		t.Fatal(err)
	}
	rec.Status = first.Status
	again, err := Merge(rec, results, created.Add(2*time.Minute), time.Minute, "test")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range again.Status.Conditions {
		if !c.LastTransitionTime.Equal(&first.Status.Conditions[i].LastTransitionTime) || c != first.Status.Conditions[i] {
			t.Errorf("condition %s changed: %+v, was %+v", c.Type, c, first.Status.Conditions[i])
		}
	}
}

func TestUpdate(t *testing.T) {
	profile := func(end time.Duration, required string, labels map[string]string) *v1alpha1.CapabilityProfile {
		p := &v1alpha1.CapabilityProfile{Spec: v1alpha1.CapabilityProfileSpec{Recording: v1alpha1.Metadata{EndTime: v1alpha1.Time{Time: created.Add(end)}}},
			Status: v1alpha1.CapabilityProfileStatus{Required: required}}
		p.Labels = labels
		return p
	}
	ours := map[string]string{v1alpha1.RecordingLabel: "web-x"}
	for _, tc := range []struct {
		name       string
		have, want *v1alpha1.CapabilityProfile
		final      bool
		write      bool
	}{
		{"unchanged", profile(time.Minute, "a=none", ours), profile(time.Minute, "a=none", ours), false, false},
		{"only the end, a little", profile(time.Minute, "a=none", ours), profile(time.Minute+10*time.Second, "a=none", ours), false, false},
		{"only the end, a little, complete", profile(time.Minute, "a=none", ours), profile(time.Minute+10*time.Second, "a=none", ours), true, true},
		{"only the end, a while", profile(time.Minute, "a=none", ours), profile(2*time.Minute, "a=none", ours), false, true},
		{"the advice", profile(time.Minute, "a=none", ours), profile(time.Minute, "a=CHOWN", ours), false, true},
		{"our label missing", profile(time.Minute, "a=none", nil), profile(time.Minute, "a=none", ours), false, true},
		{"the user's label", profile(time.Minute, "a=none", map[string]string{"team": "shop", v1alpha1.RecordingLabel: "web-x"}), profile(time.Minute, "a=none", ours), false, false},
	} {
		got, write := update(tc.have, tc.want, tc.final)
		if write != tc.write {
			t.Errorf("%s: write %v, want %v", tc.name, write, tc.write)
			continue
		}
		if write && (got.Status != tc.want.Status || !got.Spec.Recording.EndTime.Equal(tc.want.Spec.Recording.EndTime.Time) || got.Labels[v1alpha1.RecordingLabel] != "web-x" ||
			got.Labels["team"] != tc.have.Labels["team"]) {
			t.Errorf("%s: updated to %+v", tc.name, got)
		}
	}
}
