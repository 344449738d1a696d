package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// What the kubelet does with the parts of a pod spec that a node agent's
// DaemonSet uses: host PID namespace, hostPath volumes, the service
// account's token, environment variables from the downward API, and the
// securityContext (pkg/kubelet/kuberuntime, pkg/securitycontext).

// serviceAccountDir is where the kubelet mounts a pod's projected
// service-account token, CA and namespace.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Paths the kubelet masks and makes read-only in a container that is not
// privileged (securitycontext.DefaultMaskedPaths, DefaultReadonlyPaths).
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// containerMounts are a container's hostPath volume mounts and, unless the
// pod opts out, its service account's token.
func (c *Cluster) containerMounts(pod *corev1.Pod, ctr corev1.Container, tokenDir string) ([]*runtimeapi.Mount, error) {
	var mounts []*runtimeapi.Mount
	for _, vm := range ctr.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == vm.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil || vol.HostPath == nil {
			return nil, fmt.Errorf("container %s: volume %q: the harness mounts hostPath volumes only", ctr.Name, vm.Name)
		}
		if err := prepareHostPath(vol.HostPath); err != nil {
			return nil, fmt.Errorf("container %s: volume %q: %w", ctr.Name, vm.Name, err)
		}
		mounts = append(mounts, &runtimeapi.Mount{HostPath: vol.HostPath.Path, ContainerPath: vm.MountPath, Readonly: vm.ReadOnly})
	}
	if tokenDir != "" {
		mounts = append(mounts, &runtimeapi.Mount{HostPath: tokenDir, ContainerPath: serviceAccountDir, Readonly: true})
	}
	return mounts, nil
}

// expandAll expands the $(NAME) references to the container's environment
// in a command or its arguments, as the kubelet does
// (third_party/forked/golang/expansion): $$ is a $, and a reference to a
// variable the container lacks stays as written.
func expandAll(args []string, env []*runtimeapi.KeyValue) []string {
	if args == nil {
		return nil
	}
	values := map[string]string{}
	for _, kv := range env {
		values[kv.Key] = string(kv.Value)
	}
	out := make([]string, len(args))
	for i, arg := range args {
		var b strings.Builder
		for j := 0; j < len(arg); j++ {
			if arg[j] != '$' || j+1 == len(arg) {
				b.WriteByte(arg[j])
				continue
			}
			switch arg[j+1] {
			case '$':
				b.WriteByte('$')
				j++
				continue
			case '(':
				if end := strings.IndexByte(arg[j+2:], ')'); end >= 0 {
					if v, ok := values[arg[j+2:j+2+end]]; ok {
						b.WriteString(v)
						j += 2 + end
						continue
					}
				}
			}
			b.WriteByte('$')
		}
		out[i] = b.String()
	}
	return out
}

// prepareHostPath checks a hostPath volume's path against its type, as the
// kubelet does before it starts the pod, creating a DirectoryOrCreate
// (mode 0755, pkg/volume/hostpath).
func prepareHostPath(hp *corev1.HostPathVolumeSource) error {
	var typ corev1.HostPathType
	if hp.Type != nil {
		typ = *hp.Type
	}
	switch typ {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		return os.MkdirAll(hp.Path, 0o755)
	case corev1.HostPathDirectory:
		if st, err := os.Stat(hp.Path); err != nil || !st.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", hp.Path)
		}
		return nil
	}
	return fmt.Errorf("hostPath type %q: the harness checks Directory and DirectoryOrCreate only", typ)
}

