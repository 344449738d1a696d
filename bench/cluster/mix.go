package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bench/bpftrace"
	"github.com/capprof/capprof/e2e/cluster"
)

// mixScript is each mix pod's work: once /go/start exists, for the given
// seconds, a loop of execs that change a file's owner (CAP_CHOWN) and bind
// port 80 (CAP_NET_BIND_SERVICE; the pods share the host's network, so most
// binds find the port taken, after the check); then the loop count.
const mixScript = `while [ ! -e /go/start ]; do sleep 0.1; done
end=$(( $(date +%%s) + %d )); n=0
while [ "$(date +%%s)" -lt "$end" ]; do
  /workload chown /tmp/mix.$((n %% 16)) 2>/dev/null; /workload bind80 2>/dev/null
  n=$((n + 1))
done
echo "iterations $n"`

// MixRun is the mix under one tool.
type MixRun struct {
	Tool string `json:"tool"` // "none", "capprof agent", "bpftrace"
	// Iterations is the loops all pods made in the window; Relative is
	// against the run without a tool.
	Iterations int64   `json:"iterations"`
	Relative   float64 `json:"relative"`
	// The tool's CPU time during the window, as a share of one CPU, and its
	// peak resident memory.
	ToolCPUPct     float64 `json:"toolCpuPct,omitempty"`
	ToolPeakRSSMiB float64 `json:"toolPeakRssMiB,omitempty"`
	// ToolHeap is the Go heap of a tool that serves its profiles (the
	// agent), at the window's end.
	ToolHeap *Heap `json:"toolHeap,omitempty"`
	// EventsDropped is what the agent's node result counts of events the
	// kernel could not queue (its event buffer full), in its first write after the window.
	EventsDropped int64 `json:"eventsDropped,omitempty"`
}

// Heap is what a Go program's heap holds (runtime.MemStats, as its heap
// profile's text form ends with them).
type Heap struct {
	InuseMiB float64 `json:"inuseMiB"` // HeapInuse: spans with objects
	AllocMiB float64 `json:"allocMiB"` // HeapAlloc: the objects
}

// nodeScale runs MixPods pods of the mix on the agent's node for
// MixSeconds, with no tool, with the agent recording them, and with
// bpftrace's aggregation: how much work the node gets done, and what the
// tool costs.
func nodeScale(ctx context.Context, r *Report, c *cluster.Cluster, cl client.Client, capprofBin string) error {
	for _, tool := range []string{"none", "capprof agent", "bpftrace"} {
		ns := "mix-" + strings.ReplaceAll(tool, " ", "-")
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		var toolCmd *exec.Cmd
		var atEnd func(*MixRun) error
		switch tool {
		case "capprof agent":
			address, err := freeLoopbackAddress()
			if err != nil {
				return err
			}
			agent, err := recordWithAgent(ctx, c, cl, capprofBin, ns, "mix", "mix", "10s", address)
			if err != nil {
				return err
			}
			toolCmd = agent
			atEnd = func(run *MixRun) (err error) {
				// The node's own result written after the window: its drops
				// cover the whole window.
				ended := time.Now()
				var own v1alpha1.CapabilityNodeResult
				if err := poll(time.Minute, func() (bool, error) {
					err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.NodeResultName("mix", "agent-node", nil)}, &own)
					return err == nil && own.Spec.UpdateTime.After(ended), err
				}); err != nil {
					return fmt.Errorf("the agent wrote no result after the window: %w", err)
				}
				run.EventsDropped = own.Spec.Recorded.Drops.Events
				run.ToolHeap, err = saveHeap("http://"+address+"/debug/pprof/heap", r.AgentHeapProfile)
				return err
			}
		case "bpftrace":
			bt := exec.Command("bpftrace", "-e", bpftrace.Aggregation)
			bt.Stderr = os.Stderr
			if err := bpftrace.Start(bt); err != nil {
				stop(bt)
				return err
			}
			toolCmd = bt
		}
		run, err := mixRun(ctx, r, c, ns, toolCmd, atEnd)
		if toolCmd != nil {
			stop(toolCmd)
		}
		if err != nil {
			return fmt.Errorf("mix with %s: %w", tool, err)
		}
		run.Tool = tool
		r.Mix = append(r.Mix, run)
	}
	for i := range r.Mix {
		r.Mix[i].Relative = float64(r.Mix[i].Iterations) / float64(r.Mix[0].Iterations)
	}
	return nil
}

