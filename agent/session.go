package agent

import (
	"context"
	"fmt"
	"reflect"
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

// countsFlushes is how many flushes a workload's result whose counts alone
// changed waits to be written: a minute at the default --flush.
const countsFlushes = 6

// writeTimeout bounds one request that writes a node's result.
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

	mu      sync.Mutex
	written map[string]*v1alpha1.CapabilityNodeResult // by name, as last written
	// countsEvery is how often a workload's result whose counts alone
	// changed is written (see countsErased).
	countsEvery time.Duration
}

// newSession prepares a session of rec, reading back what an earlier
// session of this node wrote: its containers are kept, and the time from
// its last write to now, when this agent recorded nothing, becomes a gap.
func (a *agent) newSession(ctx context.Context, rec *v1alpha1.CapabilityRecording) (*session, error) {
	s := &session{
		key: types.NamespacedName{Namespace: rec.Namespace, Name: rec.Name}, uid: rec.UID, id: newSessionID(), node: a.cfg.Node,
		owner:  metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "CapabilityRecording", Name: rec.Name, UID: rec.UID},
		filter: rec.Spec.Containers, client: a.client, stop: make(chan struct{}), since: time.Now(), started: time.Now(),
		written: map[string]*v1alpha1.CapabilityNodeResult{}, countsEvery: countsFlushes * a.cfg.Flush,
		log: func(format string, args ...any) { fmt.Fprintf(a.cfg.Log, "capprof: "+format+"\n", args...) },
	}
	mine, err := a.results(ctx, rec)
	if err != nil {
		return nil, err
	}
	for i := range mine {
		r := &mine[i]
		s.written[r.Name] = r
		if r.Spec.Workload != nil {
			s.base = append(s.base, r.Spec.Containers...)
			continue
		}
		s.gaps, s.since, s.resumed = r.Spec.Recorded.Gaps, r.Spec.Recorded.StartTime.Time, r.Spec.UpdateTime.Time
	}
	if last := s.resumed; !last.IsZero() && last.Before(time.Now()) {
		s.gaps = append(s.gaps, v1alpha1.Gap{Node: a.cfg.Node, From: v1alpha1.Time{Time: last.UTC()}, To: v1alpha1.Time{Time: time.Now().UTC().Truncate(time.Millisecond)}})
		s.log("CapabilityRecording %s/%s: going on from node %q's results of %s; nothing was recorded from then to now",
			rec.Namespace, rec.Name, a.cfg.Node, last.UTC().Format(time.RFC3339))
	}
	return s, nil
}

// results are this node's results of rec, as earlier sessions wrote them.
func (a *agent) results(ctx context.Context, rec *v1alpha1.CapabilityRecording) ([]v1alpha1.CapabilityNodeResult, error) {
	var list v1alpha1.CapabilityNodeResultList
	if err := a.client.List(ctx, &list, client.InNamespace(rec.Namespace), client.MatchingLabels{v1alpha1.RecordingUIDLabel: string(rec.UID)}); err != nil {
		return nil, fmt.Errorf("read node %q's results of CapabilityRecording %s/%s: %w", a.cfg.Node, rec.Namespace, rec.Name, err)
	}
	return slices.DeleteFunc(list.Items, func(r v1alpha1.CapabilityNodeResult) bool { return r.Spec.Node != a.cfg.Node }), nil
}

// close stops the session without a final write.
func (s *session) close() { s.closeOnce.Do(func() { close(s.stop) }) }

// write makes p, merged with what earlier sessions wrote, the node's
// results: its own, always (the time of its last write is where a gap after
// a crash begins), and one per workload, when it is due. Failures are
// logged, and one the API server did not take ends the pass: the next
// write carries everything again.
func (s *session) write(p *v1alpha1.Profile, final bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped() {
		return // the recording is gone
	}
	meta := p.Metadata
	meta.StartTime = v1alpha1.Time{Time: s.since.UTC().Truncate(time.Millisecond)}
	meta.Gaps = slices.Clone(s.gaps)
	now := v1alpha1.Time{Time: time.Now().UTC().Truncate(time.Millisecond)}
	byWorkload := map[v1alpha1.Owner][]v1alpha1.Container{}
	for _, c := range profile.MergeContainers(append(slices.Clone(s.base), s.unseen(s.kept(p.Containers))...)...) {
		if c.Owner != nil {
			byWorkload[*c.Owner] = append(byWorkload[*c.Owner], c)
		}
	}
	for w, containers := range byWorkload {
		spec := v1alpha1.CapabilityNodeResultSpec{Recording: s.key.Name, Node: s.node, Workload: &w, Session: s.id,
			Recorded: meta, UpdateTime: now, Containers: containers}
		if !s.due(s.written[v1alpha1.NodeResultName(s.key.Name, s.node, &w)], spec, final) {
			continue
		}
		if s.stopped() || !s.put(spec) {
			return
		}
	}
	s.put(v1alpha1.CapabilityNodeResultSpec{Recording: s.key.Name, Node: s.node, Session: s.id, Final: final,
		Recorded: meta, UpdateTime: now, Containers: []v1alpha1.Container{}})
}

