// Command cluster measures capprof's cluster mode at scale on the e2e
// harness (a real kube-apiserver, etcd and containerd on loopback): how
// long the controller takes to merge a recording of many pods on many
// nodes, from cold and after one node's change; how large the objects are;
// and the controller's and an agent's peak memory, the agent recording a
// node full of pods. `make bench` runs it (as root, for the agent) after
// the overhead benchmark; it prints a table and writes the figures as JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/internal/outfile"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/profile"
)

// Report is what the run measured; the JSON file has it whole.
type Report struct {
	Nodes, Pods, ContainersPerPod, Workloads int
	// ConvergeColdSeconds: from the controller's start until every profile
	// and the recording's status hold every node's results.
	ConvergeColdSeconds float64
	// ConvergeChangeSeconds: from one node result's update until its
	// workload's profile shows it.
	ConvergeChangeSeconds float64
	// Largest objects, as JSON bytes, and all node results together.
	NodeResultBytes, ProfileBytes, NodeResultBytesTotal int
	ControllerPeakRSSMiB                                float64
	// The agent recording AgentPods pods of their own workloads on its node.
	AgentPods       int
	AgentPeakRSSMiB float64
	// Its results: how many, the largest and all together, as JSON bytes.
	AgentNodeResults, AgentNodeResultBytes, AgentNodeResultBytesTotal int
	// MixPods pods of a realistic mix for MixSeconds, under each tool.
	MixPods, MixSeconds int
	Mix                 []MixRun
	// AgentHeapProfile is the mix's agent's heap profile at the end of its
	// window (go tool pprof -top BINARY FILE).
	AgentHeapProfile string `json:",omitempty"`
}

func main() {
	capprofBin := flag.String("capprof", "bin/capprof", "capprof binary")
	apiserver := flag.String("apiserver", "", "kube-apiserver binary (make e2e-deps)")
	busybox := flag.String("busybox", "", "static busybox (make e2e-deps)")
	workload := flag.String("workload", "", "static e2e/workload binary")
	template := flag.String("template", "render/testdata/web.json", "a profile whose first container every simulated container copies")
	crds := flag.String("crds", "deploy/helm/capprof/crds", "the CRDs")
	jsonOut := flag.String("json", "bin/bench-cluster.json", "where to write the JSON report")
	nodes := flag.Int("nodes", 30, "simulated nodes")
	pods := flag.Int("pods", 300, "simulated pods, spread evenly over the nodes, one replica of each workload per node")
	containers := flag.Int("containers", 3, "containers per pod")
	agentPods := flag.Int("agent-pods", 110, "pods on the agent's node (the kubelet's default maximum: 110)")
	mixPods := flag.Int("mix-pods", 100, "pods running the mix at once on the agent's node (0 skips it)")
	mixSeconds := flag.Int("mix-seconds", 60, "how long each mix pod works")
	flag.Parse()
	r := &Report{Nodes: *nodes, Pods: *pods, ContainersPerPod: *containers, AgentPods: *agentPods, MixPods: *mixPods, MixSeconds: *mixSeconds}
	if r.MixPods > 0 {
		r.AgentHeapProfile = filepath.Join(filepath.Dir(*jsonOut), "agent-heap.pprof")
	}
	if err := run(r, *capprofBin, *apiserver, *busybox, *workload, *template, *crds); err != nil {
		fmt.Fprintf(os.Stderr, "bench cluster: %v\n", err)
		os.Exit(1)
	}
	printReport(os.Stdout, r)
	data, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = outfile.Write("-json", *jsonOut, os.Stdout, func(w io.Writer) error { _, err := w.Write(append(data, '\n')); return err })
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench cluster: %v\n", err)
		os.Exit(1)
	}
}

