package cluster

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// monitorPeriod is how often a kubelet-run pod's containers are looked at.
const monitorPeriod = 200 * time.Millisecond

// maxRestartDelay bounds the back-off between restarts of a crashing
// container (the kubelet's CrashLoopBackOff, shortened for tests).
const maxRestartDelay = 5 * time.Second

// Kubelet plays the kubelet of node (Config.Node when "") for pods that
// others create through the API (capprof verify's canaries, the pods of
// capprof's DaemonSet): those bound to the node that match the label
// selector. It runs each as RunPod does, restarts its containers when they
// exit as its restartPolicy says (with a growing delay), reports exits and
// restart counts in its status, and removes its sandbox when the pod is
// deleted. It returns when ctx ends, or with the error of a watch that
// could not be started.
//
// A watch that ends, or fails (the API server's watch cache lagging behind
// the resource version asked for, which a quiet resource's cache does
// against etcd 3.4), is started again, as a kubelet's informer does.
func (c *Cluster) Kubelet(ctx context.Context, node, labelSelector string) error {
	if node == "" {
		node = c.cfg.Node
	}
	opts := metav1.ListOptions{LabelSelector: labelSelector, FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()}
	started := map[types.UID]bool{}
	for {
		w, err := c.Client.CoreV1().Pods("").Watch(ctx, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch pods for the kubelet: %w", err)
		}
		c.kubeletWatch(ctx, w, started)
		w.Stop()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// kubeletWatch runs the pods a watch adds that were not started yet, and
// removes those it deletes, until the watch ends or fails.
func (c *Cluster) kubeletWatch(ctx context.Context, w watch.Interface, started map[types.UID]bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			switch ev.Type {
			case watch.Added:
				if !started[pod.UID] {
					started[pod.UID] = true
					go c.runAndMonitor(ctx, pod)
				}
			case watch.Deleted:
				delete(started, pod.UID)
				c.removePod(pod.UID)
			}
		}
	}
}

// runAndMonitor runs a pod and then keeps its containers going and its
// status current until it is deleted or ctx ends.
func (c *Cluster) runAndMonitor(ctx context.Context, pod *corev1.Pod) {
	uid, namespace, name := pod.UID, pod.Namespace, pod.Name
	pod, err := c.runCreated(ctx, pod)
	// A pod deleted while it started (its deletion came before its state
	// was kept) is removed now, as the kubelet would.
	if _, getErr := c.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(getErr) {
		c.removePod(uid)
		return
	}
	if err != nil {
		// An init container failed or the runtime refused: the pod stays
		// pending, and says why, as the kubelet's status would.
		if cur, getErr := c.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{}); getErr == nil {
			cur.Status.Reason, cur.Status.Message = "HarnessRunFailed", err.Error()
			c.Client.CoreV1().Pods(namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		}
		return
	}
	delays := map[string]time.Duration{}
	next := map[string]time.Time{}
	tick := time.NewTicker(monitorPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c.podsMu.Lock()
		st := c.podStates[pod.UID]
		c.podsMu.Unlock()
		if st == nil {
			return // deleted
		}
		changed := false
		for i, cs := range pod.Status.ContainerStatuses {
			if cs.State.Running == nil || time.Now().Before(next[cs.Name]) {
				continue
			}
			status, err := c.CRI.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ContainerID(cs)})
			if err != nil || status.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
				continue
			}
			code := status.Status.ExitCode
			terminated := &corev1.ContainerStateTerminated{ContainerID: cs.ContainerID, ExitCode: code, Reason: "Completed"}
			if code != 0 {
				terminated.Reason = "Error"
			}
			policy := pod.Spec.RestartPolicy
			if policy == corev1.RestartPolicyNever || policy == corev1.RestartPolicyOnFailure && code == 0 {
				cs.State = corev1.ContainerState{Terminated: terminated}
				cs.Ready = false
				pod.Status.ContainerStatuses[i] = cs
				changed = true
				continue
			}
			delays[cs.Name] = min(max(2*delays[cs.Name], monitorPeriod), maxRestartDelay)
			next[cs.Name] = time.Now().Add(delays[cs.Name])
			var spec corev1.Container
			for _, ctr := range pod.Spec.Containers {
				if ctr.Name == cs.Name {
					spec = ctr
				}
			}
			id, err := c.startContainer(ctx, pod, st, spec)
			if err != nil {
				continue
			}
			restarted := runningStatus(spec, id, cs.RestartCount+1)
			restarted.LastTerminationState = corev1.ContainerState{Terminated: terminated}
			pod.Status.ContainerStatuses[i] = restarted
			changed = true
		}
		if !changed {
			continue
		}
		if phase := finished(pod); phase != "" {
			pod.Status.Phase = phase
		}
		updated, err := c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			c.removePod(uid)
			return
		}
		if err == nil {
			pod = updated
		}
	}
}

// finished is the phase of a pod whose containers have all terminated:
// Succeeded when all exited 0, else Failed; "" while any runs.
func finished(pod *corev1.Pod) corev1.PodPhase {
	phase := corev1.PodSucceeded
	for _, cs := range pod.Status.ContainerStatuses {
		switch t := cs.State.Terminated; {
		case t == nil:
			return ""
		case t.ExitCode != 0:
			phase = corev1.PodFailed
		}
	}
	return phase
}

// removePod stops and removes the sandbox of a deleted pod the kubelet ran.
func (c *Cluster) removePod(uid types.UID) {
	c.podsMu.Lock()
	st := c.podStates[uid]
	delete(c.podStates, uid)
	c.podsMu.Unlock()
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.CRI.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: st.sandboxID})
	c.CRI.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: st.sandboxID})
}

// Sandboxes counts the runtime's pod sandboxes of a namespace whose pods
// carry a label key: after such pods are deleted and removed, none is left.
func (c *Cluster) Sandboxes(ctx context.Context, namespace, labelKey string) (int, error) {
	list, err := c.CRI.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelPodNamespace: namespace}},
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sb := range list.Items {
		if _, ok := sb.Labels[labelKey]; ok {
			n++
		}
	}
	return n, nil
}

// DeletePod deletes a pod the harness ran and removes its sandbox, as the
// kubelet does once the API server has the deletion.
func (c *Cluster) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	err := c.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	c.removePod(pod.UID)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
