package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// CapabilityRecording asks capprof's node agents to record workloads of its
// namespace: a workload or the pods a selector matches, on every node they
// run on. The agents write what they saw as CapabilityNodeResults; the
// controller merges those into one CapabilityProfile per workload while the
// recording runs, and reports progress in the status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=caprec,categories=capprof
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`,description="Pending, Recording or Complete"
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.pods.observed`,description="Pods recorded"
// +kubebuilder:printcolumn:name="From Start",type=integer,JSONPath=`.status.pods.fromStart`,description="Pods recorded from their containers' first instruction"
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodeCount`,description="Nodes whose agents reported"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CapabilityRecording struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec cannot change once created: the agents record what it said.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a recording's spec cannot change: delete the recording and create another"
	Spec CapabilityRecordingSpec `json:"spec"`
	// +optional
	Status CapabilityRecordingStatus `json:"status,omitempty"`
}

// CapabilityRecordingSpec says what to record and for how long.
//
// +kubebuilder:validation:XValidation:rule="has(self.workload) != has(self.selector)",message="give exactly one of workload and selector"
type CapabilityRecordingSpec struct {
	// Workload is the workload whose pods are recorded: kind and name, as
	// its pods' owner references lead to it (a Deployment, not its
	// ReplicaSet).
	// +optional
	Workload *WorkloadRef `json:"workload,omitempty"`
	// Selector chooses the pods to record by their labels, whatever their
	// workloads; each workload still gets a profile of its own.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Containers chooses containers by name within the pods; all when
	// absent.
	// +optional
	Containers *ContainerFilter `json:"containers,omitempty"`
	// Duration is how long to record, from the recording's creation (a Go
	// duration: "2h", "90m"); until the recording is deleted when absent.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration, like 2h"
	Duration *metav1.Duration `json:"duration,omitempty"`
	// StartupWindow is how long after a container's start its checks are
	// in the startup phase (record --startup).
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must not be negative"
	StartupWindow *metav1.Duration `json:"startupWindow,omitempty"`
}

// End is when the recording's duration is over; false when it has none.
func (r *CapabilityRecording) End() (time.Time, bool) {
	if r.Spec.Duration == nil {
		return time.Time{}, false
	}
	return r.CreationTimestamp.Add(r.Spec.Duration.Duration), true
}

// WorkloadRef names a workload in the recording's namespace.
type WorkloadRef struct {
	// Kind is the workload's kind: Deployment, StatefulSet, DaemonSet,
	// Job, CronJob, ReplicaSet, Pod, or a custom controller's.
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z0-9]{0,62}$`
	Kind string `json:"kind"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ContainerFilter keeps containers by name: those in Include, or all but
// those in Exclude (a sidecar whose capabilities are another team's).
//
// +kubebuilder:validation:XValidation:rule="!(has(self.include) && has(self.exclude))",message="give include or exclude, not both"
type ContainerFilter struct {
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	Include []string `json:"include,omitempty"`
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	Exclude []string `json:"exclude,omitempty"`
}

// Keeps reports whether the filter keeps a container of this name.
func (f *ContainerFilter) Keeps(name string) bool {
	switch {
	case f == nil:
		return true
	case len(f.Include) > 0:
		return slices.Contains(f.Include, name)
	}
	return !slices.Contains(f.Exclude, name)
}

// RecordingUIDLabel is on a CapabilityNodeResult: the uid of its
// recording, so that a later recording of the same name does not take an
// earlier one's results for its own.
const RecordingUIDLabel = "capprof.dev/recording-uid"

// Of reports whether the result is of the recording with this uid, not of
// an earlier one of the same name.
func (r *CapabilityNodeResult) Of(recording types.UID) bool {
	return r.Labels[RecordingUIDLabel] == string(recording)
}

// RecordingLabel is on a CapabilityProfile a recording produced: the
// recording's name, when it fits a label value.
const RecordingLabel = "capprof.dev/recording"

// RecordingPhase is where a recording is in its life.
// +kubebuilder:validation:Enum=Pending;Recording;Complete
type RecordingPhase string

// Recording phases.
const (
	// RecordingPending: no agent has armed it yet.
	RecordingPending RecordingPhase = "Pending"
	// RecordingRecording: agents record its pods.
	RecordingRecording RecordingPhase = "Recording"
	// RecordingComplete: its duration has passed and every agent's last
	// result is merged.
	RecordingComplete RecordingPhase = "Complete"
)

// Condition types of a CapabilityRecording.
const (
	// ConditionRecording is true while agents record.
	ConditionRecording = "Recording"
	// ConditionComplete is true once the duration has passed and the
	// profiles hold everything the agents reported.
	ConditionComplete = "Complete"
	// ConditionDegraded is true when something was not recorded: a pod
	// joined late, an agent restarted with a gap, a node without an agent.
	// Its message says what.
	ConditionDegraded = "Degraded"
)

// CapabilityRecordingStatus is the controller's account of a recording.
type CapabilityRecordingStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	Phase RecordingPhase `json:"phase,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +optional
	Pods RecordingPods `json:"pods,omitempty"`
	// NodeCount is how many nodes' agents reported results.
	// +optional
	NodeCount int32 `json:"nodeCount,omitempty"`
	// Profiles are the CapabilityProfiles the recording produced, by name.
	// +optional
	// +listType=set
	Profiles []string `json:"profiles,omitempty"`
}

