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
