package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels the kubelet puts on CRI sandboxes and containers
// (pkg/kubelet/types/labels.go), which capprof's CRI mode reads.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

type podState struct {
	sandboxID  string
	sandbox    *runtimeapi.PodSandboxConfig
	tokenDir   string // the service account's token, CA and namespace; "" for none
	attempts   map[string]uint32
	startDelay time.Duration
}

// PodOption changes how RunPod plays the kubelet.
type PodOption func(*podOptions)

type podOptions struct {
	node           string
	startDelay     time.Duration
	runtimeHandler string
	cgroupParent   string
}

// WithCgroupParent puts the pod's cgroups under parent instead of the
// kubelet's /kubepods/besteffort/pod<uid>: a layout capprof does not know.
func WithCgroupParent(parent string) PodOption {
	return func(o *podOptions) { o.cgroupParent = parent }
}

// OnNode binds the pod to another node name than Config.Node: the harness
// plays the kubelet of several nodes on this machine, whose pods share its
// kernel and runtime, and each node's capprof agent takes only its own.
func OnNode(name string) PodOption {
	return func(o *podOptions) { o.node = name }
}

// WithRuntimeHandler runs the pod with one of Config.Runtimes, as a pod's
// runtimeClassName would.
func WithRuntimeHandler(name string) PodOption {
	return func(o *podOptions) { o.runtimeHandler = name }
}

// WithStartDelay leaves each container created and not started for d, as
// a kubelet does while a postStart hook of the previous container runs, or
// as a runtime under load does.
func WithStartDelay(d time.Duration) PodOption {
	return func(o *podOptions) { o.startDelay = d }
}

// RunPod plays the kubelet for one pod: it creates the pod through the API,
// bound to the node; runs its sandbox under the cgroup parent of its QoS
// class (/kubepods/besteffort/pod<uid> for a pod without resources); runs each init container to completion
// (reported as running meanwhile), then starts the containers; and reports
// all of them, with their containerd:// ids, in the pod's status. It returns
// the updated pod.
func (c *Cluster) RunPod(ctx context.Context, pod *corev1.Pod, opts ...PodOption) (*corev1.Pod, error) {
	pod = pod.DeepCopy()
	pod.Spec.NodeName = c.cfg.Node
	var o podOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.node != "" {
		pod.Spec.NodeName = o.node
	}
	created, err := c.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return c.runCreated(ctx, created, opts...)
}

// runCreated plays the kubelet for a pod the API server has, bound to the
// node.
func (c *Cluster) runCreated(ctx context.Context, pod *corev1.Pod, opts ...PodOption) (*corev1.Pod, error) {
	var o podOptions
	for _, opt := range opts {
		opt(&o)
	}
	qos := qosClass(pod)
	parent := qosCgroupParent(qos, pod.UID)
	if o.cgroupParent != "" {
		parent = o.cgroupParent
	}
	if err := c.notePodCgroup(parent); err != nil {
		return nil, err
	}
	labels := map[string]string{labelPodName: pod.Name, labelPodNamespace: pod.Namespace, labelPodUID: string(pod.UID)}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	logDir := filepath.Join(c.cfg.Dir, "logs", string(pod.UID))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	sbConfig := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID)},
		Labels:       labels,
		LogDirectory: logDir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: parent,
			// Host network: a CNI plugin would be needed otherwise, and a
			// loopback-only CNI configuration fails on this kind of machine.
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: sandboxPID(pod)},
			},
		},
	}
	sb, err := c.CRI.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbConfig, RuntimeHandler: o.runtimeHandler})
	if err != nil {
		return nil, fmt.Errorf("run sandbox of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	tokenDir, err := c.projectToken(ctx, pod)
	if err != nil {
		return nil, err
	}
	st := &podState{sandboxID: sb.PodSandboxId, sandbox: sbConfig, attempts: map[string]uint32{}, startDelay: o.startDelay, tokenDir: tokenDir}
	c.podsMu.Lock()
	c.podStates[pod.UID] = st
	c.podsMu.Unlock()

	pod.Status.Phase = corev1.PodPending
	pod.Status.QOSClass = qos
	for i, ic := range pod.Spec.InitContainers {
		id, err := c.startContainer(ctx, pod, st, ic)
		if err != nil {
			return nil, err
		}
		// Reported while it runs, as the kubelet does.
		pod.Status.InitContainerStatuses = append(pod.Status.InitContainerStatuses, runningStatus(ic, id, 0))
		if pod, err = c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
		code, err := c.WaitExit(ctx, id)
		if err != nil {
			return nil, err
		}
		if code != 0 {
			return nil, fmt.Errorf("init container %s of %s/%s exited %d", ic.Name, pod.Namespace, pod.Name, code)
		}
		pod.Status.InitContainerStatuses[i].State = corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ContainerID: "containerd://" + id, Reason: "Completed"},
		}
	}
	pod.Status.Phase = corev1.PodRunning
	for _, ctr := range pod.Spec.Containers {
		id, err := c.startContainer(ctx, pod, st, ctr)
		if err != nil {
			return nil, err
		}
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, runningStatus(ctr, id, 0))
	}
	return c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
}

