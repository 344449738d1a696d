// Package yamlguard refuses YAML whose aliases would expand it beyond a
// bound before anything expands it. A few hundred kilobytes with one long
// string referenced by thousands of aliases ("billion laughs") decode to
// gigabytes: capprof reads profiles and manifests from pull requests, so
// such a file must get a one-line error, not exhaust memory.
package yamlguard

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Limit is how large a document may grow through aliases: four times its
// own size, plus 16 MiB, so that ordinary anchors (a shared list of
// tolerations, env or ports) always pass.
func Limit(size int) int64 { return 4*int64(size) + 16<<20 }

// Check parses every document of data, which expands no alias, and fails
// if expanding them would make one larger than Limit(len(data)), or if an
// alias refers to a node that contains it. It says nothing of other YAML
// errors: the caller's decoder reports those as usual.
func Check(data []byte) error {
	limit := Limit(len(data))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // not YAML: the caller's decoder says how
		}
		if err := CheckNode(&doc, limit); err != nil {
			return err
		}
	}
}

// CheckNode fails if expanding n's aliases would make it larger than limit
// bytes (about: each scalar's length and a little for each node).
func CheckNode(n *yaml.Node, limit int64) error {
	s := sizer{sizes: map[*yaml.Node]int64{}, open: map[*yaml.Node]bool{}}
	size, err := s.size(n)
	if err != nil {
		return err
	}
	if size > limit {
		return fmt.Errorf("YAML aliases expand the document to more than %d MiB (%d aliases): refused", limit>>20, s.aliases)
	}
	return nil
}

type sizer struct {
	sizes   map[*yaml.Node]int64 // expanded size, once known
	open    map[*yaml.Node]bool  // being sized: an alias to one is a cycle
	aliases int
}

// nodeCost stands for what a node costs beyond its scalar's bytes.
const nodeCost = 8

// saturated keeps sums from overflowing: anything this large is refused.
const saturated = int64(1) << 60

func (s *sizer) size(n *yaml.Node) (int64, error) {
	if n == nil {
		return 0, nil
	}
	if size, ok := s.sizes[n]; ok {
		return size, nil
	}
	if s.open[n] {
		return 0, fmt.Errorf("YAML alias *%s at line %d refers to a node that contains it: refused", n.Value, n.Line)
	}
	s.open[n] = true
	defer delete(s.open, n)
	size := int64(nodeCost + len(n.Value))
	if n.Kind == yaml.AliasNode {
		s.aliases++
		inner, err := s.size(n.Alias)
		if err != nil {
			return 0, err
		}
		size = min(saturated, size+inner)
	}
	for _, c := range n.Content {
		inner, err := s.size(c)
		if err != nil {
			return 0, err
		}
		size = min(saturated, size+inner)
	}
	s.sizes[n] = size
	return size, nil
}
