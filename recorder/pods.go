package recorder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/kube"
)

// PodsConfig is what `capprof record --pods/-l` needs.
type PodsConfig struct {
	Source kube.Source
	Node   string
	// Output is the profile file; JSON, or YAML for .yaml/.yml; "-" is
	// Stdout.
	Output string
	Stdout io.Writer
	// Duration stops the recording after this long (0: until a signal).
	Duration time.Duration
	// Startup is the startup window: a container's checks in the first
	// Startup after it started are in the startup phase, later ones steady.
	Startup time.Duration
	// Probe chooses the kernel hooks (bpf.Auto: the first that works).
	Probe bpf.Backend
	// EventBufferMiB sizes the kernel's event buffer (0: 4 MiB).
	EventBufferMiB int
	// Signals delivers SIGINT/SIGTERM, which stop the recording.
	Signals        <-chan os.Signal
	Progress       io.Writer
	ProgressPeriod time.Duration
	Version        string
	// Events, when set, streams live events (record --events).
	Events *EventsConfig
	// Restarter, when set, restarts the workloads of the pods selected at
	// the start once they are armed (record --restart), so that their new
	// pods are recorded from their first instruction.
	Restarter Restarter
	// Armed, when set, is called once the recording is armed and watching:
	// pods created from then on are recorded from their first instruction.
	Armed func()
	// Stop, when closed, stops the recording as a signal does, quietly.
	Stop <-chan struct{}
	// Checkpoint, when set, receives the profile recorded so far once
	// armed, every CheckpointPeriod, and as soon as a recorded container is
	// seen ended (capprof agent's partial results). It runs on a goroutine
	// of its own, one call at a time (requests made meanwhile fold into one
	// next call), and none runs once the recording's loop has ended. A
	// recording with Checkpoint that no pod matched
	// ends with a profile of no containers, not an error.
	Checkpoint       func(*v1alpha1.Profile)
	CheckpointPeriod time.Duration
	// RequireClassification refuses to record when the kernel's silent
	// checks could not be told from real use (no probe that sees their
	// audit options, no kernel symbols to class their call stacks): the
	// agent's results must not carry a spurious SYS_ADMIN. record warns
	// instead.
	RequireClassification bool
}

// Restarter restarts a workload as `kubectl rollout restart` does.
type Restarter interface {
	Restart(ctx context.Context, w kube.Workload, now time.Time) error
}

// sweepPeriod is how often unclaimed pod cgroups are looked at.
const sweepPeriod = time.Second

// RecordPods records the selected pods' containers until the duration ends
// or a signal arrives, then saves the profile. Each selected pod is armed
// in the kernel as soon as it is known, so every container it starts is
// recorded from its first instruction; containers already running join as
// they are found, and say how late. With nothing selected yet it waits for
// matching pods; pods that go away stay in the profile.
func RecordPods(cfg PodsConfig) error {
	if err := NeedRoot("record"); err != nil {
		return err
	}
	if err := checkOutputs(cfg.Output, cfg.Events); err != nil {
		return err
	}
	return runPods(cfg, func(rec *recording, meta v1alpha1.Metadata, what string) error {
		return rec.finish(meta, cfg.Output, cfg.Stdout, what)
	})
}

// RunPods records the selected pods as RecordPods does, without saving
// anything: it returns the profile. Output is not used; Events only with
// a Sink (capprof agent's events), since no file of its own is written.
func RunPods(cfg PodsConfig) (*v1alpha1.Profile, error) {
	if err := NeedRoot("verify"); err != nil {
		return nil, err
	}
	if cfg.Events != nil && cfg.Events.Sink == nil {
		return nil, errors.New("recording pods without saving: live events need a sink that outlives the recording")
	}
	var p *v1alpha1.Profile
	err := runPods(cfg, func(rec *recording, meta v1alpha1.Metadata, _ string) error {
		var err error
		p, _, err = rec.collect(meta)
		return err
	})
	return p, err
}

