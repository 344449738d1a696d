package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/capprof/capprof/api/v1alpha1"
)

// APIConfig selects pods through the Kubernetes API.
type APIConfig struct {
	Selection
	// Kubeconfig and Context follow kubectl: --kubeconfig, else $KUBECONFIG,
	// else ~/.kube/config, else the in-cluster service account.
	Kubeconfig, Context string
	// Warnings receives one line per problem that does not stop recording.
	Warnings io.Writer
}

// requestTimeout bounds every list and get; watches are long-lived.
const requestTimeout = 15 * time.Second

// APISource finds pods through the Kubernetes API.
type APISource struct {
	sel       Selection
	namespace string             // "" with -A
	origin    string             // "kubeconfig /root/.kube/config, context \"kind\""
	core      rest.Interface     // core/v1: pods
	meta      metadata.Interface // the owners of pods' ReplicaSets and Jobs
	warnings  io.Writer

	mu     sync.Mutex
	owners map[string]v1alpha1.Owner // by namespace/kind/name of the pod's controller
}

// podScheme knows core/v1 alone: capprof reads pods, and only the metadata
// of their ReplicaSets and Jobs. kubernetes.NewForConfig's clientset
// registers every API group and links their generated clients: with it the
// capprof binary measured 76 MB and `capprof --version` 32 MiB of peak RSS,
// without it 38 MB and 21 MiB (/usr/bin/time -f %M). Cluster mode's agent
// and controller are built on controller-runtime, whose client registers
// every group anyway: since they joined, 72 MB and 39 MiB.
var podScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err) // registering generated types cannot fail
	}
	return s
}()

var podParams = runtime.NewParameterCodec(podScheme)

// NewAPISource loads the client configuration; it does not contact the API
// server yet.
func NewAPISource(cfg APIConfig) (*APISource, error) {
	if err := cfg.Selection.Validate(); err != nil {
		return nil, err
	}
	config, loader, origin, err := clientConfig(cfg.Kubeconfig, cfg.Context)
	if errors.Is(err, errNoClientConfig) {
		return nil, fmt.Errorf("%w, or --runtime-endpoint to ask the container runtime instead", err)
	} else if err != nil {
		return nil, err
	}
	coreConfig := rest.CopyConfig(config)
	coreConfig.APIPath = "/api"
	coreConfig.GroupVersion = &corev1.SchemeGroupVersion
	coreConfig.NegotiatedSerializer = serializer.NewCodecFactory(podScheme).WithoutConversion()
	core, err := rest.RESTClientFor(coreConfig)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client (%s): %w", origin, err)
	}
	meta, err := metadata.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes metadata client (%s): %w", origin, err)
	}
	s := &APISource{sel: cfg.Selection, origin: origin, core: core, meta: meta, warnings: cfg.Warnings, owners: map[string]v1alpha1.Owner{}}
	if s.warnings == nil {
		s.warnings = io.Discard
	}
	if !cfg.AllNamespaces {
		if s.namespace, err = namespace(loader, cfg.Namespace, origin); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// errNoClientConfig: nothing says which cluster to use.
var errNoClientConfig = errors.New("no Kubernetes client configuration: no --kubeconfig, $KUBECONFIG or ~/.kube/config, and not running in a pod; give --kubeconfig")

// clientConfig loads the client configuration kubectl's way: --kubeconfig
// (which must exist), else $KUBECONFIG, else ~/.kube/config, else the
// in-cluster service account; and says which it used, for messages.
func clientConfig(kubeconfig, context string) (*rest.Config, clientcmd.ClientConfig, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		if _, err := os.Stat(kubeconfig); err != nil {
			return nil, nil, "", fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
		}
		rules.ExplicitPath = kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	origin := describeOrigin(rules, loader, context)
	config, err := loader.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, nil, "", errNoClientConfig
		}
		return nil, nil, "", fmt.Errorf("load Kubernetes client configuration (%s): %s", origin, oneLine(err))
	}
	config.UserAgent = "capprof"
	return config, loader, origin, nil
}

// namespace is the one given, else the kubeconfig context's, else default.
func namespace(loader clientcmd.ClientConfig, given, origin string) (string, error) {
	if given != "" {
		return given, nil
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return "", fmt.Errorf("read the namespace of the kubeconfig context (%s): %w", origin, err)
	}
	return ns, nil
}

// describeOrigin says which configuration is used, for error messages:
// the kubeconfig file(s) and the context, or the in-cluster account.
func describeOrigin(rules *clientcmd.ClientConfigLoadingRules, loader clientcmd.ClientConfig, context string) string {
	var files []string
	for _, f := range rules.GetLoadingPrecedence() {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return "in-cluster service account"
	}
	if context == "" {
		if raw, err := loader.RawConfig(); err == nil {
			context = raw.CurrentContext
		}
	}
	return fmt.Sprintf("kubeconfig %s, context %q", strings.Join(files, ":"), context)
}