func run(r *Report, capprofBin, apiserver, busybox, workload, template, crds string) error {
	if r.Pods%r.Nodes != 0 {
		return fmt.Errorf("-pods %d is not a multiple of -nodes %d", r.Pods, r.Nodes)
	}
	tmpl, err := profile.Load(template)
	if err != nil || len(tmpl.Containers) == 0 {
		return fmt.Errorf("-template: %v", err)
	}
	dir, err := os.MkdirTemp("", cluster.DirPrefix)
	if err != nil {
		return err
	}
	ctx := context.Background()
	c, err := cluster.Start(ctx, cluster.Config{Dir: dir, APIServer: apiserver, Busybox: busybox, Workload: workload, Node: "agent-node", Log: io.Discard})
	if err != nil {
		return err
	}
	defer func() {
		c.Stop()
		cluster.Cleanup(dir)
	}()
	if err := c.InstallCRDs(ctx, crds); err != nil {
		return err
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	if err := controllerScale(ctx, r, c, cl, capprofBin, tmpl.Containers[0]); err != nil {
		return err
	}
	if err := agentScale(ctx, r, c, cl, capprofBin); err != nil {
		return err
	}
	if r.MixPods == 0 {
		return nil
	}
	return nodeScale(ctx, r, c, cl, capprofBin)
}

// controllerScale writes a recording's node results as agents would and
// times the controller's merge of them.
func controllerScale(ctx context.Context, r *Report, c *cluster.Cluster, cl client.Client, capprofBin string, tmpl v1alpha1.Container) error {
	const ns = "scale"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	rec := &v1alpha1.CapabilityRecording{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scale"},
		Spec: v1alpha1.CapabilityRecordingSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "scale"}}}}
	if err := cl.Create(ctx, rec); err != nil {
		return err
	}
	r.Workloads = r.Pods / r.Nodes
	now := time.Now().UTC().Truncate(time.Millisecond)
	for n := range r.Nodes {
		node := fmt.Sprintf("node-%02d", n)
		var entries []v1alpha1.Container
		for w := range r.Workloads {
			for k := range r.ContainersPerPod {
				e := *tmpl.DeepCopy()
				e.Name, e.Namespace, e.Owner = fmt.Sprintf("c%d", k), ns, &v1alpha1.Owner{Kind: "Deployment", Name: fmt.Sprintf("app-%02d", w)}
				e.Pods, e.Images = []string{fmt.Sprintf("app-%02d-7d4b9c6f5-%s", w, node)}, []string{"registry.example/app:1.0"}
				e.Coverage = &v1alpha1.Coverage{Instances: 1, FromStart: 1}
				entries = append(entries, e)
			}
		}
		// As the node's agent writes them: its own result, and one per
		// workload.
		meta := v1alpha1.Metadata{Node: node, KernelRelease: "6.18", Probe: "tracepoint", StartTime: v1alpha1.Time{Time: now}, EndTime: v1alpha1.Time{Time: now},
			StartupWindow: v1alpha1.Duration(10 * time.Second)}
		results := []*v1alpha1.CapabilityNodeResult{{Spec: v1alpha1.CapabilityNodeResultSpec{Containers: []v1alpha1.Container{}}}}
		for w := 0; w < len(entries); w += r.ContainersPerPod {
			containers := entries[w : w+r.ContainersPerPod]
			results = append(results, &v1alpha1.CapabilityNodeResult{Spec: v1alpha1.CapabilityNodeResultSpec{Workload: containers[0].Owner, Containers: profile.MergeContainers(containers...)}})
		}
		for _, result := range results {
			result.Spec.Recording, result.Spec.Node, result.Spec.Session, result.Spec.Recorded = rec.Name, node, "bench", meta
			result.Spec.UpdateTime = v1alpha1.Time{Time: now}
			result.Namespace, result.Name = ns, v1alpha1.NodeResultName(rec.Name, node, result.Spec.Workload)
			result.Labels = map[string]string{v1alpha1.RecordingUIDLabel: string(rec.UID)}
			if err := cl.Create(ctx, result); err != nil {
				return fmt.Errorf("create node result %s: %w", result.Name, err)
			}
			r.NodeResultBytes = max(r.NodeResultBytes, jsonSize(result))
			r.NodeResultBytesTotal += jsonSize(result)
		}
	}

	start := time.Now()
	ctrl, err := startCapprof(capprofBin, "controller", "--kubeconfig", c.Kubeconfig)
	if err != nil {
		return err
	}
	defer stop(ctrl)
	merged := func() (bool, error) {
		if err := cl.Get(ctx, client.ObjectKeyFromObject(rec), rec); err != nil {
			return false, err
		}
		return rec.Status.NodeCount == int32(r.Nodes) && rec.Status.Pods.Observed == int32(r.Pods) && len(rec.Status.Profiles) == r.Workloads, nil
	}
	if err := poll(time.Minute, merged); err != nil {
		return fmt.Errorf("the controller did not merge %d node results: %w (status %+v)", r.Nodes, err, rec.Status)
	}
	r.ConvergeColdSeconds = time.Since(start).Seconds()
	var profiles v1alpha1.CapabilityProfileList
	if err := cl.List(ctx, &profiles, client.InNamespace(ns)); err != nil {
		return err
	}
	for i := range profiles.Items {
		r.ProfileBytes = max(r.ProfileBytes, jsonSize(&profiles.Items[i]))
	}

	// One node's app-00 container c0 starts to use CAP_SYS_TIME.
	var result v1alpha1.CapabilityNodeResult
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.NodeResultName(rec.Name, "node-00", &v1alpha1.Owner{Kind: "Deployment", Name: "app-00"})}, &result); err != nil {
		return err
	}
	first := &result.Spec.Containers[0]
	first.Capabilities = append(first.Capabilities, v1alpha1.CapabilityChecks{Capability: 25, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 1,
		Sources: []v1alpha1.Source{{Executable: "/app/web-server", Syscall: "clock_settime", Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.SteadyPhase, Count: 1}}})
	result.Spec.Containers = profile.MergeContainers(result.Spec.Containers...)
	start = time.Now()
	if err := cl.Update(ctx, &result); err != nil {
		return err
	}
	key := client.ObjectKey{Namespace: ns, Name: v1alpha1.ProfileName(*first.Owner)}
	if err := poll(time.Minute, func() (bool, error) {
		var p v1alpha1.CapabilityProfile
		if err := cl.Get(ctx, key, &p); err != nil {
			return false, err
		}
		return strings.Contains(p.Status.Required, "SYS_TIME"), nil
	}); err != nil {
		return fmt.Errorf("one node's change did not reach profile %s: %w", key.Name, err)
	}
	r.ConvergeChangeSeconds = time.Since(start).Seconds()
	if r.ControllerPeakRSSMiB, err = peakRSS(ctrl.Process.Pid); err != nil {
		return err
	}
	// The agent's run has one recording active: each loads its own probes.
	return cl.Delete(ctx, rec)
}

