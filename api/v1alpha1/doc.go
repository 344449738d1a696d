// Package v1alpha1 holds capprof's API types, capprof.dev/v1alpha1: the
// profile a recording writes (per container what it saw, and the
// verification capprof verify adds) and the CapabilityProfile object that
// holds one workload's profile in a cluster. They are plain data with their
// JSON forms; reading, validating, merging and analyzing profiles is
// package profile's.
//
// controller-gen writes the deep copies (zz_generated.deepcopy.go) and the
// CustomResourceDefinitions (deploy/helm/capprof/crds) from the kubebuilder markers;
// make generate runs it and CI fails when the committed output is stale.
//
// +kubebuilder:object:generate=true
// +groupName=capprof.dev
package v1alpha1

//go:generate go tool controller-gen object crd paths=. output:crd:dir=../../deploy/helm/capprof/crds
