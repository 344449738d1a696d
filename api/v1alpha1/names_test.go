package v1alpha1_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/capprof/capprof/api/v1alpha1"
)

func TestObjectNames(t *testing.T) {
	long := strings.Repeat("a", 230) + "." + strings.Repeat("b", 22)
	tests := []struct {
		name, got, other, prefix string // other: the name of a longer input, which must differ
	}{
		{"short profile", v1alpha1.ProfileName(v1alpha1.Owner{Kind: "StatefulSet", Name: "db"}), "", "statefulset-db"},
		{"long profile", v1alpha1.ProfileName(v1alpha1.Owner{Kind: "Deployment", Name: long}),
			v1alpha1.ProfileName(v1alpha1.Owner{Kind: "Deployment", Name: long + "c"}), "deployment-aaa"},
		{"short node result", v1alpha1.NodeResultName("web", "node-a", nil), "", "web.node-a"},
		{"long node result", v1alpha1.NodeResultName(long, "node-a", nil), v1alpha1.NodeResultName(long, "node-b", nil), "aaa"},
		{"workload's node result", v1alpha1.NodeResultName("web", "node-a", &v1alpha1.Owner{Kind: "Deployment", Name: "api"}), "", "web.node-a.deployment-api"},
	}
	for _, tc := range tests {
		if errs := validation.IsDNS1123Subdomain(tc.got); len(errs) > 0 {
			t.Errorf("%s: %q is not an object name: %v", tc.name, tc.got, errs)
		}
		if !strings.HasPrefix(tc.got, tc.prefix) {
			t.Errorf("%s: %q, want it to start %q", tc.name, tc.got, tc.prefix)
		}
		if tc.other != "" && tc.other == tc.got {
			t.Errorf("%s: two inputs share the name %q", tc.name, tc.got)
		}
	}
}
