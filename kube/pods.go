// Package kube finds the pods capprof records on this node and their
// containers: through the Kubernetes API (client-go) or, without API access,
// through the node's container runtime (CRI). It knows nothing of eBPF or
// cgroups; the recorder maps the containers it returns to their cgroups.
package kube

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/capprof/capprof/api/v1alpha1"
)

// Pod is a selected pod on this node and the containers it has run.
type Pod struct {
	Namespace, Name, UID string
	// Node is the node the pod is bound to.
	Node string
	// QOSClass is the pod's QoS class (BestEffort, Burstable, Guaranteed),
	// which names its cgroup; empty when the source does not know it.
	QOSClass string
	// Labels are the pod's labels (CRI: its sandbox's, which hold the pod's
	// labels and the kubelet's io.kubernetes.* ones).
	Labels     map[string]string
	Owner      v1alpha1.Owner
	Containers []Container
}

// Container is one container instance of a pod: a restart is a new instance
// with a new ID.
type Container struct {
	Name  string
	Kind  v1alpha1.ContainerKind
	Image string
	// ID is the runtime's container id, without the "containerd://" scheme.
	ID string
	// Running: the container's process runs now (not created and waiting
	// to start, not exited), so it has a cgroup.
	Running bool
	// StartedAt is when its program started; zero when it has not yet (a
	// created container) or the source does not say.
	StartedAt time.Time
}

// Source lists and watches the selected pods.
type Source interface {
	// Pods returns the selected pods now. When none matches it returns a
	// *NoMatchError listing the near misses.
	Pods(ctx context.Context) ([]Pod, error)
	// Watch sends every selected pod whenever it changes (new containers,
	// restarts, new matching pods) until ctx is done. It returns nil then,
	// or the error that stopped it.
	Watch(ctx context.Context, pods chan<- Pod) error
	// Describe says what is selected, for progress lines and the profile.
	Describe() string
	// ReportDelay bounds how long after the kubelet creates a pod's
	// cgroup the source may first report the pod, so that every new pod
	// cgroup is recorded from its creation at least that long, waiting
	// for its pod to be reported and selected.
	ReportDelay() time.Duration
}

// Selection is what the record flags select.
type Selection struct {
	// Names are pod names (--pods); empty means any name.
	Names []string
	// Namespace is -n; empty means the kubeconfig context's namespace, or
	// "default".
	Namespace     string
	AllNamespaces bool
	// LabelSelector is -l, in kubectl's syntax.
	LabelSelector string
	// Owner, when set, keeps the pods of that workload (a Deployment, not
	// its ReplicaSet): a cluster recording of a workload.
	Owner *v1alpha1.Owner
	// Node is the node whose pods are recorded.
	Node string
	// AllNodes selects the pods on every node instead (record --cluster
	// --restart, which waits for their nodes' agents).
	AllNodes bool
}

// Validate checks the selection before anything is contacted.
func (s Selection) Validate() error {
	if len(s.Names) == 0 && s.LabelSelector == "" && s.Owner == nil {
		return fmt.Errorf("no pods selected: give --pods NAME[,NAME...] or -l SELECTOR")
	}
	if s.AllNamespaces && s.Namespace != "" {
		return fmt.Errorf("-n %q and -A exclude each other", s.Namespace)
	}
	for _, n := range s.Names {
		if n == "" || strings.ContainsAny(n, "/ ") {
			return fmt.Errorf("--pods %q: not a pod name", n)
		}
	}
	if _, err := labels.Parse(s.LabelSelector); err != nil {
		return fmt.Errorf("-l %q: %v", s.LabelSelector, err)
	}
	if s.Node == "" && !s.AllNodes {
		return fmt.Errorf("no node name: give --node or set $NODE_NAME")
	}
	return nil
}

// DefaultNode is $NODE_NAME, else the hostname: what --node defaults to.
func DefaultNode() string {
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	n, _ := os.Hostname()
	return n
}

// matches reports whether a pod in namespace (already restricted by the
// source) with this name and these labels is selected.
func (s Selection) matches(name string, podLabels map[string]string) bool {
	if len(s.Names) > 0 && !slices.Contains(s.Names, name) {
		return false
	}
	sel, err := labels.Parse(s.LabelSelector) // validated before
	return err == nil && sel.Matches(labels.Set(podLabels))
}

// owns reports whether the pod belongs to the selected workload, when one
// is selected.
func (s Selection) owns(p Pod) bool {
	return s.Owner == nil || p.Owner == *s.Owner
}

