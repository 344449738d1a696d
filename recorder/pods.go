package recorder

import (
	"context"
	"errors"
	"fmt"
	"github.com/capprof/capprof/bpf"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/profile"
)

// PodsConfig is what `capprof record --pods/-l` needs.
type PodsConfig struct {
	Source kube.Source
	Node   string
	// Output is the profile file; JSON, or YAML for .yaml/.yml.
	Output string
	// Duration stops the recording after this long (0: until a signal).
	Duration time.Duration
	// Startup is the startup window: a container's checks in the first
	// Startup after it started are in the startup phase, later ones steady.
	Startup time.Duration
	// Probe chooses the kernel hooks (bpf.Auto: the first that works).
	Probe bpf.Backend
	// Signals delivers SIGINT/SIGTERM, which stop the recording.
	Signals        <-chan os.Signal
	Progress       io.Writer
	ProgressPeriod time.Duration
	Version        string
	// Events, when set, streams live events (record --events).
	Events *EventsConfig
}

// RecordPods records the selected pods' containers until the duration ends
// or a signal arrives, then saves the profile. Containers that start or
// restart and pods that come to match join the recording as they appear;
// pods that go away stay in the profile.
func RecordPods(cfg PodsConfig) error {
	if os.Geteuid() != 0 {
		return errors.New("record needs root: loading eBPF programs takes CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; run it with sudo")
	}
	if err := checkOutputs(cfg.Output, cfg.Events); err != nil {
		return err
	}
	cgroupRoot, err := cgroup2Mount()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods, err := cfg.Source.Pods(ctx)
	if err != nil {
		return err
	}

	rec, err := startRecording(recordingOptions{progress: cfg.Progress, startup: cfg.Startup, backend: cfg.Probe,
		events: cfg.Events, node: cfg.Node, pods: true})
	if err != nil {
		return err
	}
	defer rec.close()
	targets := &podTargets{rec: rec, root: cgroupRoot, progress: cfg.Progress, seen: map[string]bool{}}
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
	fmt.Fprintf(cfg.Progress, "capprof: recording %s: %d container(s) in %d pod(s) so far\n",
		cfg.Source.Describe(), targets.recorded, len(pods))

	updates := make(chan kube.Pod)
	watchDone := make(chan error, 1)
	go func() { watchDone <- cfg.Source.Watch(ctx, updates) }()

	deadline, progress, stopTicker := recordingClock(cfg.Duration, cfg.ProgressPeriod)
	defer stopTicker()
wait:
	for {
		select {
		case p := <-updates:
			if err := targets.add(p); err != nil {
				// The container may have ended between the status and the lookup.
				fmt.Fprintf(cfg.Progress, "capprof: warning: %v\n", err)
			}
			if err := rec.listProcesses(); err != nil {
				fmt.Fprintf(cfg.Progress, "capprof: warning: %v; live events name the processes already running in new containers by pid only\n", err)
			}
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
		case <-progress:
			fmt.Fprintf(cfg.Progress, "capprof: %s elapsed, %d container(s), %s\n",
				time.Since(rec.start).Round(time.Second), targets.recorded, rec.col.summary())
		}
	}
	cancel()
	if watchDone != nil {
		<-watchDone
	}
	meta := profile.Metadata{Node: cfg.Node, CapprofVersion: cfg.Version, Selector: cfg.Source.Describe()}
	return rec.finish(meta, cfg.Output, fmt.Sprintf("%d container(s)", targets.recorded))
}

// podTargets adds the running containers of pods to a recording, each
// container instance (id) once.
type podTargets struct {
	rec      *recording
	root     string
	progress io.Writer
	seen     map[string]bool // container ids already targeted, or reported as missed
	recorded int
}

// add targets the pod's running containers not targeted yet. It returns the
// first cgroup lookup error after trying all of them.
func (t *podTargets) add(p kube.Pod) error {
	var firstErr error
	for _, c := range p.Containers {
		if t.seen[c.ID] {
			continue
		}
		if !c.Running {
			// Said once: it ran and ended between two looks (a quick init
			// container), or before the recording started.
			t.seen[c.ID] = true
			fmt.Fprintf(t.progress, "capprof: warning: container %s of pod %s/%s (%s) ended before capprof saw it running: not recorded\n",
				c.Name, p.Namespace, p.Name, c.ID)
			continue
		}
		path, id, err := containerCgroup(t.root, p, c)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		owner := p.Owner
		identity := profile.Identity{Name: c.Name, Namespace: p.Namespace, Owner: &owner, Kind: c.Kind,
			Pods: []string{p.Name}}
		if c.Image != "" {
			identity.Images = []string{c.Image}
		}
		pod := &events.Pod{Namespace: p.Namespace, Name: p.Name, PodLabels: p.Labels,
			Container: &events.Container{ID: c.ID, Name: c.Name}, Workload: p.Owner.Name, WorkloadKind: p.Owner.Kind}
		if c.Image != "" {
			pod.Container.Image = &events.Image{Name: c.Image}
		}
		if err := t.rec.addTarget(id, identity, c.StartedAt, pod); err != nil {
			return err
		}
		t.seen[c.ID] = true
		t.recorded++
		fmt.Fprintf(t.progress, "capprof: recording container %s of pod %s/%s (%s %s, cgroup %s)\n",
			c.Name, p.Namespace, p.Name, p.Owner.Kind, p.Owner.Name, path)
	}
	return firstErr
}