// agentScale runs pods of their own workloads on the agent's node and
// records them, then reads the agent's peak memory and its node result.
func agentScale(ctx context.Context, r *Report, c *cluster.Cluster, cl client.Client, capprofBin string) error {
	const ns = "agent"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	agent, err := recordWithAgent(ctx, c, cl, capprofBin, ns, "full-node", "agent", "2s", "")
	if err != nil {
		return err
	}
	defer stop(agent)
	for i := range r.AgentPods {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("pod-%03d", i), Labels: map[string]string{"bench": "agent"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: cluster.ImageName, Command: []string{"/bin/sh", "-c", "/workload setuid; exec /bin/sleep 100000"}}}}}
		runCtx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := c.RunPod(runCtx, pod)
		cancel()
		if err != nil {
			return err
		}
	}
	// Every pod's container is in the results once its flush came.
	var results v1alpha1.CapabilityNodeResultList
	if err := poll(2*time.Minute, func() (bool, error) {
		if err := cl.List(ctx, &results, client.InNamespace(ns)); err != nil {
			return false, err
		}
		return len(results.Items) == r.AgentPods+1, nil
	}); err != nil {
		return fmt.Errorf("the agent wrote %d results for %d pods of their own workloads, want one more: %w", len(results.Items), r.AgentPods, err)
	}
	time.Sleep(5 * time.Second) // a few more flushes of the full node
	if err := cl.List(ctx, &results, client.InNamespace(ns)); err != nil {
		return err
	}
	r.AgentNodeResults = len(results.Items)
	for i := range results.Items {
		r.AgentNodeResultBytes = max(r.AgentNodeResultBytes, jsonSize(&results.Items[i]))
		r.AgentNodeResultBytesTotal += jsonSize(&results.Items[i])
	}
	if r.AgentPeakRSSMiB, err = peakRSS(agent.Process.Pid); err != nil {
		return err
	}
	// Ended, so that the mix's agent runs the mix's recording alone (an
	// agent loads probes for each recording it runs).
	full := &v1alpha1.CapabilityRecording{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "full-node"}}
	return cl.Delete(ctx, full)
}