// projectToken writes the files of the pod's projected service-account
// volume into a directory of the harness: a token bound to the pod (so it
// names the pod's node), the cluster's CA and the namespace. "" when the
// pod has no service account or opts out.
func (c *Cluster) projectToken(ctx context.Context, pod *corev1.Pod) (string, error) {
	if pod.Spec.ServiceAccountName == "" || pod.Spec.AutomountServiceAccountToken != nil && !*pod.Spec.AutomountServiceAccountToken {
		return "", nil
	}
	token, err := c.serviceAccountToken(ctx, pod.Namespace, pod.Spec.ServiceAccountName, pod)
	if err != nil {
		return "", fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	ca, err := os.ReadFile(filepath.Join(c.cfg.Dir, "pki", "ca.crt"))
	if err != nil {
		return "", err
	}
	dir := filepath.Join(c.cfg.Dir, "tokens", string(pod.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for name, data := range map[string][]byte{"token": []byte(token), "ca.crt": ca, "namespace": []byte(pod.Namespace)} {
		// Readable by a container's non-root user, as the kubelet's
		// projected volume (mode 0644) is.
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// containerEnv is a container's environment: its literal variables and
// those from the downward API's pod fields, and the API server's address as
// the kubelet gives it (KUBERNETES_SERVICE_HOST/PORT, here the harness's
// loopback address rather than the kubernetes Service's).
func (c *Cluster) containerEnv(pod *corev1.Pod, ctr corev1.Container) ([]*runtimeapi.KeyValue, error) {
	env := []*runtimeapi.KeyValue{{Key: "KUBERNETES_SERVICE_HOST", Value: []byte(c.server.Hostname())}, {Key: "KUBERNETES_SERVICE_PORT", Value: []byte(c.server.Port())}}
	for _, e := range ctr.Env {
		value := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				return nil, fmt.Errorf("container %s: env %s: the harness takes values from pod fields only", ctr.Name, e.Name)
			}
			switch path := e.ValueFrom.FieldRef.FieldPath; path {
			case "spec.nodeName":
				value = pod.Spec.NodeName
			case "metadata.name":
				value = pod.Name
			case "metadata.namespace":
				value = pod.Namespace
			case "spec.serviceAccountName":
				value = pod.Spec.ServiceAccountName
			default:
				return nil, fmt.Errorf("container %s: env %s: field %s unknown to the harness", ctr.Name, e.Name, path)
			}
		}
		env = append(env, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(value)})
	}
	return env, nil
}

// containerSecurity maps the pod's and the container's securityContext to
// the CRI's, as the kubelet does (pkg/kubelet/kuberuntime/security_context.go):
// capability names as written (containerd adds the CAP_ prefix and expands
// ALL), the user, no_new_privs unless privilege escalation is allowed, a
// read-only root, the seccomp profile, the host PID namespace, and the
// masked and read-only /proc and /sys paths of an unprivileged container.
func containerSecurity(pod *corev1.Pod, ctr corev1.Container) *runtimeapi.LinuxContainerSecurityContext {
	pid := runtimeapi.NamespaceMode_CONTAINER
	if pod.Spec.HostPID {
		pid = runtimeapi.NamespaceMode_NODE
	}
	sc := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: pid},
		MaskedPaths:      defaultMaskedPaths, ReadonlyPaths: defaultReadonlyPaths,
	}
	var podSC corev1.PodSecurityContext
	if pod.Spec.SecurityContext != nil {
		podSC = *pod.Spec.SecurityContext
	}
	ctrSC := ctr.SecurityContext
	if ctrSC == nil {
		ctrSC = &corev1.SecurityContext{}
	}
	if u := firstSet(ctrSC.RunAsUser, podSC.RunAsUser); u != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *u}
	}
	if g := firstSet(ctrSC.RunAsGroup, podSC.RunAsGroup); g != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *g}
	}
	if seccomp := firstSet(ctrSC.SeccompProfile, podSC.SeccompProfile); seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault {
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		sc.SeccompProfilePath = "runtime/default"
	}
	if ctrSC.Capabilities != nil {
		caps := &runtimeapi.Capability{}
		for _, c := range ctrSC.Capabilities.Add {
			caps.AddCapabilities = append(caps.AddCapabilities, string(c))
		}
		for _, c := range ctrSC.Capabilities.Drop {
			caps.DropCapabilities = append(caps.DropCapabilities, string(c))
		}
		sc.Capabilities = caps
	}
	if ctrSC.Privileged != nil && *ctrSC.Privileged {
		sc.Privileged = true
		sc.MaskedPaths, sc.ReadonlyPaths = nil, nil
	}
	sc.NoNewPrivs = ctrSC.AllowPrivilegeEscalation != nil && !*ctrSC.AllowPrivilegeEscalation
	sc.ReadonlyRootfs = ctrSC.ReadOnlyRootFilesystem != nil && *ctrSC.ReadOnlyRootFilesystem
	return sc
}

// firstSet is the container's setting when it has one, else the pod's.
func firstSet[T any](container, pod *T) *T {
	if container != nil {
		return container
	}
	return pod
}

// ContainerLog is what a container of a pod the harness ran wrote to its
// stdout and stderr, each line without the CRI log format's time, stream
// and tag, in the order written.
func (c *Cluster) ContainerLog(pod *corev1.Pod, name string, attempt int) (string, error) {
	return c.ContainerStream(pod, name, attempt, "")
}

// ContainerStream is ContainerLog of one stream, "stdout" or "stderr"
// ("": both).
func (c *Cluster) ContainerStream(pod *corev1.Pod, name string, attempt int, stream string) (string, error) {
	data, err := os.ReadFile(filepath.Join(c.cfg.Dir, "logs", string(pod.UID), fmt.Sprintf("%s_%d.log", name, attempt)))
	if err != nil {
		return "", err
	}
	var out strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// TIME STREAM TAG MESSAGE; tag P is a partial line.
		fields := strings.SplitN(sc.Text(), " ", 4)
		if len(fields) < 4 || stream != "" && fields[1] != stream {
			continue
		}
		out.WriteString(fields[3])
		if fields[2] != "P" {
			out.WriteByte('\n')
		}
	}
	return out.String(), sc.Err()
}

// qosClass is the pod's QoS class, as the kubelet computes it
// (pkg/apis/core/v1/helper/qos): Guaranteed when every container limits
// CPU and memory to what it requests, BestEffort when none requests or
// limits anything, else Burstable.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	resourced, guaranteed := false, true
	for _, ctr := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		r := ctr.Resources
		if len(r.Requests) > 0 || len(r.Limits) > 0 {
			resourced = true
		}
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			limit, limited := r.Limits[name]
			request, requested := r.Requests[name]
			if !limited || requested && request.Cmp(limit) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case !resourced:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// qosCgroupParent is where the kubelet's cgroupfs driver puts a pod of
// that class: /kubepods/pod<uid> for Guaranteed, else below its class's
// directory.
func qosCgroupParent(qos corev1.PodQOSClass, uid types.UID) string {
	if qos == corev1.PodQOSGuaranteed {
		return "/kubepods/pod" + string(uid)
	}
	return "/kubepods/" + strings.ToLower(string(qos)) + "/pod" + string(uid)
}

// containerResources is what the runtime enforces of a container's
// resources here: its memory limit (the kernel charges eBPF maps to it).
func containerResources(ctr corev1.Container) *runtimeapi.LinuxContainerResources {
	if limit, ok := ctr.Resources.Limits[corev1.ResourceMemory]; ok {
		return &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: limit.Value()}
	}
	return nil
}

// PodFromTemplate is the pod a DaemonSet or Deployment controller makes of
// its template: the template's labels, annotations and spec, its name, and
// the workload as its owner.
func PodFromTemplate(namespace, name string, template corev1.PodTemplateSpec, owner metav1.OwnerReference) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: template.ObjectMeta, Spec: template.Spec}
	pod.Namespace, pod.Name = namespace, name
	pod.OwnerReferences = []metav1.OwnerReference{owner}
	return pod
}
