package recorder

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/events"
)

// targetNames names the cgroups of a recording. User space adds some
// targets itself (a command's cgroup, a pod's cgroup, containers already
// running); the kernel side makes every cgroup created below a target, and
// the cgroup of an armed pod, a target at its creation. A cgroup is named
// after the container whose id its directory name holds (the runtime names
// it: <id>, cri-containerd-<id>.scope, crio-<id>.scope), else after its
// nearest named ancestor (crun's "container" sub-cgroup, a workload's own
// sub-cgroups). Cgroups no selected container explains (a pod's sandbox,
// the pod's own cgroup) have no name, and what they did is left out.
//
// The collector notes cgroups as the kernel reports them; the recorder adds
// containers as the API or the runtime reports them, in any order; live
// events and the profile ask for names. So it is safe for concurrent use.
type targetNames struct {
	mu sync.Mutex
	// nodes are the cgroups known to be targets, by cgroup id.
	nodes map[uint64]cgroupNode
	// ownCgroup is the cgroup named after a container id, by that id.
	ownCgroup map[string]uint64
	// commands name a cgroup directly (a recorded command's).
	commands map[uint64]*namedTarget
	// containers are the container instances reported, by container id.
	containers map[string]*namedTarget
}

// cgroupNode is a target cgroup.
type cgroupNode struct {
	parent uint64
	name   string
	// created: a target from its creation (the kernel side made it one, or
	// capprof created it for a command), so its processes were recorded
	// from their first instruction.
	created bool
	// added is when user space made an existing cgroup a target.
	added time.Time
	// noted is when capprof learned of it.
	noted time.Time
}

// namedTarget is a container instance, or a recorded command.
type namedTarget struct {
	identity v1alpha1.Identity
	// pod names its processes in live events.
	pod *events.Pod
	// containerID is the runtime's id; empty for a command.
	containerID string
	podName     string
	// started is when the instance started; zero when unknown.
	started time.Time
}

func newTargetNames() *targetNames {
	return &targetNames{nodes: map[uint64]cgroupNode{}, ownCgroup: map[string]uint64{}, commands: map[uint64]*namedTarget{},
		containers: map[string]*namedTarget{}}
}

// noteCgroup records a target cgroup. A cgroup noted as created stays so.
func (n *targetNames) noteCgroup(id uint64, node cgroupNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.nodes[id]; ok && old.created {
		return
	}
	node.noted = time.Now()
	n.nodes[id] = node
	if cid := containerIDIn(node.name); cid != "" {
		// A cgroup created as a target stays the container's own, over
		// one found through its process (crun's sub-cgroup) later.
		if own, ok := n.ownCgroup[cid]; !ok || !n.nodes[own].created {
			n.ownCgroup[cid] = id
		}
	}
}

// addCommand names a command's cgroup, which capprof created for it.
func (n *targetNames) addCommand(id uint64, t *namedTarget) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.commands[id] = t
	n.nodes[id] = cgroupNode{created: true}
}

// addContainer records a container instance; a later report of the same
// instance only fills in its start.
func (n *targetNames) addContainer(t *namedTarget) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.containers[t.containerID]; ok {
		if old.started.IsZero() {
			old.started = t.started
		}
		return
	}
	n.containers[t.containerID] = t
}

// maxDepth bounds the walk up from a cgroup to a named one.
const maxDepth = 32

// name is the target a cgroup's processes belong to; nil when none.
func (n *targetNames) name(id uint64) *namedTarget {
	n.mu.Lock()
	defer n.mu.Unlock()
	for range maxDepth {
		if t := n.commands[id]; t != nil {
			return t
		}
		node, ok := n.nodes[id]
		if !ok {
			return nil
		}
		if t := n.containers[containerIDIn(node.name)]; t != nil {
			return t
		}
		id = node.parent
	}
	return nil
}

// pod names a cgroup's processes in live events; nil when unnamed.
func (n *targetNames) pod(id uint64) *events.Pod {
	if t := n.name(id); t != nil {
		return t.pod
	}
	return nil
}

// cgroupOf finds a container instance's own cgroup among the targets.
func (n *targetNames) cgroupOf(containerID string) (uint64, cgroupNode, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cgroupOfLocked(containerID)
}

func (n *targetNames) cgroupOfLocked(containerID string) (uint64, cgroupNode, bool) {
	id, ok := n.ownCgroup[containerID]
	return id, n.nodes[id], ok
}

