package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/profile"
)

// PatchFormats are the values of capprof patch -o.
var PatchFormats = []string{"manifest", "strategic", "json6902", "json6902-yaml", "kustomize"}

// mergeAdvice is the securityContext a container gets: today's, with the
// fields capprof advises on set to the advice. Fields it does not advise
// on (readOnlyRootFilesystem, runAsGroup, seLinuxOptions, ...) are kept.
// A seccomp profile of the pod's or a Localhost one is kept: the advice
// only replaces none or Unconfined. It also returns the JSON names of the
// fields it set.
func mergeAdvice(pod *corev1.PodSecurityContext, today, advice *corev1.SecurityContext) (*corev1.SecurityContext, []string) {
	merged := today.DeepCopy()
	if merged == nil {
		merged = &corev1.SecurityContext{}
	}
	merged.Capabilities = advice.Capabilities.DeepCopy()
	merged.Privileged = advice.Privileged
	merged.AllowPrivilegeEscalation = advice.AllowPrivilegeEscalation
	fields := []string{"capabilities", "privileged", "allowPrivilegeEscalation"}
	if advice.RunAsNonRoot != nil {
		merged.RunAsNonRoot = advice.RunAsNonRoot
		fields = append(fields, "runAsNonRoot")
	}
	if advice.RunAsUser != nil {
		merged.RunAsUser = advice.RunAsUser
		fields = append(fields, "runAsUser")
	}
	confined := func(s *corev1.SeccompProfile) bool {
		return s != nil && s.Type != corev1.SeccompProfileTypeUnconfined
	}
	podConfined := pod != nil && confined(pod.SeccompProfile)
	if advice.SeccompProfile != nil && !confined(merged.SeccompProfile) && !(podConfined && merged.SeccompProfile == nil) {
		merged.SeccompProfile = advice.SeccompProfile.DeepCopy()
		fields = append(fields, "seccompProfile")
	}
	return merged, fields
}

// patchedContainer is one matched container with its new securityContext.
type patchedContainer struct {
	Match
	today  *corev1.SecurityContext
	merged *corev1.SecurityContext
	fields []string
}

// recreated: kinds whose pod spec the API server will not change in place
// (a Pod's containers; a Job's template, spec.template being immutable).
func recreated(kind string) bool { return kind == "Pod" || kind == "Job" }

// workloadPatch is the advice for the profiled containers of one workload.
type workloadPatch struct {
	workload   *Workload
	namespace  string
	containers []patchedContainer
}

// plan groups the matches by workload, in file order, and merges the advice.
func plan(matches []Match) []*workloadPatch {
	var out []*workloadPatch
	byWorkload := map[*Workload]*workloadPatch{}
	for _, m := range matches {
		wp := byWorkload[m.Workload]
		if wp == nil {
			wp = &workloadPatch{workload: m.Workload, namespace: m.Workload.Namespace}
			if wp.namespace == "" {
				wp.namespace = m.Analysis.Namespace
			}
			byWorkload[m.Workload] = wp
			out = append(out, wp)
		}
		_, _, ctr := m.Workload.findContainer(m.Container)
		merged, fields := mergeAdvice(m.Workload.PodSpec.SecurityContext, ctr.SecurityContext, m.Analysis.SecurityContext)
		wp.containers = append(wp.containers, patchedContainer{Match: m, today: ctr.SecurityContext, merged: merged, fields: fields})
	}
	slices.SortStableFunc(out, func(a, b *workloadPatch) int { return a.workload.doc - b.workload.doc })
	return out
}

// applied returns the workload as it would be with the advice applied to
// its profiled containers.
func (wp *workloadPatch) applied() *Workload {
	after := *wp.workload
	after.PodSpec = *wp.workload.PodSpec.DeepCopy()
	for _, pc := range wp.containers {
		_, _, ctr := after.findContainer(pc.Container)
		ctr.SecurityContext = pc.merged
	}
	return &after
}

