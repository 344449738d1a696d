// Package agent is capprof's node agent (capprof agent, a DaemonSet): it
// watches CapabilityRecordings, records the pods each selects on its own
// node from their containers' first instruction, and writes what it
// recorded as that node's CapabilityNodeResult, periodically, when a
// recorded container ends, and when the recording's duration is over.
//
// A restarted agent reads its node's results back and goes on from them:
// what it had written stays, and the time it was down (from its last write
// to its new start) is written as a gap, never hidden.
package agent

// The agent's least privilege, which controller-gen writes as the
// ClusterRole capprof-agent (make generate): it reads recordings and the
// pods of its node (with their ReplicaSets' and Jobs' owners), and writes
// node results; the Helm chart's admission policy
// (deploy/helm/capprof/templates/node-policy.yaml) holds it to its own
// node's.
//
// +kubebuilder:rbac:groups=capprof.dev,resources=capabilityrecordings,verbs=get;list;watch
// +kubebuilder:rbac:groups=capprof.dev,resources=capabilitynoderesults,verbs=get;list;create;update;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get

//go:generate go tool controller-gen rbac:roleName=capprof-agent paths=. output:rbac:dir=../deploy/helm/capprof/files/rbac/agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/recorder"
)

// Config is what capprof agent needs.
type Config struct {
	// Node is the node the agent runs on: it records that node's pods
	// and writes that node's results.
	Node string
	// Kube chooses the cluster (in a pod: its service account).
	Kube kube.ClusterConfig
	// Flush is how often the results are written while recording.
	Flush time.Duration
	Probe bpf.Backend
	// EventBufferMiB sizes each recording's kernel event buffer (0: 4 MiB).
	EventBufferMiB int
	// Version is capprof's, written into the results.
	Version string
	// Log receives progress and warnings.
	Log io.Writer
	// Events, when set, streams every recording's live events to one
	// output that log pipelines follow: Events.Output, a file rotated at
	// EventsMaxSizeMB MiB keeping EventsMaxBackups old ones (as Tetragon
	// rotates its export file), or "-" for Events.Stdout (the container's
	// log).
	Events                            *recorder.EventsConfig
	EventsMaxSizeMB, EventsMaxBackups int
}

// Run records until ctx ends; it then stops every recording without
// writing (a restart goes on from the last write).
func Run(ctx context.Context, cfg Config) error {
	if err := recorder.NeedRoot("agent"); err != nil {
		return err
	}
	if cfg.Node == "" {
		return errors.New("no node name: give --node or set $NODE_NAME (the downward API's spec.nodeName)")
	}
	// An agent that cannot record fails now, saying why, and its pod
	// shows it, rather than at the first recording.
	backend, err := recorder.CheckCanRecord(cfg.Probe, cfg.Log)
	if err != nil {
		return fmt.Errorf("the agent cannot record on node %q: %w", cfg.Node, err)
	}
	events, closeEvents, err := openEvents(cfg)
	if err != nil {
		return err
	}
	defer closeEvents()
	mgr, origin, err := kube.Manager(cfg.Kube, cfg.Log, manager.Options{
		Client: client.Options{Cache: &client.CacheOptions{
			// Only this node's results are read, each once: no cache of
			// every node's.
			DisableFor: []client.Object{&v1alpha1.CapabilityNodeResult{}},
		}},
	})
	if err != nil {
		return err
	}
	a := &agent{cfg: cfg, client: mgr.GetClient(), events: events, sessions: map[types.UID]*session{}}
	if err := ctrl.NewControllerManagedBy(mgr).Named("agent").For(&v1alpha1.CapabilityRecording{}).Complete(a); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Log, "capprof: agent of node %q (probe %s) watching CapabilityRecordings (%s)", cfg.Node, backend, origin)
	if events != nil {
		fmt.Fprintf(cfg.Log, "; live events to %s", events.Sink.Name())
	}
	fmt.Fprintln(cfg.Log)
	err = mgr.Start(ctx)
	a.stopAll()
	return err
}

// openEvents opens the events output that every recording's session
// writes to (nil without Events); the function returned closes it.
func openEvents(cfg Config) (*recorder.EventsConfig, func(), error) {
	if cfg.Events == nil {
		return nil, func() {}, nil
	}
	ev := *cfg.Events
	if ev.Output == "-" {
		ev.Sink = events.NewSink("stdout", ev.Stdout)
		return &ev, func() {}, nil
	}
	file, err := events.RotatedFile(ev.Output, cfg.EventsMaxSizeMB, cfg.EventsMaxBackups)
	if err != nil {
		return nil, nil, fmt.Errorf("--events %q: %w", ev.Output, err)
	}
	ev.Sink = events.NewSink(ev.Output, file)
	return &ev, func() {
		if err := file.Close(); err != nil {
			fmt.Fprintf(cfg.Log, "capprof: warning: events: closing %s: %v\n", ev.Output, err)
		}
	}, nil
}

// agent reconciles recordings with the sessions that record them.
type agent struct {
	cfg    Config
	client client.Client
	events *recorder.EventsConfig // every session's, with the shared sink; nil without --events

	mu       sync.Mutex
	sessions map[types.UID]*session
	wg       sync.WaitGroup
}

