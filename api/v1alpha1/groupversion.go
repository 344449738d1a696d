package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is capprof's API group and version.
var GroupVersion = schema.GroupVersion{Group: "capprof.dev", Version: "v1alpha1"}

// AddToScheme registers the cluster-mode objects (recordings, node results,
// profiles) with a scheme, for Kubernetes clients and controllers.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&CapabilityRecording{}, &CapabilityRecordingList{},
		&CapabilityNodeResult{}, &CapabilityNodeResultList{},
		&CapabilityProfile{}, &CapabilityProfileList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
