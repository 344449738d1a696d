package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// restartedAtAnnotation is what `kubectl rollout restart` sets on a pod
// template; a changed template makes the controller replace every pod.
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// restartable are the workloads whose controller replaces their pods when
// the pod template changes, by kind.
var restartable = map[string]schema.GroupVersionResource{
	"Deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet": {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":   {Group: "apps", Version: "v1", Resource: "daemonsets"},
}

// Workload is a workload to restart, with its namespace.
type Workload struct {
	Namespace string
	Kind      string
	Name      string
}

func (w Workload) String() string { return w.Namespace + "/" + w.Kind + "/" + w.Name }

// RestartTargets lists the workloads that own the pods, each once, and
// refuses the pods that no controller would recreate as the template changes
// (a bare Pod, a Job's), saying why.
func RestartTargets(pods []Pod) ([]Workload, error) {
	var out []Workload
	for _, p := range pods {
		w := Workload{Namespace: p.Namespace, Kind: p.Owner.Kind, Name: p.Owner.Name}
		if _, ok := restartable[w.Kind]; !ok {
			return nil, fmt.Errorf("--restart: pod %s/%s belongs to %s %q, which nothing restarts the way kubectl rollout restart does (only Deployments, StatefulSets and DaemonSets); delete and recreate it while recording instead",
				p.Namespace, p.Name, w.Kind, w.Name)
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b Workload) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// Restart restarts a workload as `kubectl rollout restart` does: it sets
// the restartedAt annotation of its pod template to now, and its controller
// replaces the pods.
func (s *APISource) Restart(ctx context.Context, w Workload, now time.Time) error {
	gvr, ok := restartable[w.Kind]
	if !ok {
		return fmt.Errorf("--restart: %s cannot be restarted", w)
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{restartedAtAnnotation: now.Format(time.RFC3339)}}}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := s.meta.Resource(gvr).Namespace(w.Namespace).Patch(ctx, w.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "capprof"}); err != nil {
		return fmt.Errorf("--restart: %w", s.apiError("patch", gvr.Resource, w.Namespace, err))
	}
	return nil
}