// runPods records the selected pods; finish ends the recording.
func runPods(cfg PodsConfig, finish func(rec *recording, meta v1alpha1.Metadata, what string) error) error {
	cgroupRoot, err := podCgroupRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods, err := cfg.Source.Pods(ctx)
	var noMatch *kube.NoMatchError
	if err != nil && !errors.As(err, &noMatch) {
		return err
	}
	var restarts []kube.Workload
	if cfg.Restarter != nil {
		if restarts, err = kube.RestartTargets(pods); err != nil {
			return err
		}
	}

	rec, err := startRecording(recordingOptions{progress: cfg.Progress, startup: cfg.Startup, backend: cfg.Probe,
		events: cfg.Events, node: cfg.Node, pods: true, requireClassification: cfg.RequireClassification, eventBufferMiB: cfg.EventBufferMiB})
	if err != nil {
		return err
	}
	defer rec.close()
	targets := &podTargets{rec: rec, root: cgroupRoot, progress: cfg.Progress, armed: map[string]bool{},
		podCgroups: map[string]bool{}, reported: map[string]bool{}, unfound: map[string]unfoundPod{}}
	targets.pids, _ = cfg.Source.(containerPIDs)
	// Every pod cgroup created from now on is recorded from its creation
	// until a selected pod claims it, or the source's report delay passes:
	// a pod reported after its containers were created (the API's watch
	// told after the kubelet's) is still recorded from its first
	// instruction, its container runtime's setup told apart.
	if err := rec.probe.ArmAllPods(); err != nil {
		return err
	}
	for _, p := range pods {
		// Before recording starts, a running container without a cgroup is
		// a setup problem (wrong node, cgroup v1): stop and say where we looked.
		if err := targets.add(p); err != nil {
			return err
		}
	}
	if err := rec.listProcesses(); err != nil {
		return err
	}
	if noMatch != nil && cfg.Checkpoint != nil {
		fmt.Fprintf(cfg.Progress, "capprof: no pod yet: %s; armed for those that come\n", cfg.Source.Describe())
	} else if noMatch != nil && cfg.Armed == nil { // a caller with Armed creates the pods itself
		fmt.Fprintf(cfg.Progress, "capprof: %s; waiting for matching pods (until --duration or Ctrl-C)\n", noMatch.Error())
		if cfg.Restarter != nil {
			fmt.Fprintln(cfg.Progress, "capprof: warning: --restart: no pod matches yet, so nothing is restarted")
		}
	}
	// Their pods are armed: the ones that replace them are recorded from
	// their first instruction.
	for _, w := range restarts {
		if err := cfg.Restarter.Restart(ctx, w, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(cfg.Progress, "capprof: restarted %s %s in namespace %q, as kubectl rollout restart does: its new pods are recorded from their first instruction\n", w.Kind, w.Name, w.Namespace)
	}
	fmt.Fprintf(cfg.Progress, "capprof: recording %s: %d container(s) in %d pod(s) so far\n",
		cfg.Source.Describe(), targets.recorded, len(pods))

	updates := make(chan kube.Pod)
	watchDone := make(chan error, 1)
	go func() { watchDone <- cfg.Source.Watch(ctx, updates) }()

	if cfg.Armed != nil {
		cfg.Armed()
	}
	deadline, progress, stopTicker := recordingClock(cfg.Duration, cfg.ProgressPeriod)
	defer stopTicker()
	sweep := time.NewTicker(sweepPeriod)
	defer sweep.Stop()
	var checkpointDue <-chan time.Time
	if cfg.Checkpoint != nil {
		ticker := time.NewTicker(cfg.CheckpointPeriod)
		defer ticker.Stop()
		checkpointDue = ticker.C
	}
	meta := func() v1alpha1.Metadata {
		return v1alpha1.Metadata{Node: cfg.Node, CapprofVersion: cfg.Version, Selector: cfg.Source.Describe()}
	}
	var writer *checkpoints
	checkpoint := func() { writer.request() }
	if cfg.Checkpoint != nil {
		writer = startCheckpoints(func() {
			p, err := rec.snapshot(meta(), time.Now())
			if err != nil {
				fmt.Fprintf(cfg.Progress, "capprof: warning: read what was recorded so far: %v\n", err)
				return
			}
			cfg.Checkpoint(p)
		})
		checkpoint()
	}
	ended := map[string]bool{}
wait:
	for {
		select {
		case <-checkpointDue:
			checkpoint()
		case p := <-updates:
			if cfg.Checkpoint != nil && targets.ended(p, ended) {
				checkpoint()
			}
			if err := targets.add(p); err != nil {
				// The container may have ended between the status and the lookup.
				fmt.Fprintf(cfg.Progress, "capprof: warning: %v\n", err)
			}
			if err := rec.listProcesses(); err != nil {
				fmt.Fprintf(cfg.Progress, "capprof: warning: %v; live events name the processes already running in new containers by pid only\n", err)
			}
		case <-sweep.C:
			targets.dropUnclaimed(time.Now().Add(-cfg.Source.ReportDelay()))
			targets.retry()
		case err := <-watchDone:
			watchDone = nil
			if err != nil {
				fmt.Fprintf(cfg.Progress, "capprof: warning: watching pods stopped: %v; containers that start from now on are not recorded\n", err)
			}
		case <-deadline:
			fmt.Fprintf(cfg.Progress, "capprof: duration %s reached\n", cfg.Duration)
			break wait
		case sig := <-cfg.Signals:
			fmt.Fprintf(cfg.Progress, "capprof: received %s: stopping\n", unix.SignalName(sig.(syscall.Signal)))
			break wait
		case <-cfg.Stop:
			break wait
		case <-progress:
			fmt.Fprintf(cfg.Progress, "capprof: %s elapsed, %d container(s), %s\n",
				time.Since(rec.start).Round(time.Second), targets.recorded, rec.col.summary())
		}
	}
	if writer != nil {
		writer.stop() // before the recording stops: a snapshot reads it
	}
	cancel()
	return rec.finishUnlessSignalled(cfg.Signals, func() error {
		if watchDone != nil {
			<-watchDone
		}
		if len(targets.armed) == 0 && cfg.Checkpoint == nil { // an agent's node may have none of them
			return fmt.Errorf("no pod matched during the recording: %s; nothing recorded", cfg.Source.Describe())
		}
		_, missed := rec.names.recorded()
		for _, t := range missed {
			fmt.Fprintf(cfg.Progress, "capprof: warning: container %s of pod %s/%s (%s) ended before capprof saw it: not recorded\n",
				t.identity.Name, t.identity.Namespace, t.podName, t.containerID)
		}
		return finish(rec, meta(), fmt.Sprintf("%d container(s)", targets.recorded))
	})
}

// containerPIDs is a source that knows the pid of a running container (the
// CRI), through which its cgroup is found in layouts nothing else explains.
type containerPIDs interface {
	ContainerPID(ctx context.Context, containerID string) (int, error)
}

// podTargets arms the selected pods and finds their containers' cgroups.
type podTargets struct {
	rec      *recording
	root     string
	progress io.Writer
	pids     containerPIDs // nil when the source does not know them
	// armed are the uids of the selected pods.
	armed map[string]bool
	// podCgroups are the pods (by uid) whose own cgroup is a target.
	podCgroups map[string]bool
	// reported are the container ids whose recording was reported.
	reported map[string]bool
	// unfound are the pods with a running container whose cgroup was not
	// found, by uid, with when it was first missed: looked for again every
	// sweepPeriod for retryFor (a source may not report the pod again).
	unfound  map[string]unfoundPod
	recorded int
}

type unfoundPod struct {
	pod   kube.Pod
	since time.Time
}

// retryFor bounds how long a container's cgroup is looked for again.
const retryFor = time.Minute

// retry looks again for the cgroups of running containers not found yet;
// the failure was said when it first happened.
func (t *podTargets) retry() {
	for uid, u := range t.unfound {
		if time.Since(u.since) > retryFor {
			delete(t.unfound, uid)
			continue
		}
		t.add(u.pod)
	}
}

// add arms the pod, makes its cgroup and what already runs in it targets,
// and names its containers. It returns the first cgroup lookup error of a
// running container after trying all of them.
func (t *podTargets) add(p kube.Pod) error {
	if !t.armed[p.UID] {
		// Armed before its cgroup is looked for: one created in between is
		// a target either way.
		if err := t.rec.probe.ArmPod(p.UID); err != nil {
			return err
		}
		t.armed[p.UID] = true
	}
	if !t.podCgroups[p.UID] {
		if err := t.addPodCgroup(p); err != nil {
			return err
		}
	}
	var firstErr error
	missed, wasMissed := t.unfound[p.UID]
	delete(t.unfound, p.UID)
	for _, c := range p.Containers {
		target := containerTarget(p, c)
		t.rec.names.addContainer(target)
		if t.reported[c.ID] {
			continue
		}
		id, node, found := t.rec.names.cgroupOf(c.ID)
		if !found && c.Running {
			// Made a target at its creation with its event not read yet,
			// or already running, or in a layout where the pod's cgroup was
			// not found: look for it.
			var err error
			id, node, err = t.addContainerCgroup(p, c)
			switch {
			case err == nil:
				found = true
			case t.podCgroups[p.UID]:
				// Below a pod cgroup that is a target, so it has ended
				// since its status; it is named at the end if the kernel
				// side recorded it, else reported as missed.
			default:
				since := time.Now()
				if wasMissed {
					since = missed.since
				}
				t.unfound[p.UID] = unfoundPod{pod: p, since: since}
				if firstErr == nil && !wasMissed {
					firstErr = err
				}
			}
		}
		if !found {
			continue // not running yet, or ended: its cgroup is named if the kernel side reports it
		}
		t.reported[c.ID] = true
		t.recorded++
		how := "from its first instruction"
		if !node.created {
			how = "already running: its start was not recorded"
			if !c.StartedAt.IsZero() {
				how = fmt.Sprintf("joined %s after its start, which was not recorded", node.added.Sub(c.StartedAt).Round(time.Second))
			}
		}
		fmt.Fprintf(t.progress, "capprof: recording container %s of pod %s/%s (%s %s, cgroup %d %s) %s\n",
			c.Name, p.Namespace, p.Name, p.Owner.Kind, p.Owner.Name, id, node.name, how)
	}
	return firstErr
}

// ended reports whether the pod shows a recorded container ended that
// was not seen ended before; it notes those in seen.
func (t *podTargets) ended(p kube.Pod, seen map[string]bool) bool {
	found := false
	for _, c := range p.Containers {
		if !c.Running && t.reported[c.ID] && !seen[c.ID] {
			seen[c.ID], found = true, true
		}
	}
	return found
}

// containerTarget names a container instance.
func containerTarget(p kube.Pod, c kube.Container) *namedTarget {
	owner := p.Owner
	identity := v1alpha1.Identity{Name: c.Name, Namespace: p.Namespace, Owner: &owner, Kind: c.Kind, Pods: []string{p.Name}}
	pod := &events.Pod{Namespace: p.Namespace, Name: p.Name, PodLabels: p.Labels,
		Container: &events.Container{ID: c.ID, Name: c.Name}, Workload: p.Owner.Name, WorkloadKind: p.Owner.Kind}
	if c.Image != "" {
		identity.Images = []string{c.Image}
		pod.Container.Image = &events.Image{Name: c.Image}
	}
	return &namedTarget{identity: identity, pod: pod, containerID: c.ID, podName: p.Name, started: c.StartedAt}
}

// addPodCgroup makes the pod's cgroup, when it exists, and every cgroup
// below it targets: new containers are then recorded from their creation,
// and those already running from now on.
func (t *podTargets) addPodCgroup(p kube.Pod) error {
	path, err := podCgroup(t.root, p)
	if err != nil || path == "" {
		return err // not created yet: the kernel side makes it a target when it is
	}
	started := map[string]time.Time{}
	for _, c := range p.Containers {
		started[c.ID] = c.StartedAt
	}
	now := time.Now()
	err = filepath.WalkDir(path, func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed while walking
		}
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil {
			return nil
		}
		var parent uint64
		if dir != path {
			var pst unix.Stat_t
			if unix.Stat(filepath.Dir(dir), &pst) == nil {
				parent = pst.Ino
			}
		}
		added, err := t.rec.probe.AddTarget(st.Ino, bpf.Target{Runtime: true, Started: started[containerIDIn(d.Name())]})
		if err != nil {
			return err
		}
		if added { // else the kernel side made it a target at its creation
			t.rec.names.noteCgroup(st.Ino, cgroupNode{parent: parent, name: d.Name(), added: now})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record the cgroups of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	t.podCgroups[p.UID] = true
	return nil
}

// addContainerCgroup finds a running container's cgroup where the pod's
// could not be found (an unknown layout) and makes it a target.
func (t *podTargets) addContainerCgroup(p kube.Pod, c kube.Container) (uint64, cgroupNode, error) {
	path, id, err := containerCgroup(t.root, p, c)
	if err != nil && t.pids != nil {
		var perr error
		if path, id, perr = t.cgroupOfProcess(c.ID); perr != nil {
			return 0, cgroupNode{}, fmt.Errorf("%w; nor through its process: %v", err, perr)
		}
	} else if err != nil {
		return 0, cgroupNode{}, err
	}
	added, err := t.rec.probe.AddTarget(id, bpf.Target{Runtime: true, Started: c.StartedAt})
	if err != nil {
		return 0, cgroupNode{}, err
	}
	// Named after the container, which a directory found through its
	// process may not be (crun's "container" sub-cgroup).
	name := filepath.Base(path)
	if containerIDIn(name) != c.ID {
		name = c.ID
	}
	node := cgroupNode{name: name, added: time.Now()}
	if !added {
		// The kernel side made it a target at its creation; its event is
		// on the way.
		node = cgroupNode{name: name, created: true}
	}
	t.rec.names.noteCgroup(id, node)
	return id, node, nil
}

// dropUnclaimed stops recording the pod cgroups the kernel side made
// targets (every new pod's, when pods are reported late) that no selected
// pod claimed before cutoff, with everything below them.
func (t *podTargets) dropUnclaimed(cutoff time.Time) {
	for _, id := range t.rec.names.unclaimedPods(t.armed, cutoff) {
		for _, dropped := range t.rec.names.forget(id) {
			if err := t.rec.probe.RemoveTarget(dropped); err != nil {
				fmt.Fprintf(t.progress, "capprof: warning: %v\n", err)
			}
		}
	}
}

// cgroupOfProcess finds a running container's cgroup from its process: its
// pid from the runtime, then the cgroup v2 line of /proc/PID/cgroup.
func (t *podTargets) cgroupOfProcess(containerID string) (string, uint64, error) {
	pid, err := t.pids.ContainerPID(context.Background(), containerID)
	if err != nil {
		return "", 0, err
	}
	rel, err := processCgroup(pid)
	if err != nil {
		return "", 0, err
	}
	path := filepath.Join(t.root, rel)
	id, err := cgroupID(path)
	if err != nil {
		return "", 0, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	return path, id, nil
}
