package recorder

import (
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
)

// effectiveCapabilities is this process's effective capability set.
func effectiveCapabilities() (v1alpha1.CapSet, error) {
	header := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&header, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return v1alpha1.CapSet(uint64(data[1].Effective)<<32 | uint64(data[0].Effective)), nil
}

// explainProbeFailure says which capabilities capprof lacks when its probe
// could not be loaded and attached without them: creating maps and loading
// programs takes CAP_BPF, loading tracing programs and attaching them takes
// CAP_PERFMON too (Linux 5.8+; CAP_SYS_ADMIN stands for both). Run in a
// container that was not given them, capprof would otherwise say only
// "operation not permitted".
func explainProbeFailure(err error) error {
	have, capErr := effectiveCapabilities()
	missing := v1alpha1.CapSet(1<<unix.CAP_BPF|1<<unix.CAP_PERFMON) &^ have
	if capErr != nil || have.Has(unix.CAP_SYS_ADMIN) || missing == 0 {
		return err
	}
	return fmt.Errorf("capprof lacks %s: loading and attaching its eBPF programs takes BPF and PERFMON "+
		"(in a container, add them to securityContext.capabilities.add; or run it as root): %w", missing.KubernetesList(), err)
}

// CheckCanRecord finds the pods' cgroups, and loads and attaches the probe
// as a recording of pods would, then removes it: capprof agent does this as it starts, so that a node
// agent that cannot record (a capability its container lacks, a kernel
// without the hooks) fails at once, saying why, rather than at the first
// recording. It returns the probe backend that loaded.
func CheckCanRecord(backend bpf.Backend, progress io.Writer) (bpf.Backend, error) {
	if _, err := podCgroupRoot(); err != nil {
		return "", err
	}
	rec, err := startRecording(recordingOptions{progress: progress, backend: backend, pods: true, requireClassification: true})
	if err != nil {
		return "", err
	}
	defer rec.close()
	return rec.probe.Backend(), nil
}
