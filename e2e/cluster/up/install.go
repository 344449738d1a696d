package main

import (
	"context"
	"fmt"
	"os"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capprof/capprof/e2e/cluster"
)

// capprofSelector selects the objects and pods of capprof's chart.
const capprofSelector = "app.kubernetes.io/name=capprof"

// playInstall imports capprof's image archive (make image) into the
// runtime and plays what Kubernetes would do once deploy/capprof.yaml or
// the Helm chart is applied: the DaemonSet controller makes an agent pod
// from the DaemonSet's template on each node, the Deployment controller
// the controller's pods, and each node's kubelet runs its pods.
func playInstall(ctx context.Context, c *cluster.Cluster, nodes []string, image string) error {
	if err := c.ImportImage(ctx, image); err != nil {
		return err
	}
	for _, node := range nodes {
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		go func() {
			if err := c.Kubelet(ctx, node, capprofSelector); err != nil {
				fmt.Fprintf(os.Stderr, "up: kubelet of %s: %v\n", node, err)
			}
		}()
	}
	go func() {
		for {
			if err := makePods(ctx, c, nodes); err != nil {
				fmt.Fprintf(os.Stderr, "up: %v\n", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "up: imported %s; capprof's DaemonSet and Deployment run once applied (kubectl apply --server-side -f deploy/capprof.yaml)\n", image)
	return nil
}

// makePods creates the pods that capprof's DaemonSets and Deployments lack:
// one per node for a DaemonSet, the replicas on the first nodes for a
// Deployment.
func makePods(ctx context.Context, c *cluster.Cluster, nodes []string) error {
	list := metav1.ListOptions{LabelSelector: capprofSelector}
	daemonSets, err := c.Client.AppsV1().DaemonSets("").List(ctx, list)
	if err != nil {
		return err
	}
	for _, ds := range daemonSets.Items {
		for _, node := range nodes {
			if err := ensurePod(ctx, c, ds.Namespace, ds.Name+"-"+node, node, ds.Spec.Template, ownerOf(&ds, "DaemonSet")); err != nil {
				return err
			}
		}
	}
	deployments, err := c.Client.AppsV1().Deployments("").List(ctx, list)
	if err != nil {
		return err
	}
	for _, d := range deployments.Items {
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		for i := range min(replicas, len(nodes)) {
			if err := ensurePod(ctx, c, d.Namespace, fmt.Sprintf("%s-%d", d.Name, i), nodes[i], d.Spec.Template, ownerOf(&d, "Deployment")); err != nil {
				return err
			}
		}
	}
	return nil
}

func ownerOf(obj metav1.Object, kind string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: kind, Name: obj.GetName(), UID: obj.GetUID(), Controller: new(true)}
}

// ensurePod creates a pod of a template bound to node unless it exists;
// the node's kubelet runs it.
func ensurePod(ctx context.Context, c *cluster.Cluster, namespace, name, node string, template corev1.PodTemplateSpec, owner metav1.OwnerReference) error {
	pod := cluster.PodFromTemplate(namespace, name, template, owner)
	pod.Spec.NodeName = node
	_, err := c.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