// Patch writes the manifest with the advice applied (format "manifest"), or
// the patches that apply it to the objects in a cluster: "json6902" (kubectl
// patch --type json: a JSON array per object, a line each, which a note
// names the object and command of), "strategic" and "json6902-yaml"
// (kubectl patch --type strategic|json, one YAML document per object, each
// headed by its kubectl command) or "kustomize" (a Kustomization with JSON
// 6902 patches and their targets). Nothing is
// written unless all of it could be made. It returns notes for stderr: what
// was left alone and what was not kept.
func Patch(w io.Writer, m *Manifest, a *profile.Analysis, format string) ([]string, error) {
	matching, err := m.Match(a)
	if err != nil {
		return nil, err
	}
	var notes []string
	for _, u := range matching.Unprofiled {
		notes = append(notes, fmt.Sprintf("%s: no profile for %s: left alone", m.Path, u))
	}
	if len(matching.Elsewhere) > 0 {
		notes = append(notes, fmt.Sprintf("%s: profiled containers of other workloads ignored: %s", m.Path, strings.Join(matching.Elsewhere, ", ")))
	}
	for _, match := range matching.Matches {
		if summary := match.Analysis.VerificationSummary(); summary != "" {
			notes = append(notes, fmt.Sprintf("%s: %s container %s: %s", m.Path, match.Workload, match.Container, summary))
		}
	}
	patches := plan(matching.Matches)
	var inPlace []*workloadPatch
	for _, wp := range patches {
		if recreated(wp.workload.Kind) {
			notes = append(notes, fmt.Sprintf("%s: %s: the API server refuses changes to the pod spec of an existing %s: recreate it from the patched manifest (kubectl replace --force -f)",
				m.Path, wp.workload, wp.workload.Kind))
		} else {
			inPlace = append(inPlace, wp)
		}
	}
	var buf bytes.Buffer
	switch format {
	case "manifest":
		more, err := m.writePatched(&buf, patches)
		if err != nil {
			return nil, err
		}
		notes = append(notes, more...)
	case "strategic", "json6902", "json6902-yaml":
		if len(inPlace) == 0 {
			return nil, fmt.Errorf("%s: no object to patch in place (Pods and Jobs must be recreated): use -o manifest or -o kustomize", m.Path)
		}
		if format == "json6902" {
			for i, wp := range inPlace {
				line, err := json.Marshal(jsonPatch(wp))
				if err != nil {
					return nil, err
				}
				buf.Write(append(line, '\n'))
				notes = append(notes, fmt.Sprintf("%s: stdout line %d: %s", m.Path, i+1, kubectlCommand(wp, "json", "FILE")))
			}
			break
		}
		for i, wp := range inPlace {
			if i > 0 {
				buf.WriteString("---\n")
			}
			if err := writeKubectlPatch(&buf, wp, format); err != nil {
				return nil, err
			}
		}
	case "kustomize":
		if err := writeKustomization(&buf, m, patches); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown patch format %q (valid: %s)", format, strings.Join(PatchFormats, ", "))
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	return notes, nil
}

// writePatched edits the parsed YAML nodes and writes them back.
func (m *Manifest) writePatched(w io.Writer, patches []*workloadPatch) ([]string, error) {
	var notes []string
	compact, reformatted := detectStyle(m.docs, m.text) // before the nodes change
	for _, wp := range patches {
		for _, pc := range wp.containers {
			node, err := m.containerNode(pc.Match)
			if err != nil {
				return nil, err
			}
			lost, err := setSecurityContext(node, pc.merged, pc.fields)
			if err != nil {
				return nil, fmt.Errorf("%s: %s container %s: %w", m.Path, wp.workload, pc.Container, err)
			}
			if lost {
				notes = append(notes, fmt.Sprintf("%s: %s container %s: comments inside the replaced securityContext fields were not kept", m.Path, wp.workload, pc.Container))
			}
		}
	}
	if reformatted {
		notes = append(notes, fmt.Sprintf("%s: the YAML encoder normalized its formatting (indentation, blank lines, quoting); fields, their order and the other comments are kept", m.Path))
	}
	return notes, encodeDocs(w, m.docs, compact)
}

// containerNode finds a matched container's mapping in the node tree.
func (m *Manifest) containerNode(match Match) (*yaml.Node, error) {
	node := m.docs[match.Workload.doc].Content[0]
	list := match.list()
	for _, key := range append(slices.Clone(match.Workload.path), list) {
		_, node = mappingValue(node, key)
		if node == nil {
			return nil, fmt.Errorf("%s: %s: no %s in the YAML", m.Path, match.Workload, key)
		}
	}
	if node.Kind != yaml.SequenceNode || match.Index >= len(node.Content) {
		return nil, fmt.Errorf("%s: %s: %s is not the list it decoded as", m.Path, match.Workload, list)
	}
	return node.Content[match.Index], nil
}

// mappingValue returns a mapping's key and value nodes for key, or nils.
func mappingValue(mapping *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if mapping == nil || mapping.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		if mapping.Content[i].Value == key {
			return mapping.Content[i], mapping.Content[i+1]
		}
	}
	return nil, nil
}

