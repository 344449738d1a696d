package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/recorder"
)

// CanaryLabel marks verify's canary pods; its value is the verification's
// id. No Service selects it: the canaries keep none of their template's
// labels.
const CanaryLabel = "capprof.dev/verify"

// PodsConfig is what `capprof verify --manifest M PROFILE -n NAMESPACE`
// needs.
type PodsConfig struct {
	Manifest *manifest.Manifest
	Profile  *v1alpha1.Profile
	// Source names Profile in messages.
	Source string
	// Namespace is where the canaries run; always given explicitly.
	Namespace string
	// Window is how long each canary runs while it is recorded.
	Window time.Duration
	// Node is this node: the canaries are bound to it, where capprof
	// records them.
	Node                string
	Kubeconfig, Context string
	Probe               bpf.Backend
	Startup             time.Duration
	// Signals stop verification: the canaries are deleted, nothing is saved.
	Signals  <-chan os.Signal
	Progress io.Writer
	Version  string
}

// canary is one pod verify runs: a workload's template with the advice, or
// with one capability taken from one container.
type canary struct {
	pod      *corev1.Pod
	advised  *manifest.Advised
	taken    *v1alpha1.Capability // nil: the advice as it is
	takenIn  string               // the container it was taken from
	describe string
}

// Pods verifies the advice for the manifest's profiled workloads with
// canary pods, and returns the profile with their verifications. With
// ErrAdviceFailed the profile is returned too.
func Pods(cfg PodsConfig) (*v1alpha1.Profile, error) {
	if err := recorder.NeedRoot("verify"); err != nil {
		return nil, err
	}
	observed := *cfg.Profile
	observed.Containers = slices.Clone(cfg.Profile.Containers)
	for i := range observed.Containers {
		observed.Containers[i].Verification = nil // verify what was observed
	}
	analysis := profile.Analyze([]profile.Input{{Source: cfg.Source, Profile: &observed}})
	workloads, err := cfg.Manifest.Advise(&analysis)
	if err != nil {
		return nil, err
	}
	if len(workloads) == 0 {
		return nil, fmt.Errorf("%s: no workload with a container profiled in %s: nothing to verify", cfg.Manifest.Path, cfg.Source)
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	canaries := planCanaries(workloads, cfg, id)
	fmt.Fprintf(cfg.Progress, "capprof: verify: creating %d canary pods in namespace %q on node %q, each recorded for %s and deleted afterwards (label %s=%s):\n",
		len(canaries), cfg.Namespace, cfg.Node, cfg.Window, CanaryLabel, id)
	for _, c := range canaries {
		fmt.Fprintf(cfg.Progress, "capprof: verify:   %s: %s\n", c.pod.Name, c.describe)
	}

	api, err := kube.NewAPISource(kube.APIConfig{Kubeconfig: cfg.Kubeconfig, Context: cfg.Context, Warnings: cfg.Progress,
		Selection: kube.Selection{LabelSelector: CanaryLabel + "=" + id, Namespace: cfg.Namespace, Node: cfg.Node}})
	if err != nil {
		return nil, err
	}
	recorded, statuses, err := runCanaries(cfg, api, canaries, id)
	if err != nil {
		return nil, err
	}
	p := cfg.Profile
	p.Containers = slices.Clone(p.Containers)
	failed := false
	for i := range workloads {
		if judgeWorkload(p, &workloads[i], canaries, recorded, statuses, cfg) {
			failed = true
		}
	}
	if failed {
		return p, ErrAdviceFailed
	}
	return p, nil
}

// newID is a short random id for one verification's canaries.
func newID() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make the canaries' id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// planCanaries makes, per workload, a canary with the advice and one per
// advised capability of each profiled container with it taken away.
func planCanaries(workloads []manifest.Advised, cfg PodsConfig, id string) []canary {
	var out []canary
	for i := range workloads {
		w := &workloads[i]
		add := func(taken *v1alpha1.Capability, container, describe string) {
			spec := w.Applied.PodSpec.DeepCopy()
			spec.NodeName = cfg.Node
			if taken != nil {
				withoutCapability(spec, container, *taken)
			}
			name := fmt.Sprintf("%s-verify-%s-%d", truncate(strings.ToLower(w.Workload.Name), 40), id, len(out)+1)
			annotations := map[string]string{}
			for k, v := range w.Workload.PodMeta.Annotations {
				annotations[k] = v
			}
			annotations["capprof.dev/canary-of"] = w.Workload.String()
			annotations["capprof.dev/canary"] = describe
			pod := &corev1.Pod{Spec: *spec}
			pod.Name, pod.Namespace, pod.Labels, pod.Annotations = name, cfg.Namespace, map[string]string{CanaryLabel: id}, annotations
			out = append(out, canary{pod: pod, advised: w, taken: taken, takenIn: container, describe: describe})
		}
		add(nil, "", w.Workload.String()+" with the advice")
		for _, m := range w.Containers {
			for _, c := range addedCapabilities(*m.Analysis).List() {
				add(&c, m.Container, fmt.Sprintf("%s, container %s without %s", w.Workload, m.Container, c.KubernetesName()))
			}
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.TrimRight(s[:n], "-.")
}

// withoutCapability takes c out of the named container's capabilities.add.
func withoutCapability(spec *corev1.PodSpec, container string, c v1alpha1.Capability) {
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			sc := list[i].SecurityContext
			if list[i].Name != container || sc == nil || sc.Capabilities == nil {
				continue
			}
			sc.Capabilities.Add = slices.DeleteFunc(sc.Capabilities.Add, func(name corev1.Capability) bool {
				parsed, err := v1alpha1.ParseCapability(string(name))
				return err == nil && parsed == c
			})
		}
	}
}

// runCanaries records the canaries' label on this node, creates them,
// waits the window and deletes them, always, also on a signal. It returns
// the recording and the canaries' last statuses, by name.
func runCanaries(cfg PodsConfig, api *kube.APISource, canaries []canary, id string) (*v1alpha1.Profile, map[string]corev1.Pod, error) {
	ctx := context.Background()
	armed, stop := make(chan struct{}), make(chan struct{})
	recordingSignals := make(chan os.Signal, 1)
	type result struct {
		p   *v1alpha1.Profile
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := recorder.RunPods(recorder.PodsConfig{Source: api, Node: cfg.Node, Startup: cfg.Startup, Probe: cfg.Probe,
			Signals: recordingSignals, Progress: cfg.Progress, Version: cfg.Version, Armed: func() { close(armed) }, Stop: stop})
		done <- result{p, err}
	}()
	select {
	case <-armed:
	case r := <-done:
		return nil, nil, r.err
	}
	deleted := false
	deleteAll := func() {
		if deleted {
			return
		}
		deleted = true
		if err := deleteCanaries(ctx, api, cfg.Namespace, id); err != nil {
			fmt.Fprintf(cfg.Progress, "capprof: warning: %v; delete them with kubectl delete pods -n %s -l %s=%s\n", err, cfg.Namespace, CanaryLabel, id)
		}
	}
	defer deleteAll()
	quit := func(sig os.Signal) error {
		close(stop)
		<-done
		deleteAll()
		s, _ := sig.(syscall.Signal)
		return recorder.QuitError{Signal: s, While: "verifying"}
	}
	for _, c := range canaries {
		if _, err := api.CreatePod(ctx, c.pod); err != nil {
			close(stop)
			<-done
			return nil, nil, fmt.Errorf("create canary %s: %w", c.pod.Name, err)
		}
	}
	select {
	case <-time.After(cfg.Window):
	case sig := <-cfg.Signals:
		return nil, nil, quit(sig)
	}
	pods, err := api.ListPods(ctx, cfg.Namespace, CanaryLabel+"="+id)
	close(stop)
	r := <-done
	if err != nil {
		return nil, nil, err
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	statuses := map[string]corev1.Pod{}
	for _, p := range pods {
		statuses[p.Name] = p
	}
	return r.p, statuses, nil
}

// deleteCanaries deletes every pod of this verification and waits until
// the API server has none left.
func deleteCanaries(ctx context.Context, api *kube.APISource, namespace, id string) error {
	selector := CanaryLabel + "=" + id
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		pods, err := api.ListPods(ctx, namespace, selector)
		if err != nil {
			return fmt.Errorf("canaries not deleted: %w", err)
		}
		if len(pods) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d canary pods still there after a minute", len(pods))
		}
		var errs []error
		for _, p := range pods {
			errs = append(errs, api.DeletePod(ctx, namespace, p.Name))
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("canaries not deleted: %w", err)
		}
	}
}

