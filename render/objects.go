package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/capprof/capprof/api/v1alpha1"
)

// ObjectFormats are the values of export -o.
var ObjectFormats = []string{"yaml", "json"}

// Objects writes CapabilityProfile objects for kubectl apply -f: YAML
// documents, or a JSON List (kubectl's own -o json of several objects).
func Objects(w io.Writer, objects []v1alpha1.CapabilityProfile, format string) error {
	var out bytes.Buffer
	switch format {
	case "yaml":
		for i := range objects {
			data, err := yaml.Marshal(&objects[i])
			if err != nil {
				return fmt.Errorf("write capabilityprofile %s/%s: %w", objects[i].Namespace, objects[i].Name, err)
			}
			out.WriteString("---\n")
			out.Write(data)
		}
	case "json":
		list := struct {
			APIVersion string                       `json:"apiVersion"`
			Kind       string                       `json:"kind"`
			Items      []v1alpha1.CapabilityProfile `json:"items"`
		}{"v1", "List", objects}
		if list.Items == nil {
			list.Items = []v1alpha1.CapabilityProfile{}
		}
		data, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return fmt.Errorf("write capabilityprofiles: %w", err)
		}
		out.Write(append(data, '\n'))
	default:
		return fmt.Errorf("unknown output format %q (valid: %s)", format, strings.Join(ObjectFormats, ", "))
	}
	_, err := out.WriteTo(w)
	return err
}
