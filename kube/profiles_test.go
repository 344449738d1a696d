package kube

import (
	"strings"
	"testing"

	"github.com/capprof/capprof/api/v1alpha1"
)

func TestParseWorkload(t *testing.T) {
	for _, tt := range []struct {
		ref  string
		want v1alpha1.Owner
		err  string
	}{
		{ref: "deploy/web", want: v1alpha1.Owner{Kind: "Deployment", Name: "web"}},
		{ref: "deployment.apps/web", want: v1alpha1.Owner{Kind: "Deployment", Name: "web"}},
		{ref: "StatefulSet/db", want: v1alpha1.Owner{Kind: "StatefulSet", Name: "db"}},
		{ref: "cj/backup", want: v1alpha1.Owner{Kind: "CronJob", Name: "backup"}},
		{ref: "po/xwing", want: v1alpha1.Owner{Kind: "Pod", Name: "xwing"}},
		{ref: "rollout/web", want: v1alpha1.Owner{Kind: "rollout", Name: "web"}},
		{ref: "web", err: `workload "web": want KIND/NAME`},
		{ref: "deploy/", err: `want KIND/NAME`},
		{ref: "deploy/Web!", err: `workload "deploy/Web!": name "Web!": a lowercase RFC 1123 subdomain`},
		{ref: "de ploy/web", err: `kind "de ploy": not a kind`},
	} {
		got, err := ParseWorkload(tt.ref)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseWorkload(%q) error %v, want %q", tt.ref, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseWorkload(%q) = %v, %v; want %v", tt.ref, got, err, tt.want)
		}
	}
}
