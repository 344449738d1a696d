package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/profile"
)

// writeTimeout bounds one write of a node's result.
const writeTimeout = 15 * time.Second

// session is one agent process's recording of one CapabilityRecording.
type session struct {
	key    types.NamespacedName
	uid    types.UID
	owner  metav1.OwnerReference
	id     string
	node   string
	filter *v1alpha1.ContainerFilter
	client client.Client
	log    func(format string, args ...any)

	stop      chan struct{}
	closeOnce sync.Once

	// base is what earlier sessions of this node wrote: kept, and merged
	// with this session's counts, which begin anew.
	base  []v1alpha1.Container
	gaps  []v1alpha1.Gap
	since time.Time // the first session's start
	// started is this session's start; resumed, when it goes on from an
	// earlier session, that session's last write.
	started, resumed time.Time

	mu     sync.Mutex
	result *v1alpha1.CapabilityNodeResult // as last written; nil before
}

// newSession prepares a session of rec, reading back what an earlier
// session of this node wrote: its containers are kept, and the time from
// its last write to now, when this agent recorded nothing, becomes a gap.
func (a *agent) newSession(ctx context.Context, rec *v1alpha1.CapabilityRecording) (*session, error) {
	s := &session{
		key: types.NamespacedName{Namespace: rec.Namespace, Name: rec.Name}, uid: rec.UID, id: newSessionID(), node: a.cfg.Node,
		owner:  metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "CapabilityRecording", Name: rec.Name, UID: rec.UID},
		filter: rec.Spec.Containers, client: a.client, stop: make(chan struct{}), since: time.Now(), started: time.Now(),
		log: func(format string, args ...any) { fmt.Fprintf(a.cfg.Log, "capprof: "+format+"\n", args...) },
	}
	var prev v1alpha1.CapabilityNodeResult
	err := a.client.Get(ctx, types.NamespacedName{Namespace: rec.Namespace, Name: v1alpha1.NodeResultName(rec.Name, a.cfg.Node)}, &prev)
	switch {
	case apierrors.IsNotFound(err):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read node %q's result of CapabilityRecording %s/%s: %w", a.cfg.Node, rec.Namespace, rec.Name, err)
	}
	s.result = &prev
	if !ownedBy(&prev, rec) {
		return s, nil // an earlier recording's of the same name: replaced
	}
	s.base, s.gaps, s.since = prev.Spec.Containers, prev.Spec.Recorded.Gaps, prev.Spec.Recorded.StartTime.Time
	s.resumed = prev.Spec.UpdateTime.Time
	if last := prev.Spec.UpdateTime.Time; last.Before(time.Now()) {
		s.gaps = append(s.gaps, v1alpha1.Gap{Node: a.cfg.Node, From: v1alpha1.Time{Time: last.UTC()}, To: v1alpha1.Time{Time: time.Now().UTC().Truncate(time.Millisecond)}})
		s.log("CapabilityRecording %s/%s: going on from node %q's result of %s; nothing was recorded from then to now",
			rec.Namespace, rec.Name, a.cfg.Node, last.UTC().Format(time.RFC3339))
	}
	return s, nil
}

// close stops the session without a final write.
func (s *session) close() { s.closeOnce.Do(func() { close(s.stop) }) }

// write makes p, merged with what earlier sessions wrote, the node's result.
// Failures are logged: the next write carries everything again.
func (s *session) write(p *v1alpha1.Profile, final bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
		return // the recording is gone
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	meta := p.Metadata
	meta.StartTime = v1alpha1.Time{Time: s.since.UTC().Truncate(time.Millisecond)}
	meta.Gaps = slices.Clone(s.gaps)
	spec := v1alpha1.CapabilityNodeResultSpec{
		Recording: s.key.Name, Node: s.node, Session: s.id, Final: final, Recorded: meta,
		UpdateTime: v1alpha1.Time{Time: time.Now().UTC().Truncate(time.Millisecond)},
		Containers: profile.MergeContainers(append(slices.Clone(s.base), s.unseen(s.kept(p.Containers))...)...),
	}
	if s.result == nil || !ownedBy(s.result, &v1alpha1.CapabilityRecording{ObjectMeta: metav1.ObjectMeta{UID: s.uid}}) {
		if s.result != nil { // an earlier recording's of the same name
			if err := s.client.Delete(ctx, s.result); err != nil && !apierrors.IsNotFound(err) {
				s.log("warning: replace node %q's result of an earlier CapabilityRecording %s/%s: %v", s.node, s.key.Namespace, s.key.Name, err)
				return
			}
		}
		obj := &v1alpha1.CapabilityNodeResult{Spec: spec}
		obj.Namespace, obj.Name = s.key.Namespace, v1alpha1.NodeResultName(s.key.Name, s.node)
		obj.Labels = map[string]string{v1alpha1.RecordingUIDLabel: string(s.uid)}
		obj.OwnerReferences = []metav1.OwnerReference{s.owner}
		if err := s.client.Create(ctx, obj); err != nil {
			s.result = nil
			s.log("warning: write node %q's result of CapabilityRecording %s/%s: %v", s.node, s.key.Namespace, s.key.Name, err)
			return
		}
		s.result = obj
		return
	}
	obj := s.result.DeepCopy()
	obj.Spec = spec
	if err := s.client.Update(ctx, obj); err != nil {
		s.log("warning: write node %q's result of CapabilityRecording %s/%s: %v", s.node, s.key.Namespace, s.key.Name, err)
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			s.refresh(ctx)
		}
		return
	}
	s.result = obj
}

// refresh reads the result again after a conflicting or missing write.
func (s *session) refresh(ctx context.Context) {
	var cur v1alpha1.CapabilityNodeResult
	err := s.client.Get(ctx, types.NamespacedName{Namespace: s.key.Namespace, Name: v1alpha1.NodeResultName(s.key.Name, s.node)}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		s.result = nil
	case err == nil:
		s.result = &cur
	}
}

// startSlack covers the whole seconds of a container's start time in its
// pod's status.
const startSlack = time.Second

// unseen leaves out of the containers' coverage the instances an earlier
// session already counted: those this session joined late that started
// before the earlier session's last write, which recorded them (from their
// first instruction, or as late itself). One that started after it is a new
// instance whose start fell in the gap.
func (s *session) unseen(containers []v1alpha1.Container) []v1alpha1.Container {
	if s.resumed.IsZero() {
		return containers
	}
	out := make([]v1alpha1.Container, len(containers))
	for i, c := range containers {
		out[i] = c
		if c.Coverage == nil {
			continue
		}
		cov := *c.Coverage
		cov.Late = nil
		for _, l := range c.Coverage.Late {
			if l.JoinedAfter != nil && s.started.Add(-time.Duration(*l.JoinedAfter)).Add(startSlack).Before(s.resumed) {
				cov.Instances--
				continue
			}
			cov.Late = append(cov.Late, l)
		}
		out[i].Coverage = &cov
	}
	return out
}

// kept are the containers the recording's filter keeps.
func (s *session) kept(containers []v1alpha1.Container) []v1alpha1.Container {
	if s.filter == nil {
		return containers
	}
	var out []v1alpha1.Container
	for _, c := range containers {
		if s.filter.Keeps(c.Name) {
			out = append(out, c)
		}
	}
	return out
}