func runningStatus(ctr corev1.Container, id string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name: ctr.Name, Image: ctr.Image, ContainerID: "containerd://" + id, Ready: true, Started: new(true), RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}
}

// notePodCgroup records a pod cgroup for Cleanup before it exists.
func (c *Cluster) notePodCgroup(parent string) error {
	f, err := os.OpenFile(filepath.Join(c.cfg.Dir, podCgroupsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, parent)
	return err
}

func (c *Cluster) startContainer(ctx context.Context, pod *corev1.Pod, st *podState, ctr corev1.Container) (string, error) {
	attempt := st.attempts[ctr.Name]
	st.attempts[ctr.Name] = attempt + 1
	labels := map[string]string{labelPodName: pod.Name, labelPodNamespace: pod.Namespace, labelPodUID: string(pod.UID), labelContainerName: ctr.Name}
	mounts, err := c.containerMounts(pod, ctr, st.tokenDir)
	if err != nil {
		return "", err
	}
	env, err := c.containerEnv(pod, ctr)
	if err != nil {
		return "", err
	}
	created, err := c.CRI.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: st.sandboxID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: ctr.Name, Attempt: attempt},
			Image:    &runtimeapi.ImageSpec{Image: ctr.Image, UserSpecifiedImage: ctr.Image},
			Command:  expandAll(ctr.Command, env),
			Args:     expandAll(ctr.Args, env),
			Labels:   labels,
			LogPath:  fmt.Sprintf("%s_%d.log", ctr.Name, attempt),
			Envs:     env,
			Mounts:   mounts,
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: containerSecurity(pod, ctr), Resources: containerResources(ctr)},
		},
		SandboxConfig: st.sandbox,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s of %s/%s: %w", ctr.Name, pod.Namespace, pod.Name, err)
	}
	time.Sleep(st.startDelay)
	if _, err := c.CRI.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		return "", fmt.Errorf("start container %s of %s/%s: %w", ctr.Name, pod.Namespace, pod.Name, err)
	}
	return created.ContainerId, nil
}

// WaitExit waits up to a minute for a container to exit and returns its exit code.
func (c *Cluster) WaitExit(ctx context.Context, id string) (int32, error) {
	var code int32
	err := waitFor(ctx, "exit of container "+id, 60*time.Second, func() error {
		st, err := c.CRI.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			return err
		}
		if st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return fmt.Errorf("state %s", st.Status.State)
		}
		code = st.Status.ExitCode
		return nil
	})
	return code, err
}

// RestartContainer stops a pod's container and starts a new instance of it,
// as the kubelet does when a container exits under restartPolicy Always,
// and reports the new id and restart count in the pod's status.
func (c *Cluster) RestartContainer(ctx context.Context, pod *corev1.Pod, name string) (*corev1.Pod, error) {
	c.podsMu.Lock()
	st := c.podStates[pod.UID]
	c.podsMu.Unlock()
	pod, err := c.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	for i, s := range pod.Status.ContainerStatuses {
		if s.Name != name {
			continue
		}
		old := ContainerID(s)
		if _, err := c.CRI.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: old, Timeout: 1}); err != nil {
			return nil, fmt.Errorf("stop container %s: %w", old, err)
		}
		var spec corev1.Container
		for _, ctr := range pod.Spec.Containers {
			if ctr.Name == name {
				spec = ctr
			}
		}
		id, err := c.startContainer(ctx, pod, st, spec)
		if err != nil {
			return nil, err
		}
		status := runningStatus(spec, id, s.RestartCount+1)
		status.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ContainerID: s.ContainerID, ExitCode: 137, Reason: "Error"}}
		pod.Status.ContainerStatuses[i] = status
		return c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	}
	return nil, fmt.Errorf("pod %s/%s has no container %q", pod.Namespace, pod.Name, name)
}

// ContainerID is a status's container id without its containerd:// scheme.
func ContainerID(s corev1.ContainerStatus) string {
	const scheme = "containerd://"
	if len(s.ContainerID) > len(scheme) {
		return s.ContainerID[len(scheme):]
	}
	return ""
}

// Exec runs a command in a container through the CRI (ExecSync) and fails
// unless it exits 0.
func (c *Cluster) Exec(ctx context.Context, containerID string, cmd ...string) error {
	resp, err := c.CRI.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: cmd, Timeout: 30})
	if err != nil {
		return fmt.Errorf("exec %q in %s: %w", cmd, containerID, err)
	}
	if resp.ExitCode != 0 {
		return fmt.Errorf("exec %q in %s: exit %d: %s%s", cmd, containerID, resp.ExitCode, resp.Stdout, resp.Stderr)
	}
	return nil
}

// sandboxPID is the sandbox's PID namespace: the node's with hostPID.
func sandboxPID(pod *corev1.Pod) runtimeapi.NamespaceMode {
	if pod.Spec.HostPID {
		return runtimeapi.NamespaceMode_NODE
	}
	return runtimeapi.NamespaceMode_POD
}