// Describe implements Source.
func (s *APISource) Describe() string { return s.sel.describe(s.namespace) }

// ReportDelay implements Source: the API server has a pod bound to this
// node before the kubelet acts on it, but capprof's watch may be told
// after the kubelet's, by seconds on a loaded node or API server.
func (s *APISource) ReportDelay() time.Duration { return 15 * time.Second }

func (s *APISource) listOptions() metav1.ListOptions {
	selector := fields.OneTermEqualSelector("spec.nodeName", s.sel.Node)
	if s.sel.AllNodes {
		selector = fields.Everything()
	}
	if len(s.sel.Names) == 1 {
		selector = fields.AndSelectors(selector, fields.OneTermEqualSelector("metadata.name", s.sel.Names[0]))
	}
	return metav1.ListOptions{LabelSelector: s.sel.LabelSelector, FieldSelector: selector.String()}
}

// Pods implements Source.
func (s *APISource) Pods(ctx context.Context) ([]Pod, error) {
	list, err := s.list(ctx, s.namespace, s.listOptions())
	if err != nil {
		return nil, err
	}
	var pods []Pod
	for i := range list.Items {
		if s.sel.matches(list.Items[i].Name, list.Items[i].Labels) {
			if p := s.pod(ctx, &list.Items[i]); s.sel.owns(p) {
				pods = append(pods, p)
			}
		}
	}
	if len(pods) == 0 {
		return nil, &NoMatchError{Selected: s.Describe(), NearMisses: s.nearMisses(ctx), Origin: s.origin}
	}
	return pods, nil
}

func (s *APISource) list(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	list, err := s.listPods(ctx, namespace, opts)
	if err != nil {
		return nil, s.apiError("list", "pods", namespace, err)
	}
	return list, nil
}

// listPods and watchPods are what the generated core/v1 pods client does.
func (s *APISource) listPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error) {
	list := &corev1.PodList{}
	err := s.core.Get().Namespace(namespace).Resource("pods").VersionedParams(&opts, podParams).Do(ctx).Into(list)
	return list, err
}

func (s *APISource) watchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	req := s.core.Get().Namespace(namespace).Resource("pods").VersionedParams(&opts, podParams)
	if opts.TimeoutSeconds != nil {
		req = req.Timeout(time.Duration(*opts.TimeoutSeconds) * time.Second)
	}
	return req.Watch(ctx)
}

// apiError names the verb and resource that failed and the configuration
// used, and keeps the server's reason to one line.
func (s *APISource) apiError(verb, resource, namespace string, err error) error {
	where := fmt.Sprintf("in namespace %q", namespace)
	if namespace == "" {
		where = "in all namespaces"
	}
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("forbidden to %s %s %s (%s): %s; grant the user %q on %q", verb, resource, where, s.origin, oneLine(err), verb, resource)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s %s %s (%s): the API server rejected the credentials: %s", verb, resource, where, s.origin, oneLine(err))
	case apierrors.IsNotFound(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return fmt.Errorf("%s %s %s (%s): %s", verb, resource, where, s.origin, oneLine(err))
	}
	return fmt.Errorf("%s %s %s (%s): API server unreachable: %s", verb, resource, where, s.origin, oneLine(err))
}

