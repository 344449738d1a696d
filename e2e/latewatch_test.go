package e2e

import (
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/capprof/capprof/e2e/cluster"
)

// delayingProxy forwards TCP connections to target and holds what the
// target answers for delay before passing it on, in order: a client of it
// learns everything late, as capprof's watch of a loaded API server may
// (TLS goes through untouched).
func delayingProxy(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			conns.Add(2)
			go func() {
				defer conns.Done()
				io.Copy(server, client)
				server.Close()
			}()
			go func() {
				defer conns.Done()
				defer client.Close()
				type chunk struct {
					data []byte
					at   time.Time
				}
				chunks := make(chan chunk, 1024)
				go func() {
					defer close(chunks)
					for {
						buf := make([]byte, 32<<10)
						n, err := server.Read(buf)
						if n > 0 {
							chunks <- chunk{buf[:n], time.Now()}
						}
						if err != nil {
							return
						}
					}
				}()
				for c := range chunks {
					time.Sleep(time.Until(c.at.Add(delay)))
					if _, err := client.Write(c.data); err != nil {
						server.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// lateKubeconfig is the cluster's kubeconfig, its server behind a
// delayingProxy.
func lateKubeconfig(t *testing.T, c *cluster.Cluster, delay time.Duration) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range cfg.Clusters {
		u, err := url.Parse(cl.Server)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = delayingProxy(t, u.Host, delay)
		cl.Server = u.String()
	}
	path := filepath.Join(t.TempDir(), "late.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPodsReportedLate: capprof's watch of the API may be told of a pod
// after the kubelet is (a loaded node or API server): here every answer of
// the API reaches capprof 3 s late, so the pod's containers run before
// capprof knows the pod. Every new pod cgroup is armed at its creation
// until a selected pod claims it, so the pod is still recorded from its
// first instruction, its bind of port 80 at t=0 included, and the container
// runtime's own setup is still told apart: the advice is what the workload
// needs, no more (no SETPCAP of runc's capability drop, no DAC_READ_SEARCH
// of its setup as root).
func TestPodsReportedLate(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, "late")
	rec := startRecord(t, "--pods", "late", "-n", ns, "--kubeconfig", lateKubeconfig(t, c, 3*time.Second))
	rec.waitFor(t, "waiting for matching pods")
	pod := testPod(ns, "late", nil, "app")
	pod.Spec.Containers[0].Command = []string{"/bin/sh", "-c", "/workload bind80 && exec /bin/sleep 100000"}
	pod = runPod(t, c, pod)
	started := time.Now()
	rec.waitFor(t, "recording container app of pod "+ns+"/late")
	if late := time.Since(started); late < time.Second {
		t.Fatalf("capprof knew the pod %s after its start: the proxy did not delay its watch", late)
	}
	p := rec.stop(t)
	app := entry(t, p, ns, "app")
	wantRequired(t, alone(app), "NET_BIND_SERVICE")
	if cov := app.Coverage; cov == nil || cov.Instances != 1 || cov.FromStart != 1 {
		t.Fatalf("coverage %+v, want the container recorded from its first instruction\n%s", cov, rec.log())
	}
	if strings.Contains(rec.log(), "not recorded") {
		t.Fatalf("capprof missed the start:\n%s", rec.log())
	}
}