// judgeWorkload writes a verification into the profile for each profiled
// container of a workload, from its canaries; it reports whether the
// canary with the advice failed.
func judgeWorkload(p *v1alpha1.Profile, w *manifest.Advised, canaries []canary, recorded *v1alpha1.Profile, statuses map[string]corev1.Pod, cfg PodsConfig) bool {
	var advisedRun *v1alpha1.FailedRun
	for _, c := range canaries {
		if c.advised == w && c.taken == nil {
			advisedRun, _ = canaryFailure(c, recorded, statuses)
			report(cfg.Progress, c, advisedRun)
		}
	}
	for _, m := range w.Containers {
		i := slices.IndexFunc(p.Containers, func(pc v1alpha1.Container) bool { return pc.Key() == m.Analysis.Key() })
		if i < 0 {
			continue
		}
		advice := addedCapabilities(*m.Analysis)
		v := &v1alpha1.Verification{Canaries: fmt.Sprintf("canary pods of %s in namespace %s", w.Workload, cfg.Namespace),
			Window: v1alpha1.Duration(cfg.Window), Time: v1alpha1.Time{Time: time.Now().UTC().Truncate(time.Second)}, RunsPerSet: 1,
			Advised: v1alpha1.VerifiedSet{Capabilities: advice, NoNewPrivs: noNewPrivs(*m.Analysis), FailedRun: advisedRun}}
		if advisedRun == nil {
			v.Advised.Passed = 1
		} else {
			v.Advised.Failed = 1
		}
		for _, c := range canaries {
			if c.advised != w || c.taken == nil || c.takenIn != m.Container || advisedRun != nil {
				continue
			}
			failure, takenDenied := canaryFailure(c, recorded, statuses)
			report(cfg.Progress, c, failure)
			vc := v1alpha1.VerifiedCapability{Capability: *c.taken}
			switch {
			case failure == nil:
				vc.Verified, vc.Passed = v1alpha1.VerifiedRemovable, 1
			case takenDenied:
				vc.Verified, vc.Failed, vc.FailedRun = v1alpha1.VerifiedNeeded, 1, failure
			default:
				vc.Verified, vc.Failed, vc.FailedRun = v1alpha1.VerifiedUndecided, 1, failure
			}
			v.Capabilities = append(v.Capabilities, vc)
		}
		p.Containers[i].Verification = v
	}
	return advisedRun != nil
}

