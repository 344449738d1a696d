package recorder

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/profile"
)

func TestContainerIDIn(t *testing.T) {
	id := "26b3827c315f8134842daa50ffe1696e11474a0c072ebeea4478d0b8cc8b4585"
	for name, want := range map[string]string{
		id:                                id, // cgroupfs driver
		"cri-containerd-" + id + ".scope": id, // systemd driver, containerd
		"crio-" + id + ".scope":           id,
		"docker-" + id + ".scope":         id,
		"container":                       "", // crun's sub-cgroup
		"pod3d4b62ba-429b-4402-b0f8-dd0d4cad14b0": "",
		id + "0":                    "", // 65 hex digits: not an id
		strings.ToUpper(id):         "",
		"kubepods-besteffort.slice": "",
	} {
		if got := containerIDIn(name); got != want {
			t.Errorf("containerIDIn(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestPodUIDIn(t *testing.T) {
	const uid = "3d4b62ba-429b-4402-b0f8-dd0d4cad14b0"
	for name, want := range map[string]string{
		"pod" + uid: uid,
		"kubepods-besteffort-pod3d4b62ba_429b_4402_b0f8_dd0d4cad14b0.slice":        uid,
		"kubepods-pod3d4b62ba_429b_4402_b0f8_dd0d4cad14b0.slice":                   uid,
		"kubelet-kubepods-burstable-pod3d4b62ba_429b_4402_b0f8_dd0d4cad14b0.slice": uid,
		"pod" + uid + "x":                         "",
		"pod3d4b62ba_429b_4402_b0f8_dd0d4cad14b0": "", // underscores only in slice names
		"kubepods-besteffort.slice":               "",
		"podzzzzzzzz-429b-4402-b0f8-dd0d4cad14b0": "",
		"besteffort":                              "",
	} {
		if got := podUIDIn(name); got != want {
			t.Errorf("podUIDIn(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestTargetNames: cgroups are named after the container id in their name or
// their nearest named ancestor; a pod's own cgroup and its sandbox have no
// name; coverage says which instances were targets from their creation.
func TestTargetNames(t *testing.T) {
	n := newTargetNames()
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	web := v1alpha1.Identity{Name: "web", Namespace: "shop", Owner: &v1alpha1.Owner{Kind: "Deployment", Name: "web"}, Pods: []string{"web-1"}}
	started := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

	// The pod's cgroup, made a target by user space, with a container
	// already running in it (late) and, created since, a container in a
	// systemd scope with crun's sub-cgroup below, a sub-cgroup of that, and
	// the sandbox.
	n.noteCgroup(10, cgroupNode{name: "kubepods-besteffort-pod3d4b62ba_429b_4402_b0f8_dd0d4cad14b0.slice", added: started})
	n.noteCgroup(11, cgroupNode{parent: 10, name: id('a'), added: started.Add(90 * time.Second)})
	n.noteCgroup(12, cgroupNode{parent: 10, name: "cri-containerd-" + id('b') + ".scope", created: true})
	n.noteCgroup(13, cgroupNode{parent: 12, name: "container", created: true})
	n.noteCgroup(14, cgroupNode{parent: 13, name: "workers", created: true})
	n.noteCgroup(15, cgroupNode{parent: 10, name: id('f'), created: true})
	n.noteCgroup(12, cgroupNode{parent: 10, name: "cri-containerd-" + id('b') + ".scope"}) // a late lookup of a created one
	n.addContainer(&namedTarget{identity: web, containerID: id('a'), podName: "web-1", started: started})
	n.addContainer(&namedTarget{identity: web, containerID: id('b'), podName: "web-1"})
	n.addContainer(&namedTarget{identity: web, containerID: id('c'), podName: "web-1"}) // ended before it was seen

	for cg, want := range map[uint64]string{11: id('a'), 12: id('b'), 13: id('b'), 14: id('b'), 10: "", 15: "", 99: ""} {
		got := ""
		if tgt := n.name(cg); tgt != nil {
			got = tgt.containerID
		}
		if got != want {
			t.Errorf("cgroup %d named after container %q, want %q", cg, got, want)
		}
	}
	seeds, missed := n.recorded()
	if len(missed) != 1 || missed[0].containerID != id('c') {
		t.Fatalf("missed %+v, want container c", missed)
	}
	merged := profile.MergeContainers(seeds...)
	joined := v1alpha1.Duration(90 * time.Second)
	want := &v1alpha1.Coverage{Instances: 2, FromStart: 1, Late: []v1alpha1.LateInstance{{Pod: "web-1", ContainerID: id('a'), JoinedAfter: &joined}}}
	if len(merged) != 1 || !reflect.DeepEqual(merged[0].Coverage, want) {
		t.Fatalf("coverage %+v, want %+v", merged[0].Coverage, want)
	}

	// The pod cgroups of pods nobody claimed are forgotten with what is below.
	n.noteCgroup(20, cgroupNode{name: "pod4d4b62ba-429b-4402-b0f8-dd0d4cad14b0", created: true})
	n.noteCgroup(21, cgroupNode{parent: 20, name: id('d'), created: true})
	if got := n.unclaimedPods(map[string]bool{"3d4b62ba-429b-4402-b0f8-dd0d4cad14b0": true}, time.Now().Add(time.Hour)); !reflect.DeepEqual(got, []uint64{20}) {
		t.Fatalf("unclaimed pods %v, want [20]", got)
	}
	if got := n.unclaimedPods(nil, time.Now().Add(-time.Hour)); len(got) != 0 {
		t.Fatalf("unclaimed pods noted before the cutoff: %v, want none", got)
	}
	gone := n.forget(20)
	if len(gone) != 2 || n.name(21) != nil {
		t.Fatalf("forget(20) = %v", gone)
	}
}
