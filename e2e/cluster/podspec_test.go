package cluster

import (
	"slices"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestExpandAll(t *testing.T) {
	env := []*runtimeapi.KeyValue{{Key: "NODE_NAME", Value: []byte("node-a")}, {Key: "EMPTY"}}
	got := expandAll([]string{"--events=/var/log/events-$(NODE_NAME).log", "$(MISSING)", "$$(NODE_NAME)", "a$", "$(EMPTY)x", "$(unclosed", "$$$(NODE_NAME)"}, env)
	want := []string{"--events=/var/log/events-node-a.log", "$(MISSING)", "$(NODE_NAME)", "a$", "x", "$(unclosed", "$node-a"}
	if !slices.Equal(got, want) {
		t.Errorf("expandAll = %q, want %q", got, want)
	}
}