// RecordingPods counts the pods a recording saw.
type RecordingPods struct {
	// Observed pods had at least one container recorded.
	Observed int32 `json:"observed"`
	// FromStart pods had every recorded container instance recorded from
	// its first instruction: their startup is in the profile.
	FromStart int32 `json:"fromStart"`
	// Partial pods had a container instance joined late, or ran on a node
	// whose agent was down for a while (a pod can be from start and
	// partial).
	Partial int32 `json:"partial"`
}

// CapabilityRecordingList is a list of CapabilityRecordings.
//
// +kubebuilder:object:root=true
type CapabilityRecordingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CapabilityRecording `json:"items"`
}

// CapabilityNodeResult is what one node's agent recorded for one
// recording. A node writes one result of its own, which says how and since
// when it recorded (its gaps, its drops, whether it is final) and holds no
// containers, and one per workload whose pods ran on it, which holds that
// workload's containers merged over its pods there: so an object's size is
// bounded by one workload's containers, whatever the node runs, and a
// result no pod changed is not written again. Only that node's agent writes
// them (the admission policy of capprof's Helm chart holds agents to their
// own node), and the recording owns them, so they outlive the pods and go with
// the recording.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=capnode,categories=capprof
// +kubebuilder:printcolumn:name="Recording",type=string,JSONPath=`.spec.recording`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="Workload",type=string,JSONPath=`.spec.workload.name`
// +kubebuilder:printcolumn:name="Updated",type=date,JSONPath=`.spec.updateTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CapabilityNodeResult struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CapabilityNodeResultSpec `json:"spec"`
}

// CapabilityNodeResultSpec is a node's part of a recording.
type CapabilityNodeResultSpec struct {
	// Recording is the CapabilityRecording's name, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="recording is immutable"
	Recording string `json:"recording"`
	// Node is the node the agent runs on.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="node is immutable"
	Node string `json:"node"`
	// Workload is the workload whose containers the result holds; absent
	// on the node's own result.
	// +optional
	Workload *Owner `json:"workload,omitempty"`
	// UpdateTime is when the agent last wrote the result.
	UpdateTime Time `json:"updateTime"`
	// Session names the agent process that wrote the result: a restarted
	// agent writes another, so the controller knows its counts began anew.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Session string `json:"session"`
	// Recorded says how, where and since when the node recorded; its gaps
	// are the times the node's agent was down, from the previous session's
	// last write to the next session's start.
	Recorded Metadata `json:"recorded"`
	// Final is set on the node's own result by the agent's last write, when
	// the recording's duration has passed: the node's results will not
	// change any more.
	// +optional
	Final bool `json:"final,omitempty"`
	// Containers are the workload's containers on the node, merged per
	// container name; none on the node's own result.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	Containers []Container `json:"containers"`
}

// CapabilityNodeResultList is a list of CapabilityNodeResults.
//
// +kubebuilder:object:root=true
type CapabilityNodeResultList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CapabilityNodeResult `json:"items"`
}

// NodeResultName is the name of a node's own result of a recording,
// "<recording>.<node>", or with a workload of the result of its containers
// there, "<recording>.<node>.<kind>-<name>"; cut and hashed when longer
// than a name may be.
func NodeResultName(recording, node string, workload *Owner) string {
	name := recording + "." + node
	if workload != nil {
		name += "." + strings.ToLower(workload.Kind) + "-" + workload.Name
	}
	return boundedName(name)
}

// boundedName keeps a DNS subdomain name to the length Kubernetes allows:
// a longer one keeps its start and ends with a hash of the whole.
func boundedName(name string) string {
	if len(name) <= validation.DNS1123SubdomainMaxLength {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	// A cut name may end in a dot or a dash, which may not end a part of it.
	return strings.TrimRight(name[:validation.DNS1123SubdomainMaxLength-17], ".-") + "-" + hex.EncodeToString(sum[:8])
}