// due reports whether a workload's result spec is to be written, prev
// being the one last written (nil for none): when it says something new at
// once; when only its counts changed, once countsEvery has passed since
// prev, and at the end.
func (s *session) due(prev *v1alpha1.CapabilityNodeResult, spec v1alpha1.CapabilityNodeResultSpec, final bool) bool {
	switch {
	case prev == nil:
		return true
	case sameContainers(prev.Spec, spec):
		return false
	case final || spec.UpdateTime.Sub(prev.Spec.UpdateTime.Time) >= s.countsEvery:
		return true
	}
	return !sameContainers(countsErased(prev.Spec), countsErased(spec))
}

// sameContainers reports whether a workload's result would say nothing
// new: the same containers, the same gaps and drops.
func sameContainers(a, b v1alpha1.CapabilityNodeResultSpec) bool {
	return reflect.DeepEqual(a.Containers, b.Containers) && reflect.DeepEqual(a.Recorded.Gaps, b.Recorded.Gaps) && a.Recorded.Drops == b.Recorded.Drops
}

// countsErased is a result with every count made 0 or 1: what it says but
// for how often. A workload's result that changed only there is written at
// most every countsEvery, not at every flush: a busy node's workloads change
// their counts at every flush, and writing 100 results of ~12 KiB every 10
// s cost the API server more CPU than the agent used (bench-cluster's mix).
func countsErased(spec v1alpha1.CapabilityNodeResultSpec) v1alpha1.CapabilityNodeResultSpec {
	seen := func(n int64) int64 { return min(n, 1) }
	out := *spec.DeepCopy()
	for i := range out.Containers {
		c := &out.Containers[i]
		for j := range c.Capabilities {
			cc := &c.Capabilities[j]
			cc.Count = seen(cc.Count)
			for k := range cc.Sources {
				src := &cc.Sources[k]
				src.Count, src.SyscallFailed, src.SyscallSucceeded = seen(src.Count), seen(src.SyscallFailed), seen(src.SyscallSucceeded)
			}
		}
		for j := range c.Execs {
			c.Execs[j].Count = seen(c.Execs[j].Count)
		}
		for j := range c.CredentialChanges {
			c.CredentialChanges[j].Count = seen(c.CredentialChanges[j].Count)
		}
	}
	d := &out.Recorded.Drops
	d.Events, d.UncountedChecks, d.UnfollowedCredentialCalls, d.UnfollowedDenials = seen(d.Events), seen(d.UncountedChecks), seen(d.UnfollowedCredentialCalls), seen(d.UnfollowedDenials)
	d.UntrackedCgroups, d.UndecodableEvents, d.ExecsNotKept, d.SkippedProbeRuns = seen(d.UntrackedCgroups), seen(d.UndecodableEvents), seen(d.ExecsNotKept), seen(d.SkippedProbeRuns)
	return out
}

// stopped reports whether the session was stopped (its recording is gone).
func (s *session) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// put creates or updates one result, within writeTimeout. It returns false
// when the API server did not take it (in time, or at all): the writes that
// would follow wait for the next flush rather than queue behind it.
func (s *session) put(spec v1alpha1.CapabilityNodeResultSpec) bool {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	name := v1alpha1.NodeResultName(s.key.Name, s.node, spec.Workload)
	obj := &v1alpha1.CapabilityNodeResult{Spec: spec}
	var err error
	if prev := s.written[name]; prev != nil {
		obj = prev.DeepCopy()
		obj.Spec = spec
		err = s.client.Update(ctx, obj)
	} else {
		obj.Namespace, obj.Name = s.key.Namespace, name
		obj.Labels = map[string]string{v1alpha1.RecordingUIDLabel: string(s.uid)}
		obj.OwnerReferences = []metav1.OwnerReference{s.owner}
		err = s.client.Create(ctx, obj)
	}
	if err != nil {
		s.log("warning: write node %q's result %s/%s: %v", s.node, s.key.Namespace, name, err)
		switch {
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err):
		case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) || apierrors.IsRequestEntityTooLargeError(err):
			return true // about this object: the others may go through
		default:
			// Not taken (a slow or throttling API server, or none): the
			// next flush tries again from what is known. Reading the
			// result again, or writing the others now, would only add
			// to the load.
			return false
		}
		// Written by an earlier session or recording meanwhile, or gone:
		// read again, so the next write knows.
		delete(s.written, name)
		var cur v1alpha1.CapabilityNodeResult
		if err := s.client.Get(ctx, types.NamespacedName{Namespace: s.key.Namespace, Name: name}, &cur); err == nil {
			if cur.Of(s.uid) {
				s.written[name] = &cur
			} else if err := s.client.Delete(ctx, &cur); err != nil && !apierrors.IsNotFound(err) { // an earlier recording's of the same name
				s.log("warning: replace node %q's result %s/%s of an earlier recording: %v", s.node, s.key.Namespace, name, err)
			}
		}
		return true
	}
	s.written[name] = obj
	return true
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
