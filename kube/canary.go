package kube

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CreatePod creates a pod (verify's canaries) and returns it as the API
// server stored it.
func (s *APISource) CreatePod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	created := &corev1.Pod{}
	if err := s.core.Post().Namespace(pod.Namespace).Resource("pods").Body(pod).Do(ctx).Into(created); err != nil {
		return nil, s.apiError("create", "pods", pod.Namespace, err)
	}
	return created, nil
}

// ListPods lists the pods of a namespace that match a label selector.
func (s *APISource) ListPods(ctx context.Context, namespace, labelSelector string) ([]corev1.Pod, error) {
	list, err := s.list(ctx, namespace, metav1.ListOptions{LabelSelector: labelSelector})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// DeletePod deletes a pod at once (grace period 0): a canary has nothing
// to shut down gracefully for. A pod already gone is no error.
func (s *APISource) DeletePod(ctx context.Context, namespace, name string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	now := int64(0)
	err := s.core.Delete().Namespace(namespace).Resource("pods").Name(name).Body(&metav1.DeleteOptions{GracePeriodSeconds: &now}).Do(ctx).Error()
	if err != nil && !apierrors.IsNotFound(err) {
		return s.apiError("delete", "pods", namespace, err)
	}
	return nil
}
