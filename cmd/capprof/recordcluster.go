//go:build linux && amd64

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/kube"
)

// clusterRecordFlags are record --cluster's own flags.
type clusterRecordFlags struct {
	enabled, wait       bool
	containers, exclude cli.StringSlice
}

// waitPoll is how often record --cluster --wait looks at the recording.
const waitPoll = time.Second

// checkCluster refuses what does not apply to a cluster recording.
func (f *recordFlags) checkCluster(c *cli.Context) error {
	for _, name := range []string{"output", "pods", "all-namespaces", "node", "runtime-endpoint", "events", "events-format", "events-filter",
		"events-rate-limit", "name", "stop-timeout", "probe", "redact", "default-redaction", "progress"} {
		if c.IsSet(name) {
			return fmt.Errorf("--%s does not apply to --cluster: the node agents record, and the controller writes CapabilityProfiles", name)
		}
	}
	if err := nonNegative(durationFlag{"duration", f.duration}, durationFlag{"startup", f.startup}); err != nil {
		return err
	}
	switch {
	case c.IsSet("selector") && c.NArg() > 0:
		return fmt.Errorf("both -l and a workload (%q) given: record one or the other", c.Args().First())
	case !c.IsSet("selector") && c.NArg() != 1:
		return errors.New("--cluster records a workload (KIND/NAME, like deploy/web) or the pods -l SELECTOR matches: give one")
	case f.cluster.wait && f.duration == 0:
		return errors.New("--wait needs --duration: a recording without one runs until it is deleted")
	case f.restart && c.NArg() != 1:
		return errors.New("--restart with --cluster restarts a workload: give it as KIND/NAME, not -l")
	case c.IsSet("containers") && c.IsSet("exclude-containers"):
		return errors.New("--containers and --exclude-containers exclude each other")
	}
	return nil
}

// recording is the CapabilityRecording the flags ask for.
func (f *recordFlags) recording(c *cli.Context) (*v1alpha1.CapabilityRecording, error) {
	rec := &v1alpha1.CapabilityRecording{}
	if c.IsSet("selector") {
		sel, err := metav1.ParseToLabelSelector(f.selector)
		if err != nil {
			return nil, fmt.Errorf("-l %q: %v", f.selector, err)
		}
		rec.Spec.Selector, rec.GenerateName = sel, "pods-"
	} else {
		w, err := kube.ParseWorkload(c.Args().First())
		if err != nil {
			return nil, err
		}
		rec.Spec.Workload, rec.GenerateName = &v1alpha1.WorkloadRef{Kind: w.Kind, Name: w.Name}, w.Name+"-"
		if len(rec.GenerateName) > 58 {
			rec.GenerateName = rec.GenerateName[:57] + "-"
		}
	}
	if f.duration > 0 {
		rec.Spec.Duration = &metav1.Duration{Duration: f.duration}
	}
	rec.Spec.StartupWindow = &metav1.Duration{Duration: f.startup}
	if c.IsSet("containers") {
		rec.Spec.Containers = &v1alpha1.ContainerFilter{Include: f.cluster.containers.Value()}
	} else if c.IsSet("exclude-containers") {
		rec.Spec.Containers = &v1alpha1.ContainerFilter{Exclude: f.cluster.exclude.Value()}
	}
	return rec, nil
}

// recordCluster creates the recording and, with --wait, waits for it.
func (f *recordFlags) recordCluster(c *cli.Context) error {
	rec, err := f.recording(c)
	if err != nil {
		return err
	}
	cl, ns, origin, err := kube.Client(kube.ClusterConfig{Kubeconfig: f.kube.kubeconfig, Context: f.kube.context, Namespace: f.namespace})
	if err != nil {
		return err
	}
	rec.Namespace = ns
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	if err := cl.Create(ctx, rec); err != nil {
		return clusterError("create", "capabilityrecordings", ns, origin, err)
	}
	fmt.Fprintf(c.App.Writer, "capabilityrecording.capprof.dev/%s\n", rec.Name)
	fmt.Fprintf(c.App.ErrWriter, "capprof: created CapabilityRecording %s/%s: kubectl get capabilityrecordings -n %s %s\n", ns, rec.Name, ns, rec.Name)
	if f.restart {
		if err := f.restartArmed(c, cl, rec); err != nil {
			return err
		}
	}
	if !f.cluster.wait {
		return nil
	}
	return waitComplete(c, cl, client.ObjectKeyFromObject(rec))
}

// armTimeout bounds the wait for the agents of the nodes that run the
// workload's pods before --restart restarts it anyway.
const armTimeout = time.Minute

