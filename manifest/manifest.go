// Package manifest reads Kubernetes manifests (multi-document YAML), finds
// the containers an analysis has advice for, compares what they are granted
// today with what they need, and writes the manifest back with the advice
// applied, or the patches that apply it. It edits the YAML node tree, so
// fields, order and comments outside the replaced values are kept. It is
// pure Go: no cluster access.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/internal/yamlguard"
	"github.com/capprof/capprof/profile"
)

// podSpecAt says where each workload kind keeps its pod template.
var podSpecAt = map[string]struct {
	group string
	path  []string
}{
	"Pod":         {"", []string{"spec"}},
	"Deployment":  {"apps", []string{"spec", "template", "spec"}},
	"StatefulSet": {"apps", []string{"spec", "template", "spec"}},
	"DaemonSet":   {"apps", []string{"spec", "template", "spec"}},
	"ReplicaSet":  {"apps", []string{"spec", "template", "spec"}},
	"Job":         {"batch", []string{"spec", "template", "spec"}},
	"CronJob":     {"batch", []string{"spec", "jobTemplate", "spec", "template", "spec"}},
}

// PodSpecPath returns where a workload kind keeps its pod spec
// (["spec", "template", "spec"] for a Deployment), or nil for other kinds.
func PodSpecPath(kind string) []string {
	return slices.Clone(podSpecAt[kind].path)
}

// Kinds are the workload kinds capprof can patch.
var Kinds = []string{"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}

// Manifest is a parsed manifest file.
type Manifest struct {
	Path string
	// Workloads are the documents of the kinds capprof patches, in file order.
	Workloads []*Workload
	// unpatchable are other documents that hold containers ("Kind/name").
	unpatchable []Workload
	docs        []*yaml.Node
	// text is the file as read, to write it back in its own style.
	text []byte
}

// Workload is one document with a pod template.
type Workload struct {
	APIVersion, Kind, Name, Namespace string
	// PodMeta and PodSpec are the pod template, decoded.
	PodMeta metav1.ObjectMeta
	PodSpec corev1.PodSpec
	doc     int
	path    []string
}

// String is "Deployment/web".
func (w *Workload) String() string { return w.Kind + "/" + w.Name }

// Load reads and parses a manifest. Every error names the file.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return Parse(path, data)
}

// Parse parses the documents of a manifest; path is only for messages,
// which it begins.
func Parse(path string, data []byte) (*Manifest, error) {
	m, err := parse(path, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(strings.Fields(err.Error()), " "))
	}
	return m, nil
}

func parse(path string, data []byte) (*Manifest, error) {
	m := &Manifest{Path: path, text: data}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: not YAML: %s", i+1, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if err := yamlguard.CheckNode(&doc, yamlguard.Limit(len(data))); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		m.docs = append(m.docs, &doc)
		if err := m.addDocument(i, &doc); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	if len(m.Workloads) == 0 && len(m.unpatchable) == 0 {
		return nil, fmt.Errorf("no workload (%s) in the file", strings.Join(Kinds, ", "))
	}
	return m, nil
}