// setSecurityContext writes the given fields of sc into the container's
// securityContext mapping (creating it if needed), keeping its other keys,
// their order and comments. It reports whether replaced values held comments.
func setSecurityContext(container *yaml.Node, sc *corev1.SecurityContext, fields []string) (bool, error) {
	values, err := fieldNodes(sc)
	if err != nil {
		return false, err
	}
	_, scNode := mappingValue(container, "securityContext")
	if scNode == nil || scNode.Kind != yaml.MappingNode {
		lost := scNode != nil && hasComments(scNode)
		whole, err := toNode(sc)
		if err != nil {
			return false, err
		}
		if scNode != nil {
			*scNode = *whole
		} else {
			container.Content = append(container.Content, scalar("securityContext"), whole)
		}
		return lost, nil
	}
	lost := false
	for _, f := range fields {
		value := values[f]
		if value == nil {
			continue
		}
		if _, old := mappingValue(scNode, f); old != nil {
			lost = lost || hasComments(old)
			*old = *value
		} else {
			scNode.Content = append(scNode.Content, scalar(f), value)
		}
	}
	return lost, nil
}

// fieldNodes encodes each set field of a securityContext as a YAML node.
func fieldNodes(sc *corev1.SecurityContext) (map[string]*yaml.Node, error) {
	data, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	out := map[string]*yaml.Node{}
	for k, v := range raw {
		if out[k], err = toNode(v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// toNode encodes a value as a block-style YAML node.
func toNode(v any) (*yaml.Node, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	return blockStyle(n.Content[0]), nil
}

// blockStyle clears the flow style and quoting that parsing JSON leaves.
func blockStyle(n *yaml.Node) *yaml.Node {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
	return n
}

func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func hasComments(n *yaml.Node) bool {
	if n.HeadComment != "" || n.LineComment != "" || n.FootComment != "" {
		return true
	}
	return slices.ContainsFunc(n.Content, hasComments)
}

// encodeDocs writes YAML documents separated by ---.
func encodeDocs(w io.Writer, docs []*yaml.Node, compactSequences bool) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if compactSequences {
		enc.CompactSeqIndent()
	}
	for _, d := range docs {
		if len(d.Content) == 0 || d.Content[0].Tag == "!!null" {
			continue
		}
		if err := enc.Encode(d); err != nil {
			return err
		}
	}
	return enc.Close()
}

// detectStyle tells whether the file indents sequences compactly, as
// kubectl writes them ("- " at its key's indentation), and whether
// encoding it unchanged changes its text anyway.
func detectStyle(docs []*yaml.Node, data []byte) (compact, reformatted bool) {
	best := -1
	want := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, c := range []bool{false, true} {
		var buf bytes.Buffer
		if encodeDocs(&buf, docs, c) != nil {
			continue
		}
		got := strings.Split(strings.TrimSpace(buf.String()), "\n")
		same := 0
		for i := range min(len(got), len(want)) {
			if got[i] == want[i] {
				same++
			}
		}
		if same > best {
			best, compact = same, c
			reformatted = same != len(want) || len(got) != len(want)
		}
	}
	return compact, reformatted
}

// podSpecPatch is the strategic merge patch of the profiled containers'
// securityContexts: the advised fields only, so the others stay as they
// are on the server; an add list that the advice empties is deleted
// explicitly (null), since an absent key would keep the server's.
func podSpecPatch(wp *workloadPatch) (map[string]any, error) {
	lists := map[string][]any{} // "containers", "initContainers"
	for _, pc := range wp.containers {
		data, err := json.Marshal(pc.merged)
		if err != nil {
			return nil, err
		}
		var all map[string]any
		if err := json.Unmarshal(data, &all); err != nil {
			return nil, err
		}
		sc := map[string]any{}
		for _, f := range pc.fields {
			sc[f] = all[f]
		}
		if caps, ok := sc["capabilities"].(map[string]any); ok && pc.today != nil && pc.today.Capabilities != nil {
			if _, adds := caps["add"]; !adds && len(pc.today.Capabilities.Add) > 0 {
				caps["add"] = nil
			}
		}
		lists[pc.list()] = append(lists[pc.list()], map[string]any{"name": pc.Container, "securityContext": sc})
	}
	patch := map[string]any{}
	for list, items := range lists {
		patch[list] = items
	}
	path := wp.workload.path
	for i := len(path) - 1; i >= 0; i-- {
		patch = map[string]any{path[i]: patch}
	}
	return patch, nil
}

// jsonPatch is the RFC 6902 patch: per container, a test that the index
// still holds the container of that name, and an add (which replaces an
// existing member) of its whole new securityContext.
func jsonPatch(wp *workloadPatch) []map[string]any {
	var ops []map[string]any
	for _, pc := range wp.containers {
		base := "/" + strings.Join(wp.workload.path, "/") + "/" + pc.list() + "/" + strconv.Itoa(pc.Index)
		ops = append(ops,
			map[string]any{"op": "test", "path": base + "/name", "value": pc.Container},
			map[string]any{"op": "add", "path": base + "/securityContext", "value": pc.merged})
	}
	return ops
}

// writeKubectlPatch writes a strategic merge patch or a JSON patch as YAML,
// headed by the kubectl command that applies it.
func writeKubectlPatch(w io.Writer, wp *workloadPatch, format string) error {
	var body any
	kubectlType := "json"
	if format == "strategic" {
		kubectlType = "strategic"
		p, err := podSpecPatch(wp)
		if err != nil {
			return err
		}
		body = p
	} else {
		body = jsonPatch(wp)
	}
	data, err := sigsyaml.Marshal(body)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "# %s\n", kubectlCommand(wp, kubectlType, "THIS_DOCUMENT"))
	_, err = w.Write(data)
	return err
}

// kubectlCommand is the kubectl patch command for a workload's patch, on one
// line whatever the manifest names: a newline in a name would start YAML of
// its own in a header, or a line of its own on stderr.
func kubectlCommand(wp *workloadPatch, kubectlType, file string) string {
	ns := ""
	if wp.namespace != "" {
		ns = " -n " + wp.namespace
	}
	return escape.Text(fmt.Sprintf("kubectl patch %s %s%s --type %s --patch-file %s", strings.ToLower(wp.workload.Kind), wp.workload.Name, ns, kubectlType, file))
}

// writeKustomization writes a Kustomization that takes the manifest as its
// resource and patches each workload with a JSON 6902 patch.
func writeKustomization(w io.Writer, m *Manifest, patches []*workloadPatch) error {
	type target struct {
		Group     string `json:"group,omitempty"`
		Version   string `json:"version"`
		Kind      string `json:"kind"`
		Name      string `json:"name"`
		Namespace string `json:"namespace,omitempty"`
	}
	type patch struct {
		Target target `json:"target"`
		Patch  string `json:"patch"`
	}
	doc := struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Patches    []patch  `json:"patches"`
	}{APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization", Resources: []string{filepath.Base(m.Path)}}
	for _, wp := range patches {
		ops, err := sigsyaml.Marshal(jsonPatch(wp))
		if err != nil {
			return err
		}
		version := wp.workload.APIVersion
		g, v, ok := strings.Cut(version, "/")
		if !ok {
			g, v = "", version
		}
		doc.Patches = append(doc.Patches, patch{
			Target: target{Group: g, Version: v, Kind: wp.workload.Kind, Name: wp.workload.Name, Namespace: wp.workload.Namespace},
			Patch:  string(ops),
		})
	}
	data, err := sigsyaml.Marshal(doc)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "# %s\n", escape.Text(fmt.Sprintf("kustomization.yaml next to %s: capprof's advice as patches", filepath.Base(m.Path))))
	_, err = w.Write(data)
	return err
}

// Advised is a workload of a manifest with capprof's advice applied to its
// profiled containers, as patch writes it.
type Advised struct {
	// Workload is as the manifest has it, Applied with the advice.
	Workload, Applied *Workload
	// Namespace is the workload's, or its profile's when it names none.
	Namespace string
	// Containers are its profiled containers.
	Containers []Match
}

// Advise applies the advice to every workload with profiled containers, in
// file order.
func (m *Manifest) Advise(a *profile.Analysis) ([]Advised, error) {
	matching, err := m.Match(a)
	if err != nil {
		return nil, err
	}
	var out []Advised
	for _, wp := range plan(matching.Matches) {
		ad := Advised{Workload: wp.workload, Applied: wp.applied(), Namespace: wp.namespace}
		for _, pc := range wp.containers {
			ad.Containers = append(ad.Containers, pc.Match)
		}
		out = append(out, ad)
	}
	return out, nil
}