// describe is "pods xwing,tie in namespace default on node n1" or
// "pods matching app=web in all namespaces on node n1".
func (s Selection) describe(namespace string) string {
	var what []string
	if s.Owner != nil {
		what = append(what, fmt.Sprintf("pods of %s %s", s.Owner.Kind, s.Owner.Name))
	}
	if len(s.Names) > 0 {
		what = append(what, "pods "+strings.Join(s.Names, ","))
	}
	if s.LabelSelector != "" {
		if len(what) == 0 {
			what = append(what, "pods")
		}
		what = append(what, "matching "+s.LabelSelector)
	}
	where := fmt.Sprintf("in namespace %q", namespace)
	if s.AllNamespaces {
		where = "in all namespaces"
	}
	if s.AllNodes {
		return fmt.Sprintf("%s %s", strings.Join(what, " "), where)
	}
	return fmt.Sprintf("%s %s on node %q", strings.Join(what, " "), where, s.Node)
}

// NoMatchError says that no pod matched and what nearly did.
type NoMatchError struct {
	Selected   string
	NearMisses []string
	// Origin says where pods were looked up (kubeconfig and context, or the
	// runtime endpoint).
	Origin string
}

func (e *NoMatchError) Error() string {
	msg := fmt.Sprintf("no pod matched: %s (%s)", e.Selected, e.Origin)
	const shown = 5
	switch n := len(e.NearMisses); {
	case n == 0:
		msg += "; no pod of that name or selector exists elsewhere either"
	case n <= shown:
		msg += "; near misses: " + strings.Join(e.NearMisses, ", ")
	default:
		msg += fmt.Sprintf("; near misses: %s (+%d more)", strings.Join(e.NearMisses[:shown], ", "), n-shown)
	}
	return msg
}

// bareContainerID drops the runtime scheme of a status's container id:
// "containerd://abc" (or cri-o://, docker://) is "abc".
func bareContainerID(id string) string {
	if _, bare, ok := strings.Cut(id, "://"); ok {
		return bare
	}
	return id
}

// Labels that controllers put on their pods, which the CRI copies to the pod
// sandbox. They let the owner be inferred without reading the owner itself.
const (
	podTemplateHashLabel   = "pod-template-hash"                  // Deployment → ReplicaSet
	statefulSetPodLabel    = "statefulset.kubernetes.io/pod-name" // StatefulSet
	revisionHashLabel      = "controller-revision-hash"           // StatefulSet, DaemonSet
	templateGenerationLbl  = "pod-template-generation"            // DaemonSet
	jobNameLabel           = "batch.kubernetes.io/job-name"       // Job, Kubernetes 1.27+
	legacyJobNameLabel     = "job-name"                           // Job, before 1.27
	generatedSuffixLen     = 5                                    // names.SimpleNameGenerator's random suffix
	generatedSuffixDashLen = generatedSuffixLen + 1
)

// inferOwner names a pod's workload from the labels its controller gave it
// and the names it generated, for when the owner objects cannot be read (CRI
// mode, or no RBAC to get ReplicaSets/Jobs). A pod none of them explains is
// its own owner.
func inferOwner(podName string, podLabels map[string]string) v1alpha1.Owner {
	if h := podLabels[podTemplateHashLabel]; h != "" {
		// Deployment "web" → ReplicaSet "web-<hash>" → Pod "web-<hash>-<suffix>".
		if i := strings.LastIndex(podName, "-"+h+"-"); i > 0 {
			return v1alpha1.Owner{Kind: "Deployment", Name: podName[:i]}
		}
	}
	if podLabels[statefulSetPodLabel] == podName && podLabels[revisionHashLabel] != "" {
		// StatefulSet "db" → Pod "db-<ordinal>".
		if i := strings.LastIndex(podName, "-"); i > 0 {
			return v1alpha1.Owner{Kind: "StatefulSet", Name: podName[:i]}
		}
	}
	if podLabels[templateGenerationLbl] != "" && podLabels[revisionHashLabel] != "" && len(podName) > generatedSuffixDashLen {
		// DaemonSet "agent" → Pod "agent-<suffix>".
		return v1alpha1.Owner{Kind: "DaemonSet", Name: podName[:len(podName)-generatedSuffixDashLen]}
	}
	for _, l := range []string{jobNameLabel, legacyJobNameLabel} {
		if j := podLabels[l]; j != "" {
			return v1alpha1.Owner{Kind: "Job", Name: j}
		}
	}
	return v1alpha1.Owner{Kind: "Pod", Name: podName}
}
