// Package cluster starts a real Kubernetes control plane and container
// runtime on loopback for capprof's end-to-end tests: etcd, kube-apiserver
// and containerd (CRI, runc, cgroupfs driver), with an image it builds
// itself so no registry is needed. There is no kubelet: the harness plays
// it (pods.go), creating Pods through the API, running their containers
// through the CRI under kubelet-style cgroups and reporting their ids in the
// Pods' status.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config says where the binaries are.
type Config struct {
	// Dir is the cluster's state directory; it is removed by Stop. Keep it
	// short: containerd's socket path must fit in 108 bytes.
	Dir string
	// APIServer is a kube-apiserver binary.
	APIServer string
	// Busybox is a static busybox; Workload a static e2e/workload binary.
	Busybox, Workload string
	// Node is the name pods are scheduled to.
	Node string
	// Runtimes are extra runtime handlers (WithRuntimeHandler), by name:
	// an OCI runtime binary with runc's command line (crun, another runc)
	// under containerd's runc shim. The default handler runs Debian's runc.
	Runtimes map[string]string
	// Log receives the components' output.
	Log io.Writer
}

// Cluster is a running control plane and runtime.
type Cluster struct {
	cfg Config
	// Kubeconfig is an admin's; ViewerKubeconfig a user's with no rights.
	Kubeconfig, ViewerKubeconfig string
	// server is the API server's URL: https://127.0.0.1:PORT.
	server *url.URL
	// CRIEndpoint is containerd's socket, unix://...
	CRIEndpoint string
	Client      kubernetes.Interface
	CRI         runtimeapi.RuntimeServiceClient
	criConn     *grpc.ClientConn
	procs       []*exec.Cmd
	podsMu      sync.Mutex
	podStates   map[types.UID]*podState
}