// mixRun starts the pods, lets them go at once, and sums their loops;
// atEnd, when not nil, reads more of the tool at the window's end.
func mixRun(ctx context.Context, r *Report, c *cluster.Cluster, ns string, tool *exec.Cmd, atEnd func(*MixRun) error) (MixRun, error) {
	var run MixRun
	goDir, err := os.MkdirTemp("", "capprof-mix-")
	if err != nil {
		return run, err
	}
	defer os.RemoveAll(goDir)
	var pods []*corev1.Pod
	defer func() {
		for _, p := range pods {
			c.DeletePod(context.Background(), p)
		}
	}()
	for i := range r.MixPods {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("mix-%03d", i), Labels: map[string]string{"bench": "mix"}},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "main", Image: cluster.ImageName,
					Command:      []string{"/bin/sh", "-c", fmt.Sprintf(mixScript, r.MixSeconds)},
					VolumeMounts: []corev1.VolumeMount{{Name: "go", MountPath: "/go", ReadOnly: true}}}},
				Volumes: []corev1.Volume{{Name: "go", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: goDir}}}},
			}}
		runCtx, cancel := context.WithTimeout(ctx, time.Minute)
		p, err := c.RunPod(runCtx, pod)
		cancel()
		if err != nil {
			return run, err
		}
		pods = append(pods, p)
	}
	cpuBefore, err := cpuTicks(tool)
	if err != nil {
		return run, err
	}
	if err := os.WriteFile(filepath.Join(goDir, "start"), nil, 0o644); err != nil {
		return run, err
	}
	started := time.Now()
	time.Sleep(time.Duration(r.MixSeconds) * time.Second) // WaitExit waits a minute at most
	for _, p := range pods {
		code, err := c.WaitExit(ctx, cluster.ContainerID(p.Status.ContainerStatuses[0]))
		if err != nil || code != 0 {
			return run, fmt.Errorf("pod %s: exit %d, %v", p.Name, code, err)
		}
	}
	window := time.Since(started)
	cpuAfter, err := cpuTicks(tool)
	if err != nil {
		return run, err
	}
	if tool != nil {
		run.ToolCPUPct = float64(cpuAfter-cpuBefore) / clockTicks / window.Seconds() * 100
		if run.ToolPeakRSSMiB, err = peakRSS(tool.Process.Pid); err != nil {
			return run, err
		}
	}
	if atEnd != nil {
		if err := atEnd(&run); err != nil {
			return run, err
		}
	}
	for _, p := range pods {
		out, err := c.ContainerStream(p, "main", 0, "stdout")
		if err != nil {
			return run, err
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(out), "iterations "), 10, 64)
		if err != nil {
			return run, fmt.Errorf("pod %s printed %q, not its loop count", p.Name, out)
		}
		run.Iterations += n
	}
	return run, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTicks = 100

// cpuTicks is a process's user and system time so far (0 without one).
func cpuTicks(cmd *exec.Cmd) (int64, error) {
	if cmd == nil {
		return 0, nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses: utime is the
	// 14th field of the line, the 12th after it.
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", cmd.Process.Pid, data)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", cmd.Process.Pid, data)
	}
	return utime + stime, nil
}

// freeLoopbackAddress is a loopback address with a port free now.
func freeLoopbackAddress() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// saveHeap saves the heap profile served at url to path, for go tool
// pprof, and returns the heap's size from the profile's text form.
func saveHeap(url, path string) (*Heap, error) {
	get := func(url string) ([]byte, error) {
		resp, err := http.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	profile, err := get(url)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, profile, 0o644); err != nil {
		return nil, err
	}
	text, err := get(url + "?debug=1")
	if err != nil {
		return nil, err
	}
	var heap Heap
	for _, stat := range []struct {
		name string
		mib  *float64
	}{{"HeapInuse", &heap.InuseMiB}, {"HeapAlloc", &heap.AllocMiB}} {
		_, rest, ok := strings.Cut(string(text), "\n# "+stat.name+" = ")
		bytes, err := strconv.ParseInt(strings.SplitN(rest, "\n", 2)[0], 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("GET %s?debug=1: no %s line", url, stat.name)
		}
		*stat.mib = float64(bytes) / (1 << 20)
	}
	return &heap, nil
}
