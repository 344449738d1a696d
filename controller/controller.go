// Package controller is capprof's cluster controller (capprof controller, a
// Deployment, one leader at a time through a Lease): it merges the node
// agents' CapabilityNodeResults of each CapabilityRecording into one
// CapabilityProfile per workload whenever a node reports, keeps the
// recording's status, and deletes the node results of a deleted recording.
// The profiles stay: they are what the user keeps.
package controller

// The controller's least privilege, which controller-gen writes as the
// ClusterRole capprof-controller (make generate); its Lease and events are
// granted in its own namespace (the Helm chart deploy/helm/capprof).
//
// +kubebuilder:rbac:groups=capprof.dev,resources=capabilityrecordings,verbs=get;list;watch
// +kubebuilder:rbac:groups=capprof.dev,resources=capabilityrecordings/status,verbs=update
// +kubebuilder:rbac:groups=capprof.dev,resources=capabilitynoderesults,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=capprof.dev,resources=capabilityprofiles,verbs=get;list;watch;create;update

//go:generate go tool controller-gen rbac:roleName=capprof-controller paths=. output:rbac:dir=../deploy/helm/capprof/files/rbac/controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/kube"
)

// Config is what capprof controller needs.
type Config struct {
	Kube kube.ClusterConfig
	// LeaderElection runs the controller only while it holds the Lease
	// LeaseName in LeaseNamespace: replicas stand by.
	LeaderElection bool
	LeaseNamespace string
	// FinalGrace is how long after a recording's end the agents' final
	// results are waited for before it is Complete without them.
	FinalGrace time.Duration
	Version    string
	Log        io.Writer
}

// LeaseName is the controller's Lease.
const LeaseName = "capprof-controller"

// Run merges until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	mgr, origin, err := kube.Manager(cfg.Kube, cfg.Log, manager.Options{
		LeaderElection:          cfg.LeaderElection,
		LeaderElectionID:        LeaseName,
		LeaderElectionNamespace: cfg.LeaseNamespace,
		// Let a standby take over at once when this one stops.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return err
	}
	r := &reconciler{client: mgr.GetClient(), cfg: cfg}
	err = ctrl.NewControllerManagedBy(mgr).Named("capprof").
		For(&v1alpha1.CapabilityRecording{}).
		// A node's new result is merged at once; one whose recording is
		// gone is deleted.
		Watches(&v1alpha1.CapabilityNodeResult{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			result, ok := o.(*v1alpha1.CapabilityNodeResult)
			if !ok {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: result.Namespace, Name: result.Spec.Recording}}}
		})).
		Complete(r)
	if err != nil {
		return err
	}
	go func() {
		<-mgr.Elected()
		fmt.Fprintf(cfg.Log, "capprof: controller merging CapabilityNodeResults (%s)\n", origin)
	}()
	return mgr.Start(ctx)
}

type reconciler struct {
	client client.Client
	cfg    Config
}

// Reconcile merges a recording's node results into its profiles and
// status; a recording that is gone has its node results deleted.
func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var rec v1alpha1.CapabilityRecording
	err := r.client.Get(ctx, req.NamespacedName, &rec)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	gone := apierrors.IsNotFound(err)
	var list v1alpha1.CapabilityNodeResultList
	if err := r.client.List(ctx, &list, client.InNamespace(req.Namespace)); err != nil {
		return reconcile.Result{}, err
	}
	var results []v1alpha1.CapabilityNodeResult
	var errs []error
	for i := range list.Items {
		result := &list.Items[i]
		switch {
		case result.Spec.Recording != req.Name:
		case !gone && result.Of(rec.UID):
			results = append(results, *result)
		default: // of a deleted recording, or of an earlier one of the same name
			if err := r.client.Delete(ctx, result); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete node result %s/%s: %w", result.Namespace, result.Name, err))
			}
		}
	}
	if gone || rec.DeletionTimestamp != nil {
		return reconcile.Result{}, errors.Join(errs...)
	}
	now := time.Now()
	merged, err := Merge(&rec, results, now, r.cfg.FinalGrace, r.cfg.Version)
	if err != nil {
		return reconcile.Result{}, reconcile.TerminalError(err)
	}
	for i := range merged.Profiles {
		if err := r.apply(ctx, &merged.Profiles[i], merged.Status.Phase == v1alpha1.RecordingComplete); err != nil {
			errs = append(errs, err)
		}
	}
	if !reflect.DeepEqual(rec.Status, merged.Status) {
		rec.Status = merged.Status
		if err := r.client.Status().Update(ctx, &rec); err != nil {
			errs = append(errs, fmt.Errorf("update the status of CapabilityRecording %s/%s: %w", rec.Namespace, rec.Name, err))
		}
	}
	var result reconcile.Result
	if !merged.Recheck.IsZero() {
		result.RequeueAfter = max(merged.Recheck.Sub(now), 0) + 100*time.Millisecond
	}
	err = errors.Join(errs...)
	if err != nil && allConflicts(errs) {
		// An object changed since the cache saw it: merged again once the
		// cache has the change, which its event brings.
		return reconcile.Result{RequeueAfter: conflictRetry}, nil
	}
	return result, err
}

// conflictRetry is how soon a reconcile whose writes conflicted runs again.
const conflictRetry = 200 * time.Millisecond

// allConflicts reports whether every error is a write conflict.
func allConflicts(errs []error) bool {
	for _, err := range errs {
		if !apierrors.IsConflict(err) {
			return false
		}
	}
	return true
}

// endTimeRefresh is how stale a profile's recording end time may grow
// while only it changes: every node's flush moves it, and rewriting every
// profile of a recording at each would be most of the controller's writes.
const endTimeRefresh = time.Minute

// apply creates the profile, or updates it when it changed (see update).
func (r *reconciler) apply(ctx context.Context, want *v1alpha1.CapabilityProfile, final bool) error {
	var have v1alpha1.CapabilityProfile
	err := r.client.Get(ctx, client.ObjectKeyFromObject(want), &have)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.client.Create(ctx, want); err != nil {
			return fmt.Errorf("create CapabilityProfile %s/%s: %w", want.Namespace, want.Name, err)
		}
		return nil
	case err != nil:
		return err
	}
	updated, ok := update(&have, want, final)
	if !ok {
		return nil
	}
	have = *updated
	if err := r.client.Update(ctx, &have); err != nil {
		return fmt.Errorf("update CapabilityProfile %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// update is the profile have becomes to say what want says, the user's own
// labels kept; false when it need not be written: nothing changed, or only
// its end time, by less than endTimeRefresh, while the recording is not
// complete (final).
func update(have, want *v1alpha1.CapabilityProfile, final bool) (*v1alpha1.CapabilityProfile, bool) {
	labels := maps.Clone(have.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, want.Labels)
	out := have.DeepCopy()
	out.Spec, out.Status, out.Labels = want.Spec, want.Status, labels
	haveEnd, wantEnd := have.Spec.Recording.EndTime.Time, want.Spec.Recording.EndTime.Time
	sameButEnd := have.DeepCopy()
	sameButEnd.Spec.Recording.EndTime = want.Spec.Recording.EndTime
	if reflect.DeepEqual(sameButEnd.Spec, want.Spec) && reflect.DeepEqual(have.Status, want.Status) && maps.Equal(have.Labels, labels) &&
		(haveEnd.Equal(wantEnd) || !final && wantEnd.Sub(haveEnd) < endTimeRefresh) {
		return nil, false
	}
	return out, true
}