// Start starts etcd, kube-apiserver and containerd, and imports the image.
// On error, what was started is stopped.
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	c = &Cluster{cfg: cfg, podStates: map[types.UID]*podState{}}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	for _, d := range []string{"pki", "etcd", "containerd", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return c, err
		}
	}
	etcdURL, err := c.startEtcd(ctx)
	if err != nil {
		return c, err
	}
	if err := c.startAPIServer(ctx, etcdURL); err != nil {
		return c, err
	}
	if err := c.startContainerd(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// freePorts finds n distinct free ports on loopback. The listeners stay
// open until all are found: closed one by one, the kernel may hand out the
// same port twice (etcd's client and peer port once collided so).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// spawn starts a component in its own process group, so Stop can kill it
// and its children; its output goes to Log.
func (c *Cluster) spawn(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = c.cfg.Log, c.cfg.Log
	// Pdeathsig: a test binary that dies (a panic) takes the component with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, cmd)
	return nil
}

// waitFor polls ready until it returns nil or timeout passes.
func waitFor(ctx context.Context, what string, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answersOK is a readiness check: GET url answers 200.
func answersOK(client *http.Client, url string) func() error {
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
}

func (c *Cluster) startEtcd(ctx context.Context) (string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return "", err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := c.spawn("etcd", "--data-dir", filepath.Join(c.cfg.Dir, "etcd"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--log-level", "error"); err != nil {
		return "", err
	}
	return url, waitFor(ctx, "etcd", 30*time.Second, answersOK(http.DefaultClient, url+"/health"))
}

func (c *Cluster) startAPIServer(ctx context.Context, etcdURL string) error {
	p, err := newPKI(filepath.Join(c.cfg.Dir, "pki"))
	if err != nil {
		return err
	}
	for _, cert := range []struct {
		name, cn string
		groups   []string
		server   bool
	}{
		{"apiserver", "kube-apiserver", nil, true},
		{"admin", "capprof-admin", []string{"system:masters"}, false},
		{"viewer", "capprof-viewer", nil, false},
	} {
		if err := p.issue(cert.name, cert.cn, cert.groups, cert.server); err != nil {
			return err
		}
	}
	if err := p.serviceAccountKeys(); err != nil {
		return err
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	port := ports[0]
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	if c.server, err = url.Parse(server); err != nil {
		return err
	}
	if err := c.spawn(c.cfg.APIServer,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--cert-dir", p.path("generated"),
		"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
		"--client-ca-file", p.path("ca.crt"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", p.path("sa.pub"), "--service-account-signing-key-file", p.path("sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		// No controller-manager runs: nothing reconciles endpoints or
		// creates the default ServiceAccount that the admission plugin wants.
		"--endpoint-reconciler-type", "none",
		"--disable-admission-plugins", "ServiceAccount",
		"--authorization-mode", "RBAC",
		// As clusters whose nodes run privileged agents do.
		"--allow-privileged=true",
	); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.cfg.Dir, "admin.kubeconfig")
	c.ViewerKubeconfig = filepath.Join(c.cfg.Dir, "viewer.kubeconfig")
	for path, user := range map[string]string{c.Kubeconfig: "admin", c.ViewerKubeconfig: "viewer"} {
		if err := writeKubeconfig(path, server, p, user); err != nil {
			return err
		}
	}
	cert, err := tls.LoadX509KeyPair(p.path("admin.crt"), p.path("admin.key"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	if err := waitFor(ctx, "kube-apiserver", 90*time.Second, answersOK(httpc, server+"/readyz")); err != nil {
		return err
	}
	rest, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	c.Client, err = kubernetes.NewForConfig(rest)
	return err
}

// writeKubeconfig writes a kubeconfig for user (admin or viewer) whose
// context is named capprof-e2e-USER.
func writeKubeconfig(path, server string, p *pki, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: p.path("ca.crt")}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: p.path(user + ".crt"), ClientKey: p.path(user + ".key")}
	name := "capprof-e2e-" + user
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}

// containerdConfig: private root, state and socket; the cgroupfs driver (no
// systemd here); restrict_oom_score_adj because root lacks CAP_SYS_RESOURCE
// on this kind of machine; the stream server on loopback; the sandbox image
// is our own image under the pause name.
const containerdConfig = `version = 2
root = "{{dir}}/root"
state = "{{dir}}/state"
[grpc]
  address = "{{dir}}/containerd.sock"
[ttrpc]
  address = "{{dir}}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{{dir}}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + sandboxImageName + `"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
{{runtimes}}  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{dir}}/cni/bin"
    conf_dir = "{{dir}}/cni/conf"
`

func (c *Cluster) startContainerd(ctx context.Context) error {
	dir := filepath.Join(c.cfg.Dir, "containerd")
	configPath := filepath.Join(dir, "config.toml")
	var runtimes strings.Builder
	for name, binary := range c.cfg.Runtimes {
		fmt.Fprintf(&runtimes, "    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.%s]\n      runtime_type = \"io.containerd.runc.v2\"\n"+
			"      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.%s.options]\n        BinaryName = %q\n        SystemdCgroup = false\n", name, name, binary)
	}
	config := strings.NewReplacer("{{dir}}", dir, "{{runtimes}}", runtimes.String()).Replace(containerdConfig)
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return err
	}
	if err := c.spawn("containerd", "--config", configPath, "--log-level", "warn"); err != nil {
		return err
	}
	sock := filepath.Join(dir, "containerd.sock")
	c.CRIEndpoint = "unix://" + sock
	conn, err := grpc.NewClient(c.CRIEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	c.criConn = conn
	c.CRI = runtimeapi.NewRuntimeServiceClient(conn)
	if err := waitFor(ctx, "containerd", 30*time.Second, func() error {
		_, err := c.CRI.Version(ctx, &runtimeapi.VersionRequest{})
		return err
	}); err != nil {
		return err
	}
	archive := filepath.Join(c.cfg.Dir, "image.tar")
	if err := buildImage(archive, c.cfg.Busybox, c.cfg.Workload); err != nil {
		return err
	}
	return c.ImportImage(ctx, archive)
}

// RestartContainerd stops containerd (SIGTERM, as a service manager does),
// runs down while it is down, and starts it again with the same
// configuration and state: its containers keep running under their shims,
// as in a node's containerd upgrade.
func (c *Cluster) RestartContainerd(ctx context.Context, down func()) error {
	for i, cmd := range c.procs {
		if filepath.Base(cmd.Path) != "containerd" {
			continue
		}
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		c.procs = slices.Delete(c.procs, i, i+1)
		down()
		if err := c.spawn("containerd", cmd.Args[1:]...); err != nil {
			return err
		}
		return waitFor(ctx, "containerd", 30*time.Second, func() error {
			_, err := c.CRI.Version(ctx, &runtimeapi.VersionRequest{})
			return err
		})
	}
	return errors.New("containerd is not running")
}

// Stop removes every pod sandbox (and so its containers), stops the
// components, kills leftover shims and container processes, removes the
// pod cgroups it created and the state directory. It reports the first
// failure but always does all of it.
func (c *Cluster) Stop() error {
	var errs []error
	if c.CRI != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if list, err := c.CRI.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, sb := range list.Items {
				if _, err := c.CRI.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
					errs = append(errs, fmt.Errorf("stop sandbox %s: %w", sb.Id, err))
				}
				if _, err := c.CRI.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
					errs = append(errs, fmt.Errorf("remove sandbox %s: %w", sb.Id, err))
				}
			}
		}
		cancel()
		c.criConn.Close()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if err := Cleanup(c.cfg.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ServiceAccountKubeconfig writes a kubeconfig at path that authenticates
// with a token of the service account namespace/name: bound to the pod
// boundPod of that namespace when it is not empty (the token then names
// the pod's node, as a projected token in a DaemonSet's pod does), else
// unbound. The token lasts an hour.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, path, namespace, name, boundPod string) error {
	var pod *corev1.Pod
	if boundPod != "" {
		var err error
		if pod, err = c.Client.CoreV1().Pods(namespace).Get(ctx, boundPod, metav1.GetOptions{}); err != nil {
			return err
		}
	}
	token, err := c.serviceAccountToken(ctx, namespace, name, pod)
	if err != nil {
		return err
	}
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = admin.Clusters["e2e"]
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: name, Namespace: namespace}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}

// serviceAccountToken is an hour's token of the service account
// namespace/name, bound to pod (so that it names the pod's node, as a
// projected token in a DaemonSet's pod does) unless pod is nil.
func (c *Cluster) serviceAccountToken(ctx context.Context, namespace, name string, pod *corev1.Pod) (string, error) {
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tok, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of service account %s/%s: %w", namespace, name, err)
	}
	return tok.Status.Token, nil
}
