// Package v1alpha1 holds capprof's API types, capprof.dev/v1alpha1: the
// CapabilityProfile a recording writes, per container what it saw, and the
// verification capprof verify adds. They are plain data with their JSON
// forms; reading, validating, merging and analyzing profiles is package
// profile's.
//
// +groupName=capprof.dev
package v1alpha1
