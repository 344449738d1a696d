package v1alpha1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels on a CapabilityProfile name its workload, for kubectl get -l;
// the name label is left out when the workload's name is too long for a
// label value.
const (
	WorkloadKindLabel = "capprof.dev/workload-kind"
	WorkloadNameLabel = "capprof.dev/workload-name"
)

// ProfileName is the name of a workload's CapabilityProfile: its kind in
// lower case and its name, "deployment-web", so that a Deployment and a
// StatefulSet of the same name do not share one. A name too long for a
// Kubernetes object keeps its start and ends with a hash of the whole.
func ProfileName(workload Owner) string {
	return boundedName(strings.ToLower(workload.Kind) + "-" + workload.Name)
}

// CapabilityProfile is one workload's profile as a Kubernetes object: the
// containers of one workload in one namespace, what they did, and the
// recording they came from. capprof's cluster mode stores profiles this way;
// `kubectl get capabilityprofile web -o yaml` gives a file that capprof
// analyze, patch and diff read like a recorded profile.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=capprofile,categories=capprof
// +kubebuilder:printcolumn:name="Required",type=string,JSONPath=`.status.required`,description="The capabilities each container needs"
// +kubebuilder:printcolumn:name="Pod Security",type=string,JSONPath=`.status.podSecurity`,description="The Pod Security level the advice meets"
// +kubebuilder:printcolumn:name="Coverage",type=string,JSONPath=`.status.coverage`,description="How many container instances were recorded from their start"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CapabilityProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CapabilityProfileSpec `json:"spec"`
	// Status sums up the spec for kubectl get; capprof computes it anew
	// from the spec whenever it reads a profile.
	// +optional
	Status CapabilityProfileStatus `json:"status,omitempty"`
}

// CapabilityProfileSpec is what was recorded of one workload.
type CapabilityProfileSpec struct {
	// Workload is the workload the containers belong to: a Deployment, a
	// StatefulSet, a bare Pod; absent for a command's recording.
	// +optional
	Workload *Owner `json:"workload,omitempty"`
	// Recording says how, where and when the containers were recorded.
	Recording Metadata `json:"recording"`
	// Containers are the workload's containers, each with what it did.
	// +listType=atomic
	Containers []Container `json:"containers"`
}

// CapabilityProfileStatus is the profile in three columns.
type CapabilityProfileStatus struct {
	// Required is, per container, the capabilities the advice adds:
	// "app=NET_BIND_SERVICE,SETUID sidecar=none".
	// +optional
	Required string `json:"required,omitempty"`
	// PodSecurity is the strictest Pod Security Standard level a pod with
	// the advised securityContexts meets: restricted, baseline or privileged.
	// +optional
	PodSecurity string `json:"podSecurity,omitempty"`
	// Coverage is how many container instances were recorded from their
	// first instruction: "3/4 from start".
	// +optional
	Coverage string `json:"coverage,omitempty"`
}

// CapabilityProfileList is a list of CapabilityProfiles, as the API and
// kubectl get without a name return them.
//
// +kubebuilder:object:root=true
type CapabilityProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CapabilityProfile `json:"items"`
}
