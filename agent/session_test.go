package agent

import (
	"reflect"
	"testing"
	"time"

	"github.com/capprof/capprof/api/v1alpha1"
)

func after(d time.Duration) *v1alpha1.Duration { v := v1alpha1.Duration(d); return &v }

// TestUnseen: a restarted agent joins running containers late; those that
// started before its previous session's last write were counted by it and
// are not counted again, those that started in the gap are late instances.
func TestUnseen(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := &session{started: start, resumed: start.Add(-5 * time.Second)}
	in := []v1alpha1.Container{{
		Identity: v1alpha1.Identity{Name: "server"},
		Coverage: &v1alpha1.Coverage{Instances: 4, FromStart: 1, Late: []v1alpha1.LateInstance{
			{Pod: "web-1", JoinedAfter: after(time.Minute)},     // started long before the last write
			{Pod: "web-2", JoinedAfter: after(2 * time.Second)}, // started in the gap
			{Pod: "web-3"}, // start unknown: kept late
		}},
	}, {Identity: v1alpha1.Identity{Name: "sidecar"}}}
	want := []v1alpha1.Container{{
		Identity: v1alpha1.Identity{Name: "server"},
		Coverage: &v1alpha1.Coverage{Instances: 3, FromStart: 1, Late: []v1alpha1.LateInstance{
			{Pod: "web-2", JoinedAfter: after(2 * time.Second)}, {Pod: "web-3"},
		}},
	}, {Identity: v1alpha1.Identity{Name: "sidecar"}}}
	if got := s.unseen(in); !reflect.DeepEqual(got, want) {
		t.Errorf("unseen:\n got %+v\nwant %+v", got, want)
	}
	if in[0].Coverage.Instances != 4 || len(in[0].Coverage.Late) != 3 {
		t.Errorf("unseen changed its input: %+v", in[0].Coverage)
	}
	first := &session{started: start}
	if got := first.unseen(in); !reflect.DeepEqual(got, in) {
		t.Errorf("a first session's containers changed: %+v", got)
	}
}

func TestKept(t *testing.T) {
	containers := []v1alpha1.Container{{Identity: v1alpha1.Identity{Name: "app"}}, {Identity: v1alpha1.Identity{Name: "istio-proxy"}}}
	for _, tc := range []struct {
		filter *v1alpha1.ContainerFilter
		want   []string
	}{
		{nil, []string{"app", "istio-proxy"}},
		{&v1alpha1.ContainerFilter{Include: []string{"app"}}, []string{"app"}},
		{&v1alpha1.ContainerFilter{Exclude: []string{"istio-proxy"}}, []string{"app"}},
		{&v1alpha1.ContainerFilter{Include: []string{"db"}}, nil},
	} {
		var got []string
		for _, c := range (&session{filter: tc.filter}).kept(containers) {
			got = append(got, c.Name)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("filter %+v kept %v, want %v", tc.filter, got, tc.want)
		}
	}
}

// TestDue: a workload's result is written at once when it says something
// new, and when only its counts changed, once countsEvery has passed or at
// the end; a denial's outcome appearing is news, its count growing is not.
func TestDue(t *testing.T) {
	written := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	result := func(at time.Duration, edit func(*v1alpha1.Container)) v1alpha1.CapabilityNodeResultSpec {
		c := v1alpha1.Container{
			Identity: v1alpha1.Identity{Name: "app"},
			Capabilities: []v1alpha1.CapabilityChecks{{Capability: 0 /* CAP_CHOWN */, Verdict: v1alpha1.Denied, Count: 3,
				Sources: []v1alpha1.Source{{Executable: "/bin/chown", Syscall: "fchownat", Count: 3}}}},
			Execs: []v1alpha1.Exec{{Executable: "/bin/chown", Count: 3}},
		}
		if edit != nil {
			edit(&c)
		}
		return v1alpha1.CapabilityNodeResultSpec{UpdateTime: v1alpha1.Time{Time: written.Add(at)}, Containers: []v1alpha1.Container{c}}
	}
	prev := &v1alpha1.CapabilityNodeResult{Spec: result(0, nil)}
	moreCounts := func(c *v1alpha1.Container) {
		c.Capabilities[0].Count, c.Capabilities[0].Sources[0].Count, c.Execs[0].Count = 9, 9, 9
	}
	s := &session{countsEvery: time.Minute}
	for _, tc := range []struct {
		name  string
		prev  *v1alpha1.CapabilityNodeResult
		spec  v1alpha1.CapabilityNodeResultSpec
		final bool
		want  bool
	}{
		{"never written", nil, result(0, nil), false, true},
		{"the same", prev, result(10*time.Second, nil), false, false},
		{"the same, at the end", prev, result(10*time.Second, nil), true, false},
		{"counts only", prev, result(10*time.Second, moreCounts), false, false},
		{"counts only, a minute on", prev, result(time.Minute, moreCounts), false, true},
		{"counts only, at the end", prev, result(10*time.Second, moreCounts), true, true},
		{"a new executable", prev, result(10*time.Second, func(c *v1alpha1.Container) {
			c.Execs = append(c.Execs, v1alpha1.Exec{Executable: "/bin/bind", Count: 1})
		}), false, true},
		{"a denial's outcome found", prev, result(10*time.Second, func(c *v1alpha1.Container) {
			c.Capabilities[0].Sources[0].SyscallFailed = 1
		}), false, true},
		{"drops begin", prev, func() v1alpha1.CapabilityNodeResultSpec {
			spec := result(10*time.Second, nil)
			spec.Recorded.Drops.Events = 2
			return spec
		}(), false, true},
	} {
		if got := s.due(tc.prev, tc.spec, tc.final); got != tc.want {
			t.Errorf("%s: due %v, want %v", tc.name, got, tc.want)
		}
	}
	if prev.Spec.Containers[0].Execs[0].Count != 3 {
		t.Errorf("due changed the result it compared: %+v", prev.Spec.Containers[0].Execs[0])
	}
}
