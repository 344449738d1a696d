// Command up starts the e2e harness (etcd, kube-apiserver, containerd on
// loopback; see package cluster) for trying capprof's cluster mode by hand,
// and keeps it until Ctrl-C. It prints the admin kubeconfig. With -demo it
// plays a Deployment "web" in namespace "demo" with a replica on each of
// -nodes, each doing different privileged work when it starts: once a
// CapabilityRecording exists in that namespace, it runs the replicas, as
// a rollout would after `capprof record --cluster`. With -install ARCHIVE
// it imports capprof's image (make image) and, once deploy/capprof.yaml or
// the Helm chart is applied, runs the agent's DaemonSet pods on every node
// and the controller's pods, from their own pod specs (playInstall). The
// README's cluster sessions were run against it:
//
//	sudo go run ./e2e/cluster/up -apiserver .cache/k8s/v1.37.2/kube-apiserver -busybox .cache/busybox/busybox -demo
//	sudo go run ./e2e/cluster/up -apiserver .cache/k8s/v1.37.2/kube-apiserver -busybox .cache/busybox/busybox -demo -install bin/capprof-image.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/kube"
)

// demoWork is what each demo replica does at its start, by node, before it
// sleeps: a capability each.
var demoWork = []string{"/workload bind80", "/workload chown /tmp/owned", "/workload setuid"}

func main() {
	apiserver := flag.String("apiserver", "", "kube-apiserver binary (make e2e-deps)")
	busybox := flag.String("busybox", "", "static busybox (make e2e-deps)")
	nodes := flag.String("nodes", "node-a,node-b,node-c", "the nodes the harness plays, comma-separated")
	demo := flag.Bool("demo", false, "play the demo Deployment web in namespace demo")
	image := flag.String("install", "", "import capprof's image `ARCHIVE` (make image) and run capprof's DaemonSet and Deployment once applied")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *apiserver, *busybox, strings.Split(*nodes, ","), *demo, *image); err != nil {
		fmt.Fprintf(os.Stderr, "up: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, apiserver, busybox string, nodes []string, demo bool, image string) error {
	dir, err := os.MkdirTemp("", cluster.DirPrefix)
	if err != nil {
		return err
	}
	defer cluster.Cleanup(dir)
	workload := filepath.Join(dir, "workload")
	build := exec.Command("go", "build", "-o", workload, "./e2e/workload")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the static workload: %v: %s", err, out)
	}
	c, err := cluster.Start(ctx, cluster.Config{Dir: dir, APIServer: apiserver, Busybox: busybox, Workload: workload, Node: nodes[0],
		Log: io.Discard})
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Printf("export KUBECONFIG=%s\n", c.Kubeconfig)
	if image != "" {
		if err := playInstall(ctx, c, nodes, image); err != nil {
			return err
		}
	}
	if demo {
		if err := playDemo(ctx, c, nodes); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// playDemo waits for a CapabilityRecording in namespace demo, then runs
// the Deployment's replicas, one per node.
func playDemo(ctx context.Context, c *cluster.Cluster, nodes []string) error {
	const ns = "demo"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	labels := map[string]string{"app": "web"}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: cluster.ImageName}}}}
	d, err := c.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: new(int32(len(nodes))), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	rs, err := c.Client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f7c9b6",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: new(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	cl, _, _, err := kube.Client(kube.ClusterConfig{Kubeconfig: c.Kubeconfig})
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "up: the demo's replicas run once a CapabilityRecording exists in namespace demo")
	for {
		var list v1alpha1.CapabilityRecordingList
		if err := cl.List(ctx, &list, client.InNamespace(ns)); err == nil && len(list.Items) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	time.Sleep(5 * time.Second) // the agents arm it
	for i, node := range nodes {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("web-5d8f7c9b6-%s", node), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: new(true)}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: cluster.ImageName,
				Command: []string{"/bin/sh", "-c", demoWork[i%len(demoWork)] + "; exec /bin/sleep 100000"}}}}}
		if _, err := c.RunPod(ctx, pod, cluster.OnNode(node)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "up: ran pod %s/%s on %s\n", ns, pod.Name, node)
	}
	return nil
}
