package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/internal/escape"
)

// ClusterConfig says which cluster and namespace to read from, kubectl's
// way (see APIConfig).
type ClusterConfig struct {
	Kubeconfig, Context string
	// Namespace is -n; empty for the kubeconfig context's.
	Namespace string
}

// ProfileClient reads CapabilityProfile objects.
type ProfileClient struct {
	client    rest.Interface // capprof.dev/v1alpha1
	namespace string
	origin    string
}

// NewProfileClient loads the client configuration; it does not contact the
// API server yet.
func NewProfileClient(cfg ClusterConfig) (*ProfileClient, error) {
	config, ns, origin, err := Config(cfg)
	if err != nil {
		return nil, err
	}
	gv := v1alpha1.GroupVersion
	config.APIPath = "/apis"
	config.GroupVersion = &gv
	// Objects come back as bytes, for package profile to decode strictly;
	// the scheme knows metav1.Status alone, for the API server's errors.
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	config.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	client, err := rest.RESTClientFor(config)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client (%s): %w", origin, err)
	}
	return &ProfileClient{client: client, namespace: ns, origin: origin}, nil
}

// Get returns the CapabilityProfile object of the workload ref names
// ("deploy/web"), as JSON, and how to name it in messages
// ("capabilityprofile shop/deployment-web").
func (c *ProfileClient) Get(ctx context.Context, ref string) (data []byte, what string, err error) {
	workload, err := ParseWorkload(ref)
	if err != nil {
		return nil, "", err
	}
	name := v1alpha1.ProfileName(workload)
	what = "capabilityprofile " + c.namespace + "/" + name
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// Do, not DoRaw: Result.Error decodes the API server's Status, which
	// tells a missing object from a missing API.
	result := c.client.Get().Namespace(c.namespace).Resource("capabilityprofiles").Name(name).Do(ctx)
	data, _ = result.Raw()
	err = result.Error()
	var status apierrors.APIStatus
	switch {
	case err == nil:
		return data, what, nil
	case apierrors.IsNotFound(err) && errors.As(err, &status) && notAnAPI(status.Status()):
		return nil, what, fmt.Errorf("get %s (%s): the cluster has no CapabilityProfile API: install capprof (kubectl apply --server-side -f deploy/capprof.yaml, or its Helm chart deploy/helm/capprof)", what, c.origin)
	case apierrors.IsNotFound(err):
		return nil, what, fmt.Errorf("get %s (%s): not found: no profile of %s %s in namespace %q; kubectl get capabilityprofiles -n %s lists the profiles there", what, c.origin, workload.Kind, escape.Name(workload.Name), c.namespace, c.namespace)
	case apierrors.IsForbidden(err):
		return nil, what, fmt.Errorf("forbidden to get %s (%s): %s; grant the user \"get\" on \"capabilityprofiles.capprof.dev\"", what, c.origin, oneLine(err))
	case apierrors.IsUnauthorized(err):
		return nil, what, fmt.Errorf("get %s (%s): the API server rejected the credentials: %s", what, c.origin, oneLine(err))
	}
	return nil, what, fmt.Errorf("get %s (%s): %s", what, c.origin, oneLine(err))
}

// notAnAPI tells a 404 for a path the API server does not serve (no CRD
// installed: a plain-text "404 page not found", which client-go wraps as an
// unexpected response) from one for an object the API lacks (a Status).
func notAnAPI(status metav1.Status) bool {
	if status.Details == nil {
		return true
	}
	for _, cause := range status.Details.Causes {
		if cause.Type == metav1.CauseTypeUnexpectedServerResponse {
			return true
		}
	}
	return false
}

// workloadKinds are the kinds a profile's owner has (a pod's controller's
// controller, or the pod) by the names kubectl accepts for them: kind,
// resource, plural and short name, any case, with or without the group.
var workloadKinds = map[string]string{
	"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
	"statefulset": "StatefulSet", "statefulsets": "StatefulSet", "sts": "StatefulSet",
	"daemonset": "DaemonSet", "daemonsets": "DaemonSet", "ds": "DaemonSet",
	"replicaset": "ReplicaSet", "replicasets": "ReplicaSet", "rs": "ReplicaSet",
	"job": "Job", "jobs": "Job",
	"cronjob": "CronJob", "cronjobs": "CronJob", "cj": "CronJob",
	"pod": "Pod", "pods": "Pod", "po": "Pod",
}

// ParseWorkload reads a workload reference as kubectl takes one:
// KIND/NAME ("deploy/web", "deployment.apps/web", "StatefulSet/db").
// Another kind (a custom controller's, "rollout/web") is taken as it is.
func ParseWorkload(ref string) (v1alpha1.Owner, error) {
	kind, name, ok := strings.Cut(ref, "/")
	if !ok || kind == "" || name == "" {
		return v1alpha1.Owner{}, fmt.Errorf("workload %q: want KIND/NAME, like deploy/web or statefulset/db", ref)
	}
	kind, _, _ = strings.Cut(kind, ".") // deployment.apps
	if canonical, known := workloadKinds[strings.ToLower(kind)]; known {
		kind = canonical
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return v1alpha1.Owner{}, fmt.Errorf("workload %q: name %q: %s", ref, name, errs[0])
	}
	if errs := validation.IsDNS1035Label(strings.ToLower(kind)); len(errs) > 0 {
		return v1alpha1.Owner{}, fmt.Errorf("workload %q: kind %q: not a kind", ref, kind)
	}
	return v1alpha1.Owner{Kind: kind, Name: name}, nil
}

// Config loads the client configuration kubectl's way and the namespace
// (-n, else the context's), and says which configuration it used.
func Config(cfg ClusterConfig) (config *rest.Config, ns, origin string, err error) {
	config, loader, origin, err := clientConfig(cfg.Kubeconfig, cfg.Context)
	if err != nil {
		return nil, "", "", err
	}
	if ns, err = namespace(loader, cfg.Namespace, origin); err != nil {
		return nil, "", "", err
	}
	return config, ns, origin, nil
}