// Reconcile starts a recording's session, or stops it when the recording
// is gone (without writing) or its duration is over (writing the final
// result).
func (a *agent) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var rec v1alpha1.CapabilityRecording
	err := a.client.Get(ctx, req.NamespacedName, &rec)
	if apierrors.IsNotFound(err) || (err == nil && rec.DeletionTimestamp != nil) {
		a.stopNamed(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	a.mu.Lock()
	s := a.sessions[rec.UID]
	a.mu.Unlock()
	end, ends := rec.End()
	if ends && !time.Now().Before(end) {
		if s == nil {
			// Over before this agent saw it recording (down at its end):
			// what was written stands, the rest is a gap.
			return reconcile.Result{}, a.closeResult(ctx, &rec, end)
		}
		return reconcile.Result{}, nil // the session stops itself at end
	}
	if s == nil {
		if err := a.start(ctx, &rec); err != nil {
			return reconcile.Result{}, err
		}
	}
	// Looked at again while it runs: a session that failed starts anew.
	return reconcile.Result{RequeueAfter: resync}, nil
}

// resync is how often a running recording is looked at again.
const resync = 30 * time.Second

// start begins recording rec's pods on this node.
func (a *agent) start(ctx context.Context, rec *v1alpha1.CapabilityRecording) error {
	sel := kube.Selection{Namespace: rec.Namespace, Node: a.cfg.Node}
	if w := rec.Spec.Workload; w != nil {
		sel.Owner = &v1alpha1.Owner{Kind: w.Kind, Name: w.Name}
	} else {
		s, err := metav1.LabelSelectorAsSelector(rec.Spec.Selector)
		if err != nil {
			return reconcile.TerminalError(fmt.Errorf("recording %s/%s: spec.selector: %w", rec.Namespace, rec.Name, err))
		}
		sel.LabelSelector = s.String()
	}
	source, err := kube.NewAPISource(kube.APIConfig{Selection: sel, Kubeconfig: a.cfg.Kube.Kubeconfig, Context: a.cfg.Kube.Context, Warnings: a.cfg.Log})
	if err != nil {
		return err
	}
	s, err := a.newSession(ctx, rec)
	if err != nil {
		return err
	}
	startup := 10 * time.Second
	if rec.Spec.StartupWindow != nil {
		startup = rec.Spec.StartupWindow.Duration
	}
	var duration time.Duration
	if end, ends := rec.End(); ends {
		duration = time.Until(end)
	}
	a.mu.Lock()
	a.sessions[rec.UID] = s
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.run(s, recorder.PodsConfig{
			Source: source, Node: a.cfg.Node, Duration: duration, Startup: startup, Probe: a.cfg.Probe,
			EventBufferMiB: a.cfg.EventBufferMiB,
			Progress:       a.cfg.Log, Version: a.cfg.Version, Stop: s.stop,
			// The first write, once armed, tells the controller that this
			// node records from now on.
			Checkpoint: func(p *v1alpha1.Profile) { s.write(p, false) }, CheckpointPeriod: a.cfg.Flush,
			RequireClassification: true,
			Events:                a.events,
		})
	}()
	return nil
}

// run records a session until it ends and writes its final result, unless
// it was stopped.
func (a *agent) run(s *session, cfg recorder.PodsConfig) {
	fmt.Fprintf(a.cfg.Log, "capprof: recording %s for CapabilityRecording %s/%s\n", cfg.Source.Describe(), s.key.Namespace, s.key.Name)
	p, err := recorder.RunPods(cfg)
	// Forgotten once its last write is done: a reconcile that finds no
	// session after the end takes the agent for one that was down then.
	defer func() {
		a.mu.Lock()
		delete(a.sessions, s.uid)
		a.mu.Unlock()
	}()
	if s.stopped() {
		fmt.Fprintf(a.cfg.Log, "capprof: stopped recording for CapabilityRecording %s/%s\n", s.key.Namespace, s.key.Name)
		return
	}
	if err != nil {
		fmt.Fprintf(a.cfg.Log, "capprof: error: CapabilityRecording %s/%s: %v; starting again within %s\n", s.key.Namespace, s.key.Name, err, resync)
		return
	}
	s.write(p, true)
	fmt.Fprintf(a.cfg.Log, "capprof: CapabilityRecording %s/%s is over on node %q: final result written\n", s.key.Namespace, s.key.Name, a.cfg.Node)
}

// stopNamed stops the session of a recording that is gone.
func (a *agent) stopNamed(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.sessions {
		if s.key == key {
			s.close()
		}
	}
}

// stopAll stops every session and waits for them.
func (a *agent) stopAll() {
	a.mu.Lock()
	for _, s := range a.sessions {
		s.close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// closeResult makes this node's result of a recording that ended while the
// agent was down final: the time from its last write to the end is a gap.
func (a *agent) closeResult(ctx context.Context, rec *v1alpha1.CapabilityRecording, end time.Time) error {
	var result v1alpha1.CapabilityNodeResult
	err := a.client.Get(ctx, types.NamespacedName{Namespace: rec.Namespace, Name: v1alpha1.NodeResultName(rec.Name, a.cfg.Node, nil)}, &result)
	if apierrors.IsNotFound(err) {
		return nil // nothing was recorded here
	}
	if err != nil || result.Spec.Final || !result.Of(rec.UID) {
		return err
	}
	if from := result.Spec.UpdateTime.Time; from.Before(end) {
		result.Spec.Recorded.Gaps = append(result.Spec.Recorded.Gaps, v1alpha1.Gap{Node: a.cfg.Node,
			From: v1alpha1.Time{Time: from.UTC()}, To: v1alpha1.Time{Time: end.UTC()}})
	}
	result.Spec.Final = true
	result.Spec.UpdateTime = v1alpha1.Time{Time: time.Now().UTC().Truncate(time.Millisecond)}
	return a.client.Update(ctx, &result)
}

// newSessionID names an agent's session of a recording.
func newSessionID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