// nearMisses lists pods that match by name or selector but are on another
// node or in another namespace. Failures only make the list shorter.
func (s *APISource) nearMisses(ctx context.Context) []string {
	if s.sel.Owner != nil {
		return nil // a workload's pods elsewhere are other nodes' agents' to record
	}
	var opts []metav1.ListOptions
	if len(s.sel.Names) > 0 {
		for _, n := range s.sel.Names {
			opts = append(opts, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", n).String(), LabelSelector: s.sel.LabelSelector})
		}
	} else {
		opts = append(opts, metav1.ListOptions{LabelSelector: s.sel.LabelSelector})
	}
	var misses []string
	for _, o := range opts {
		list, err := s.list(ctx, "", o) // needs cluster-wide list; else try our namespace
		if err != nil && s.namespace != "" {
			list, err = s.list(ctx, s.namespace, o)
		}
		if err != nil {
			continue
		}
		for _, p := range list.Items {
			if !s.sel.matches(p.Name, p.Labels) {
				continue
			}
			var why []string
			if s.namespace != "" && p.Namespace != s.namespace {
				why = append(why, "another namespace")
			}
			switch p.Spec.NodeName {
			case s.sel.Node:
			case "":
				why = append(why, "not scheduled yet")
			default:
				why = append(why, fmt.Sprintf("on node %q", p.Spec.NodeName))
			}
			misses = append(misses, fmt.Sprintf("%s/%s (%s)", p.Namespace, p.Name, strings.Join(why, ", ")))
		}
	}
	return misses
}

// Watch implements Source with an informer restricted, like Pods, to this
// node and the label selector; the informer re-lists and re-watches on its
// own after errors.
func (s *APISource) Watch(ctx context.Context, out chan<- Pod) error {
	opts := s.listOptions()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			return s.listPods(ctx, s.namespace, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			return s.watchPods(ctx, s.namespace, o)
		},
	}
	informer := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		fmt.Fprintf(s.warnings, "capprof: warning: watch pods: %s (retrying)\n", oneLine(err))
	}); err != nil {
		return err
	}
	send := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok || !s.sel.matches(p.Name, p.Labels) {
			return
		}
		pod := s.pod(ctx, p)
		if !s.sel.owns(pod) {
			return
		}
		select {
		case out <- pod:
		case <-ctx.Done():
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    send,
		UpdateFunc: func(_, obj any) { send(obj) },
	}); err != nil {
		return err
	}
	informer.RunWithContext(ctx)
	return nil
}

// pod converts an API pod; only containers that have an id (created by the
// runtime) are included.
func (s *APISource) pod(ctx context.Context, p *corev1.Pod) Pod {
	out := Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), Node: p.Spec.NodeName, QOSClass: string(p.Status.QOSClass), Labels: p.Labels, Owner: s.owner(ctx, p)}
	images := map[string]string{}
	for _, c := range p.Spec.InitContainers {
		images[c.Name] = c.Image
	}
	for _, c := range p.Spec.Containers {
		images[c.Name] = c.Image
	}
	for _, c := range p.Spec.EphemeralContainers {
		images[c.Name] = c.Image
	}
	add := func(kind v1alpha1.ContainerKind, statuses []corev1.ContainerStatus) {
		for _, st := range statuses {
			if st.ContainerID == "" {
				continue
			}
			image := images[st.Name]
			if image == "" {
				image = st.Image
			}
			c := Container{Name: st.Name, Kind: kind, Image: image, ID: bareContainerID(st.ContainerID)}
			if run := st.State.Running; run != nil {
				c.Running, c.StartedAt = true, run.StartedAt.Time // whole seconds
			}
			out.Containers = append(out.Containers, c)
		}
	}
	add(v1alpha1.InitContainer, p.Status.InitContainerStatuses)
	add(v1alpha1.RegularContainer, p.Status.ContainerStatuses)
	add(v1alpha1.EphemeralContainer, p.Status.EphemeralContainerStatuses)
	return out
}

// owner follows the pod's controller up one more level where Kubernetes
// adds one (ReplicaSet → Deployment, Job → CronJob). When the intermediate
// object cannot be read, the owner is inferred from labels and names.
func (s *APISource) owner(ctx context.Context, p *corev1.Pod) v1alpha1.Owner {
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return v1alpha1.Owner{Kind: "Pod", Name: p.Name}
	}
	if ref.Kind != "ReplicaSet" && ref.Kind != "Job" {
		return v1alpha1.Owner{Kind: ref.Kind, Name: ref.Name}
	}
	key := p.Namespace + "/" + ref.Kind + "/" + ref.Name
	s.mu.Lock()
	o, ok := s.owners[key]
	s.mu.Unlock()
	if ok {
		return o
	}
	o = v1alpha1.Owner{Kind: ref.Kind, Name: ref.Name}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resource := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	if ref.Kind == "Job" {
		resource = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	}
	obj, err := s.meta.Resource(resource).Namespace(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case err == nil:
		if up := metav1.GetControllerOf(obj); up != nil {
			o = v1alpha1.Owner{Kind: up.Kind, Name: up.Name}
		}
	case ref.Kind == "ReplicaSet":
		if inferred := inferOwner(p.Name, p.Labels); inferred.Kind == "Deployment" {
			o = inferred
		}
		fmt.Fprintf(s.warnings, "capprof: warning: %s; owner of pod %s/%s inferred as %s %s\n",
			s.apiError("get", "replicasets", p.Namespace, err), p.Namespace, p.Name, o.Kind, o.Name)
	default:
		fmt.Fprintf(s.warnings, "capprof: warning: %s; owner of pod %s/%s taken as Job %s\n",
			s.apiError("get", "jobs", p.Namespace, err), p.Namespace, p.Name, ref.Name)
	}
	s.mu.Lock()
	s.owners[key] = o
	s.mu.Unlock()
	return o
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