func report(w io.Writer, c canary, failure *v1alpha1.FailedRun) {
	if failure == nil {
		fmt.Fprintf(w, "capprof: verify: %s (%s): passed\n", c.pod.Name, c.describe)
		return
	}
	fmt.Fprintf(w, "capprof: verify: %s (%s): failed: %s\n", c.pod.Name, c.describe, failure)
}

// canaryFailure is how a canary failed, nil when it passed: a container
// restarted, ended (with an error, or at all unless the pod runs to
// completion), never started, or the pod is not Ready where readiness is
// reported; or a check was denied with its syscall failing. The denials of
// the capability taken away, in the container it was taken from, are part
// of the evidence whatever their outcome; the bool says whether there were
// any.
func canaryFailure(c canary, recorded *v1alpha1.Profile, statuses map[string]corev1.Pod) (*v1alpha1.FailedRun, bool) {
	var denials []v1alpha1.DeniedChecks
	takenDenied := false
	for _, ctr := range recorded.Containers {
		if ctr.Owner == nil || ctr.Owner.Kind != "Pod" || ctr.Owner.Name != c.pod.Name {
			continue
		}
		var taken *v1alpha1.Capability
		if ctr.Name == c.takenIn {
			taken = c.taken
		}
		d, denied := profile.RunDenials(ctr, taken)
		denials = append(denials, d...)
		takenDenied = takenDenied || denied
	}
	reason, code := podFailure(c.pod, statuses[c.pod.Name])
	if reason == "" && !profile.Failing(denials) {
		return nil, takenDenied
	}
	if reason == "" {
		reason = "a check was denied with its syscall failing"
	}
	return &v1alpha1.FailedRun{ExitStatus: code, Reason: reason, Denials: denials}, takenDenied
}

// podFailure says why a canary pod failed by its status, "" when it did
// not, with the failed container's last exit code.
func podFailure(planned *corev1.Pod, pod corev1.Pod) (string, int) {
	if pod.Name == "" {
		return "the pod was gone before the window ended", 0
	}
	completes := planned.Spec.RestartPolicy == corev1.RestartPolicyNever || planned.Spec.RestartPolicy == corev1.RestartPolicyOnFailure
	byName := map[string]corev1.ContainerStatus{}
	for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		byName[cs.Name] = cs
	}
	for _, ctr := range planned.Spec.Containers {
		cs, ok := byName[ctr.Name]
		switch {
		case !ok || cs.State.Waiting != nil && cs.RestartCount == 0 && cs.LastTerminationState.Terminated == nil:
			return fmt.Sprintf("container %s never started", ctr.Name), 0
		case cs.RestartCount > 0:
			code := 0
			if t := cs.LastTerminationState.Terminated; t != nil {
				code = int(t.ExitCode)
			}
			return fmt.Sprintf("container %s restarted %s, last exit %d", ctr.Name, times(int(cs.RestartCount)), code), code
		case cs.State.Terminated != nil && (cs.State.Terminated.ExitCode != 0 || !completes):
			code := int(cs.State.Terminated.ExitCode)
			return fmt.Sprintf("container %s exited %d", ctr.Name, code), code
		}
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionFalse && pod.Status.Phase == corev1.PodRunning {
			return "the pod was not Ready", 0
		}
	}
	return "", 0
}