// restartArmed restarts the recording's workload as kubectl rollout restart
// does, once the agent of every node that runs one of its pods has armed
// the recording (written its node's result), so that the new pods are
// recorded from their first instruction. A node whose agent does not arm it
// within armTimeout is named: its new pods may be joined late, which their
// coverage then says.
func (f *recordFlags) restartArmed(c *cli.Context, cl client.Client, rec *v1alpha1.CapabilityRecording) error {
	w := v1alpha1.Owner{Kind: rec.Spec.Workload.Kind, Name: rec.Spec.Workload.Name}
	api, err := kube.NewAPISource(kube.APIConfig{Selection: kube.Selection{Namespace: rec.Namespace, Owner: &w, AllNodes: true},
		Kubeconfig: f.kube.kubeconfig, Context: f.kube.context, Warnings: c.App.ErrWriter})
	if err != nil {
		return err
	}
	pods, err := api.Pods(c.Context)
	var noMatch *kube.NoMatchError
	if errors.As(err, &noMatch) {
		fmt.Fprintf(c.App.ErrWriter, "capprof: warning: --restart: %s has no pod: nothing to restart\n", w.Kind+" "+w.Name)
		return nil
	} else if err != nil {
		return err
	}
	targets, err := kube.RestartTargets(pods)
	if err != nil {
		return err
	}
	waiting := map[string]bool{}
	for _, p := range pods {
		if p.Node != "" {
			waiting[p.Node] = true
		}
	}
	fmt.Fprintf(c.App.ErrWriter, "capprof: waiting for the agents of node(s) %s to arm the recording\n", strings.Join(slices.Sorted(maps.Keys(waiting)), ", "))
	deadline := time.Now().Add(armTimeout)
	for len(waiting) > 0 && time.Now().Before(deadline) {
		for node := range waiting {
			var result v1alpha1.CapabilityNodeResult
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			err := cl.Get(ctx, client.ObjectKey{Namespace: rec.Namespace, Name: v1alpha1.NodeResultName(rec.Name, node, nil)}, &result)
			cancel()
			switch {
			case err == nil:
				delete(waiting, node)
			case !apierrors.IsNotFound(err):
				return clusterError("get", "capabilitynoderesults", rec.Namespace, "", err)
			}
		}
		if len(waiting) > 0 {
			time.Sleep(waitPoll)
		}
	}
	if len(waiting) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "capprof: warning: no agent armed the recording on node(s) %s within %s: is capprof's agent DaemonSet running there? Their new pods may be joined late\n",
			strings.Join(slices.Sorted(maps.Keys(waiting)), ", "), armTimeout)
	}
	for _, t := range targets {
		if err := api.Restart(c.Context, t, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(c.App.ErrWriter, "capprof: restarted %s %s in namespace %q, as kubectl rollout restart does: its new pods are recorded from their first instruction\n", t.Kind, t.Name, t.Namespace)
	}
	return nil
}

// waitComplete waits until the recording is Complete, says how it went and
// prints its profiles; Ctrl-C stops waiting, not the recording.
func waitComplete(c *cli.Context, cl client.Client, key client.ObjectKey) error {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	var rec v1alpha1.CapabilityRecording
	var phase v1alpha1.RecordingPhase
	for {
		ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
		err := cl.Get(ctx, key, &rec)
		cancel()
		if err != nil {
			return clusterError("get", "capabilityrecordings", key.Namespace, "", err)
		}
		if rec.Status.Phase != phase {
			phase = rec.Status.Phase
			fmt.Fprintf(c.App.ErrWriter, "capprof: %s/%s: %s (%d pod(s), %d from start, %d node(s))\n",
				key.Namespace, key.Name, phase, rec.Status.Pods.Observed, rec.Status.Pods.FromStart, rec.Status.NodeCount)
		}
		if meta.IsStatusConditionTrue(rec.Status.Conditions, v1alpha1.ConditionComplete) {
			break
		}
		select {
		case <-tick.C:
		case sig := <-signals:
			return waitStopped{signal: sig.(syscall.Signal), key: key}
		}
	}
	if d := meta.FindStatusCondition(rec.Status.Conditions, v1alpha1.ConditionDegraded); d != nil && d.Status == metav1.ConditionTrue {
		fmt.Fprintf(c.App.ErrWriter, "capprof: warning: %s\n", d.Message)
	}
	if len(rec.Status.Profiles) == 0 {
		return fmt.Errorf("CapabilityRecording %s/%s is complete but recorded no container: no pod matched while it ran", key.Namespace, key.Name)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "PROFILE\tREQUIRED\tPOD SECURITY\tCOVERAGE")
	for _, name := range rec.Status.Profiles {
		var p v1alpha1.CapabilityProfile
		ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
		err := cl.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: name}, &p)
		cancel()
		if err != nil {
			return clusterError("get", "capabilityprofiles", key.Namespace, "", err)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", escape.Name(p.Name), escape.Name(p.Status.Required), escape.Name(p.Status.PodSecurity), escape.Name(p.Status.Coverage))
	}
	return w.Flush()
}

// waitStopped is --wait stopped by a signal: capprof exits 128+N, and the
// recording goes on.
type waitStopped struct {
	signal syscall.Signal
	key    client.ObjectKey
}

func (e waitStopped) Error() string {
	return fmt.Sprintf("received %s: stopped waiting; the recording goes on: kubectl get capabilityrecordings -n %s %s", unix.SignalName(e.signal), e.key.Namespace, e.key.Name)
}

func (e waitStopped) ExitStatus() int { return 128 + int(e.signal) }

// clusterError says what failed and what to do.
func clusterError(verb, resource, ns, origin string, err error) error {
	where := fmt.Sprintf("in namespace %q", ns)
	if origin != "" {
		where += " (" + origin + ")"
	}
	switch {
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err) && verb == "create":
		return fmt.Errorf("%s %s %s: the cluster has no CapabilityRecording API: install capprof (kubectl apply --server-side -f deploy/capprof.yaml, or its Helm chart deploy/helm/capprof)", verb, resource, where)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s %s %s: forbidden: grant the user %q on %q", verb, resource, where, verb, resource+".capprof.dev")
	}
	return fmt.Errorf("%s %s %s: %w", verb, resource, where, err)
}
