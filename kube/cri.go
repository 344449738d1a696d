package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels the kubelet puts on every pod sandbox and container it creates
// through the CRI (pkg/kubelet/types/labels.go).
const (
	criPodName       = "io.kubernetes.pod.name"
	criPodNamespace  = "io.kubernetes.pod.namespace"
	criPodUID        = "io.kubernetes.pod.uid"
	criContainerName = "io.kubernetes.container.name"
)

// CRIPollInterval is how often a CRI source looks for new containers: the
// CRI's event stream (GetContainerEvents) is optional and containerd 1.6
// lacks it.
const CRIPollInterval = time.Second

// CRIRetryMax is the longest wait between two tries of a runtime that does
// not answer.
const CRIRetryMax = 30 * time.Second

// CRIConfig selects pods through the node's container runtime, without the
// Kubernetes API.
type CRIConfig struct {
	Selection
	// Endpoint is the runtime's socket: unix:///run/containerd/containerd.sock.
	Endpoint string
	// Warnings receives a line when the runtime stops answering while
	// pods are watched, and when it answers again.
	Warnings io.Writer
}

// CRISource finds pods through the CRI RuntimeService. The runtime does not
// record whether a container is an init or ephemeral one, so Kind is left
// empty, and owners are inferred from the pod's labels.
type CRISource struct {
	sel       Selection
	namespace string // "" with -A
	endpoint  string
	conn      *grpc.ClientConn
	client    runtimeapi.RuntimeServiceClient
	warnings  io.Writer
}

// NewCRISource connects to the runtime and checks that it answers.
func NewCRISource(ctx context.Context, cfg CRIConfig) (*CRISource, error) {
	if err := cfg.Selection.Validate(); err != nil {
		return nil, err
	}
	target := cfg.Endpoint
	if !strings.HasPrefix(target, "unix://") {
		return nil, fmt.Errorf("--runtime-endpoint %q: want a unix socket, as unix:///run/containerd/containerd.sock", cfg.Endpoint)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("--runtime-endpoint %q: %w", cfg.Endpoint, err)
	}
	warnings := cfg.Warnings
	if warnings == nil {
		warnings = io.Discard
	}
	s := &CRISource{sel: cfg.Selection, namespace: cfg.Namespace, endpoint: cfg.Endpoint, conn: conn, client: runtimeapi.NewRuntimeServiceClient(conn), warnings: warnings}
	if s.namespace == "" && !cfg.AllNamespaces {
		s.namespace = "default"
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := s.client.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("--runtime-endpoint %q: the container runtime does not answer: %s; is it running, and does it serve the CRI (runtime.v1)?", cfg.Endpoint, oneLine(err))
	}
	return s, nil
}

// Close closes the connection to the runtime.
func (s *CRISource) Close() error { return s.conn.Close() }

// Describe implements Source.
func (s *CRISource) Describe() string { return s.sel.describe(s.namespace) }

// ReportDelay implements Source: the runtime knows a pod from its
// sandbox, which the kubelet runs after it created the pod's cgroup, once
// the sandbox image is pulled.
func (s *CRISource) ReportDelay() time.Duration { return time.Minute }

// Pods implements Source.
func (s *CRISource) Pods(ctx context.Context) ([]Pod, error) {
	all, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	var pods, misses []Pod
	for _, p := range all {
		switch {
		case !s.sel.matches(p.pod.Name, p.labels):
		case s.namespace != "" && p.pod.Namespace != s.namespace:
			misses = append(misses, p.pod)
		default:
			pods = append(pods, p.pod)
		}
	}
	if len(pods) == 0 {
		e := &NoMatchError{Selected: s.Describe(), Origin: "runtime endpoint " + s.endpoint}
		for _, m := range misses {
			e.NearMisses = append(e.NearMisses, fmt.Sprintf("%s/%s (another namespace)", m.Namespace, m.Name))
		}
		return nil, e
	}
	return pods, nil
}

type criPod struct {
	pod    Pod
	labels map[string]string
}