func (m *Manifest) addDocument(i int, doc *yaml.Node) error {
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return nil // an empty document, e.g. after a trailing ---
	}
	var obj map[string]any
	if err := doc.Decode(&obj); err != nil {
		return fmt.Errorf("not a Kubernetes object: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" || kind == "" {
		return errors.New("not a Kubernetes object: apiVersion and kind must be set")
	}
	var meta metav1.ObjectMeta
	if err := convert(obj["metadata"], &meta); err != nil {
		return fmt.Errorf("%s: metadata: %w", kind, err)
	}
	w := Workload{APIVersion: apiVersion, Kind: kind, Name: meta.Name, Namespace: meta.Namespace, doc: i}
	if strings.HasSuffix(kind, "List") {
		return fmt.Errorf("kind %s: capprof reads one object per document; split the items into documents", kind)
	}
	at, ok := podSpecAt[kind]
	if !ok || group(apiVersion) != at.group {
		if holdsContainers(obj) {
			m.unpatchable = append(m.unpatchable, w)
		}
		return nil
	}
	if w.Name == "" {
		return fmt.Errorf("%s: metadata.name is empty", kind)
	}
	w.path = at.path
	spec, ok := lookup(obj, at.path)
	if !ok {
		return fmt.Errorf("%s: no pod spec at %s", w.String(), strings.Join(at.path, "."))
	}
	if err := convert(spec, &w.PodSpec); err != nil {
		return fmt.Errorf("%s: %s: %w", w.String(), strings.Join(at.path, "."), err)
	}
	if kind == "Pod" {
		w.PodMeta = meta
	} else if tm, ok := lookup(obj, slices.Concat(at.path[:len(at.path)-1], []string{"metadata"})); ok {
		if err := convert(tm, &w.PodMeta); err != nil {
			return fmt.Errorf("%s: pod template metadata: %w", w.String(), err)
		}
	}
	if len(w.PodSpec.Containers) == 0 {
		return fmt.Errorf("%s: the pod spec has no containers", w.String())
	}
	m.Workloads = append(m.Workloads, &w)
	return nil
}

// group is the API group of an apiVersion ("apps/v1" -> "apps", "v1" -> "").
func group(apiVersion string) string {
	if g, _, ok := strings.Cut(apiVersion, "/"); ok {
		return g
	}
	return ""
}

// holdsContainers: an object of another kind with a pod template (an
// operator's custom workload, a ReplicationController), which capprof does
// not know how to patch.
func holdsContainers(obj map[string]any) bool {
	for _, path := range [][]string{{"spec", "containers"}, {"spec", "template", "spec", "containers"}} {
		if _, ok := lookup(obj, path); ok {
			return true
		}
	}
	return false
}

func lookup(obj any, path []string) (any, bool) {
	for _, key := range path {
		m, ok := obj.(map[string]any)
		if !ok {
			return nil, false
		}
		if obj, ok = m[key]; !ok {
			return nil, false
		}
	}
	return obj, true
}

// convert decodes a generic YAML value into a Kubernetes API type, as
// kubectl does: through JSON.
func convert(v any, into any) error {
	if v == nil {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, into); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return fmt.Errorf("field %s: want %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// findContainer finds a container of the pod spec by name.
func (w *Workload) findContainer(name string) (kind v1alpha1.ContainerKind, index int, c *corev1.Container) {
	for i := range w.PodSpec.Containers {
		if w.PodSpec.Containers[i].Name == name {
			return v1alpha1.RegularContainer, i, &w.PodSpec.Containers[i]
		}
	}
	for i := range w.PodSpec.InitContainers {
		if w.PodSpec.InitContainers[i].Name == name {
			return v1alpha1.InitContainer, i, &w.PodSpec.InitContainers[i]
		}
	}
	return "", 0, nil
}

// list is the pod spec list that holds the container.
func (m Match) list() string {
	if m.Kind == v1alpha1.InitContainer {
		return "initContainers"
	}
	return "containers"
}

// containerNames lists the pod spec's containers, init containers first.
func (w *Workload) containerNames() []string {
	var names []string
	for _, c := range w.PodSpec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range w.PodSpec.Containers {
		names = append(names, c.Name)
	}
	return names
}

// Match is a manifest container and the analysis of the profiled
// container it is.
type Match struct {
	Workload  *Workload
	Container string
	Kind      v1alpha1.ContainerKind
	Index     int
	Analysis  *profile.ContainerAnalysis
}

// Matching is how an analysis's containers pair with a manifest's.
type Matching struct {
	Matches []Match
	// Unprofiled are the manifest's containers with no profile, as
	// "Deployment/web container sidecar": they are left alone.
	Unprofiled []string
	// Elsewhere are the profiled containers of workloads the manifest does
	// not hold: they are ignored.
	Elsewhere []string
}

// Match pairs the analyzed containers with the manifest's. A profiled pod
// container matches the workload it was recorded in (same kind and name;
// same namespace when the manifest sets one) and the container of its name;
// a recorded command's container matches by name alone and must be
// unambiguous. It is an error when nothing matches, when the manifest has a
// container's workload but not the container, and when the workload is of a
// kind capprof cannot patch.
func (m *Manifest) Match(a *profile.Analysis) (*Matching, error) {
	out := &Matching{}
	taken := map[string]string{}
	for i := range a.Containers {
		c := &a.Containers[i]
		var found []Match
		workloadFound := false
		for _, w := range m.Workloads {
			if c.Owner != nil && (w.Kind != c.Owner.Kind || w.Name != c.Owner.Name || (w.Namespace != "" && w.Namespace != c.Namespace)) {
				continue
			}
			workloadFound = true
			if kind, index, ctr := w.findContainer(c.Name); ctr != nil {
				found = append(found, Match{Workload: w, Container: c.Name, Kind: kind, Index: index, Analysis: c})
			}
		}
		switch {
		case len(found) == 0:
			for _, u := range m.unpatchable {
				if c.Owner != nil && u.Kind == c.Owner.Kind && u.Name == c.Owner.Name {
					return nil, fmt.Errorf("%s: kind %s (%s) cannot be patched (capprof patches %s)", m.Path, u.Kind, u.APIVersion, strings.Join(Kinds, ", "))
				}
			}
			if workloadFound || c.Owner == nil {
				return nil, fmt.Errorf("%s has no container for the profile's %q (it has: %s); give the manifest the container was recorded from",
					m.Path, c.Key().String(), m.inventory())
			}
			out.Elsewhere = append(out.Elsewhere, c.Key().String())
			continue
		case len(found) > 1:
			var where []string
			for _, f := range found {
				where = append(where, f.Workload.String())
			}
			return nil, fmt.Errorf("%s: the profile's %q matches containers in %s; record the pods (not a command) or give a manifest with one of them",
				m.Path, c.Key().String(), strings.Join(where, " and "))
		}
		id := fmt.Sprintf("%d/%s", found[0].Workload.doc, c.Name)
		if other, ok := taken[id]; ok {
			return nil, fmt.Errorf("%s: both %q and %q match %s container %s; analyze one namespace at a time",
				m.Path, other, c.Key().String(), found[0].Workload, c.Name)
		}
		taken[id] = c.Key().String()
		out.Matches = append(out.Matches, found[0])
	}
	if len(out.Matches) == 0 {
		return nil, fmt.Errorf("%s has none of the profiled containers (%s); it has: %s", m.Path, strings.Join(out.Elsewhere, ", "), m.inventory())
	}
	for _, w := range m.Workloads {
		for _, name := range w.containerNames() {
			if _, ok := taken[fmt.Sprintf("%d/%s", w.doc, name)]; !ok {
				out.Unprofiled = append(out.Unprofiled, fmt.Sprintf("%s container %s", w, name))
			}
		}
	}
	return out, nil
}

// inventory lists the workloads and their containers, for messages.
func (m *Manifest) inventory() string {
	var parts []string
	for _, w := range m.Workloads {
		name := w.String()
		if w.Namespace != "" {
			name = w.Namespace + "/" + name
		}
		parts = append(parts, name+" ["+strings.Join(w.containerNames(), ", ")+"]")
	}
	if len(parts) == 0 {
		return "no workload capprof can patch"
	}
	return strings.Join(parts, "; ")
}