// recordWithAgent creates the recording name in ns of the pods labelled
// bench=label and starts an agent on the agent's node, flushing every flush
// and serving its Go profiles on pprofAddress (none when empty); it returns
// once the agent has armed the recording.
func recordWithAgent(ctx context.Context, c *cluster.Cluster, cl client.Client, capprofBin, ns, name, label, flush, pprofAddress string) (*exec.Cmd, error) {
	rec := &v1alpha1.CapabilityRecording{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.CapabilityRecordingSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": label}}}}
	if err := cl.Create(ctx, rec); err != nil {
		return nil, err
	}
	args := []string{"agent", "--node", "agent-node", "--kubeconfig", c.Kubeconfig, "--flush", flush}
	if pprofAddress != "" {
		args = append(args, "--pprof-address", pprofAddress)
	}
	agent, err := startCapprof(capprofBin, args...)
	if err != nil {
		return nil, err
	}
	var own v1alpha1.CapabilityNodeResult
	if err := poll(time.Minute, func() (bool, error) {
		return exists(cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.NodeResultName(rec.Name, "agent-node", nil)}, &own))
	}); err != nil {
		stop(agent)
		return nil, fmt.Errorf("the agent did not arm the recording: %w", err)
	}
	return agent, nil
}

func exists(err error) (bool, error) {
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// poll calls done every 100ms until it says so, fails, or within passes.
func poll(within time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := done()
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startCapprof(bin string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	return cmd, cmd.Start()
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
	}
}

// peakRSS is a running process's peak resident memory (VmHWM).
func peakRSS(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kib / 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}

func jsonSize(o client.Object) int {
	data, _ := json.Marshal(o)
	return len(data)
}

func adminClient(c *cluster.Cluster) (client.Client, error) {
	cl, _, _, err := kube.Client(kube.ClusterConfig{Kubeconfig: c.Kubeconfig})
	return cl, err
}

func printReport(w io.Writer, r *Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster mode at scale\tmeasured\ttarget\n")
	fmt.Fprintf(tw, "controller: merge %d pods x %d containers on %d nodes, cold\t%.2f s\t<= 10 s\n", r.Pods, r.ContainersPerPod, r.Nodes, r.ConvergeColdSeconds)
	fmt.Fprintf(tw, "controller: one node's change reaches its profile\t%.2f s\t<= 10 s\n", r.ConvergeChangeSeconds)
	fmt.Fprintf(tw, "controller: peak RSS\t%.0f MiB\t<= 128 MiB\n", r.ControllerPeakRSSMiB)
	fmt.Fprintf(tw, "node results: the largest (a workload's %d containers), all %d nodes'\t%d KiB, %d KiB\t<< 1.5 MiB (etcd)\n", r.ContainersPerPod, r.Nodes, r.NodeResultBytes/1024, r.NodeResultBytesTotal/1024)
	fmt.Fprintf(tw, "largest profile (%d replicas merged)\t%d KiB\t<< 1.5 MiB (etcd)\n", r.Nodes, r.ProfileBytes/1024)
	fmt.Fprintf(tw, "agent: peak RSS recording %d pods on its node (one recording)\t%.0f MiB\t<= 96 MiB\n", r.AgentPods, r.AgentPeakRSSMiB)
	fmt.Fprintf(tw, "agent: its %d results: the largest, all\t%d KiB, %d KiB\t<< 1.5 MiB (etcd)\n", r.AgentNodeResults, r.AgentNodeResultBytes/1024, r.AgentNodeResultBytesTotal/1024)
	tw.Flush()
	if len(r.Mix) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%d pods at once on one node, each looping for %d s over an exec that chowns a file and one that binds port 80:\n", r.MixPods, r.MixSeconds)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "tool\tloops done (against none)\ttool CPU (of one CPU)\ttool peak RSS\n")
	for _, m := range r.Mix {
		cpu, rss := "-", "-"
		if m.Tool != "none" {
			cpu, rss = fmt.Sprintf("%.1f%%", m.ToolCPUPct), fmt.Sprintf("%.0f MiB", m.ToolPeakRSSMiB)
		}
		fmt.Fprintf(tw, "%s\t%d (%.3f)\t%s\t%s\n", m.Tool, m.Iterations, m.Relative, cpu, rss)
	}
	tw.Flush()
	for _, m := range r.Mix {
		if m.ToolHeap != nil {
			fmt.Fprintf(w, "%s at the window's end: %.1f MiB of heap in use (%.1f MiB of live objects); its heap profile: %s; events dropped (event buffer full): %d\n",
				m.Tool, m.ToolHeap.InuseMiB, m.ToolHeap.AllocMiB, r.AgentHeapProfile, m.EventsDropped)
		}
	}
}