// list returns every Kubernetes pod the runtime has, sandboxes of one pod
// (a recreated sandbox) merged, sorted by namespace and name.
func (s *CRISource) list(ctx context.Context) ([]criPod, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	sandboxes, err := s.client.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes through %s: %s", s.endpoint, oneLine(err))
	}
	containers, err := s.client.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containers through %s: %s", s.endpoint, oneLine(err))
	}
	byUID := map[string]*criPod{}
	podOfSandbox := map[string]*criPod{}
	for _, sb := range sandboxes.Items {
		l := sb.GetLabels()
		uid := l[criPodUID]
		if uid == "" || l[criPodName] == "" {
			continue // not made by a kubelet
		}
		p := byUID[uid]
		if p == nil {
			p = &criPod{pod: Pod{Namespace: l[criPodNamespace], Name: l[criPodName], UID: uid, Labels: podLabels(l),
				Owner: inferOwner(l[criPodName], l)}, labels: l}
			byUID[uid] = p
		}
		podOfSandbox[sb.GetId()] = p
	}
	for _, c := range containers.Containers {
		p := podOfSandbox[c.GetPodSandboxId()]
		if p == nil {
			continue
		}
		image := c.GetImage().GetUserSpecifiedImage()
		if image == "" {
			image = c.GetImage().GetImage()
		}
		// A created container has no process yet (containerd runs runc
		// create at StartContainer): it is reported again when it runs.
		running := c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
		container := Container{Name: c.GetLabels()[criContainerName], Image: image, ID: c.GetId(), Running: running}
		if running {
			// ListContainers has the creation time only; the start follows
			// it within milliseconds (runc create, then runc start).
			container.StartedAt = time.Unix(0, c.GetCreatedAt())
		}
		p.pod.Containers = append(p.pod.Containers, container)
	}
	out := make([]criPod, 0, len(byUID))
	for _, p := range byUID {
		slices.SortFunc(p.pod.Containers, func(a, b Container) int { return strings.Compare(a.ID, b.ID) })
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b criPod) int {
		return strings.Compare(a.pod.Namespace+"/"+a.pod.Name, b.pod.Namespace+"/"+b.pod.Name)
	})
	return out, nil
}

// Watch implements Source by polling: a pod is sent when its set of
// containers changed since the last poll.
func (s *CRISource) Watch(ctx context.Context, out chan<- Pod) error {
	seen := map[string]string{} // pod uid -> its container ids and states
	wait := CRIPollInterval
	var failingSince time.Time // zero while the runtime answers
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		listCtx, cancel := context.WithTimeout(ctx, CRIRetryMax) // a hung runtime is one that does not answer
		all, err := s.list(listCtx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// A runtime that restarts (containerd upgraded, crashed) is
			// asked again, less and less often, for as long as capprof
			// records: what runs meanwhile is recorded, as its cgroups are
			// targets already; only new containers wait to be named.
			if failingSince.IsZero() {
				failingSince = time.Now()
				fmt.Fprintf(s.warnings, "capprof: warning: the container runtime at %s does not answer (%v); asking again\n", s.endpoint, err)
			}
			wait = min(2*wait, CRIRetryMax)
			continue
		}
		if !failingSince.IsZero() {
			fmt.Fprintf(s.warnings, "capprof: the container runtime at %s answers again after %s\n", s.endpoint, time.Since(failingSince).Round(time.Second))
			failingSince = time.Time{}
		}
		wait = CRIPollInterval
		for _, p := range all {
			if !s.sel.matches(p.pod.Name, p.labels) || (s.namespace != "" && p.pod.Namespace != s.namespace) {
				continue
			}
			var sig strings.Builder
			for _, c := range p.pod.Containers {
				fmt.Fprintf(&sig, "%s:%t,", c.ID, c.Running)
			}
			if seen[p.pod.UID] == sig.String() {
				continue
			}
			seen[p.pod.UID] = sig.String()
			select {
			case out <- p.pod:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// podLabels are a sandbox's labels without the kubelet's own
// (io.kubernetes.pod.name and the like): the pod's labels.
func podLabels(sandbox map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range sandbox {
		if !strings.HasPrefix(k, "io.kubernetes.") {
			out[k] = v
		}
	}
	return out
}

// ContainerPID is the host pid of a running container's first process, from
// the runtime's verbose status (containerd and CRI-O put it in the "info"
// JSON), for finding its cgroup where the kubelet's layouts do not tell.
func (s *CRISource) ContainerPID(ctx context.Context, id string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := s.client.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, fmt.Errorf("container status of %s through %s: %s", id, s.endpoint, oneLine(err))
	}
	var info struct {
		PID int `json:"pid"`
	}
	if raw := st.GetInfo()["info"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return 0, fmt.Errorf("container status of %s through %s: its info: %w", id, s.endpoint, err)
		}
	}
	if info.PID <= 0 {
		return 0, fmt.Errorf("container status of %s through %s gives no pid", id, s.endpoint)
	}
	return info.PID, nil
}