// recorded lists what the recording covered: one entry per recorded
// instance with its identity and coverage, so that an idle container is in
// the profile too; and the instances reported that have no target cgroup
// (ended before the recording saw them).
func (n *targetNames) recorded() (seeds []v1alpha1.Container, missed []*namedTarget) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, t := range n.commands {
		seeds = append(seeds, v1alpha1.Container{Identity: t.identity, Coverage: &v1alpha1.Coverage{Instances: 1, FromStart: 1}})
	}
	for _, t := range n.containers {
		_, node, ok := n.cgroupOfLocked(t.containerID)
		if !ok {
			missed = append(missed, t)
			continue
		}
		cov := &v1alpha1.Coverage{Instances: 1}
		if node.created {
			cov.FromStart = 1
		} else {
			late := v1alpha1.LateInstance{Pod: t.podName, ContainerID: t.containerID}
			if !t.started.IsZero() {
				d := v1alpha1.Duration(max(node.added.Sub(t.started), 0).Round(time.Millisecond))
				late.JoinedAfter = &d
			}
			cov.Late = []v1alpha1.LateInstance{late}
		}
		seeds = append(seeds, v1alpha1.Container{Identity: t.identity, Coverage: cov})
	}
	slices.SortFunc(missed, func(a, b *namedTarget) int {
		return cmp.Or(cmp.Compare(a.podName, b.podName), cmp.Compare(a.identity.Name, b.identity.Name), cmp.Compare(a.containerID, b.containerID))
	})
	return seeds, missed
}

// containerIDLen is the length of a runtime's container id: 64 hex digits.
const containerIDLen = 64

// containerIDIn finds a container id in a cgroup directory's name: the name
// itself (the cgroupfs driver) or the id inside a systemd scope's name
// (cri-containerd-<id>.scope, crio-<id>.scope, docker-<id>.scope). It
// returns "" when the name holds none.
func containerIDIn(name string) string {
	run := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && isLowerHex(name[i]) {
			run++
			continue
		}
		if run == containerIDLen {
			return name[i-run : i]
		}
		run = 0
	}
	return ""
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// unclaimedPods are the pod cgroups made targets at their creation whose
// pod is not one of claimed (by uid) and that were noted before cutoff.
func (n *targetNames) unclaimedPods(claimed map[string]bool, cutoff time.Time) []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []uint64
	for id, node := range n.nodes {
		if uid := podUIDIn(node.name); uid != "" && node.created && !claimed[uid] && node.noted.Before(cutoff) {
			ids = append(ids, id)
		}
	}
	return ids
}

// forget drops a cgroup and every known cgroup below it, and returns their ids.
func (n *targetNames) forget(id uint64) []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var gone []uint64
	for c := range n.nodes {
		for cur, depth := c, 0; depth < maxDepth; depth++ {
			if cur == id {
				gone = append(gone, c)
				break
			}
			node, ok := n.nodes[cur]
			if !ok {
				break
			}
			cur = node.parent
		}
	}
	for _, c := range gone {
		if cid := containerIDIn(n.nodes[c].name); n.ownCgroup[cid] == c {
			delete(n.ownCgroup, cid)
		}
		delete(n.nodes, c)
	}
	return gone
}

// podUIDLen is the length of a pod uid: 8-4-4-4-12 hex digits and dashes.
const podUIDLen = 36

// podUIDIn is the uid of the pod whose cgroup has this name, as the
// kubelet names them: pod<uid> (cgroupfs driver) or
// <prefix>-pod<uid with underscores>.slice (systemd driver); "" for others.
func podUIDIn(name string) string {
	var uid string
	switch {
	case len(name) == len("pod")+podUIDLen && strings.HasPrefix(name, "pod"):
		uid = name[len("pod"):]
	case strings.HasSuffix(name, ".slice") && len(name) >= len("pod.slice")+podUIDLen:
		rest := strings.TrimSuffix(name, ".slice")
		if !strings.HasSuffix(rest[:len(rest)-podUIDLen], "pod") {
			return ""
		}
		uid = strings.ReplaceAll(rest[len(rest)-podUIDLen:], "_", "-")
	default:
		return ""
	}
	for i, c := range []byte(uid) {
		if dash := i == 8 || i == 13 || i == 18 || i == 23; dash != (c == '-') || !dash && !isLowerHex(c) {
			return ""
		}
	}
	return uid
}
