package recorder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capprof/capprof/kube"
)

// TestContainerCgroup lays out the cgroup trees of both kubelet cgroup
// drivers and of a kubelet with a --cgroup-root in a plain directory (the
// lookup only reads directories and their inodes).
func TestContainerCgroup(t *testing.T) {
	const uid, id = "8d6f6a3e-2b1c-4f5e-9a7d-0c1b2a3d4e5f", "4f1e0c"
	pod := kube.Pod{Namespace: "shop", Name: "web-1", UID: uid, QOSClass: "Burstable"}
	ctr := kube.Container{Name: "server", ID: id}
	u := strings.ReplaceAll(uid, "-", "_")
	for _, layout := range []string{
		"kubepods/burstable/pod" + uid + "/" + id,
		"kubepods/pod" + uid + "/" + id, // Guaranteed, with a stale QoS class
		"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + u + ".slice/cri-containerd-" + id + ".scope",
		"kubepods.slice/kubepods-pod" + u + ".slice/crio-" + id + ".scope",
		"kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + u + ".slice/docker-" + id + ".scope",
		"kind-node/kubelet/kubepods/besteffort/pod" + uid + "/" + id,
	} {
		t.Run(layout, func(t *testing.T) {
			root := t.TempDir()
			want := filepath.Join(root, layout)
			if err := os.MkdirAll(want, 0o755); err != nil {
				t.Fatal(err)
			}
			// Another container of another pod, which must not be taken.
			if err := os.MkdirAll(filepath.Join(root, "kubepods/besteffort/podother", id+"0"), 0o755); err != nil {
				t.Fatal(err)
			}
			path, cgid, err := containerCgroup(root, pod, ctr)
			if err != nil {
				t.Fatal(err)
			}
			wantID, _ := cgroupID(want)
			if path != want || cgid != wantID || cgid == 0 {
				t.Fatalf("containerCgroup = %s (%d), want %s (%d)", path, cgid, want, wantID)
			}
		})
	}
	root := t.TempDir()
	_, _, err := containerCgroup(root, pod, ctr)
	if err == nil || !strings.Contains(err.Error(), `container "server" (4f1e0c) of pod shop/web-1: no cgroup found under `+root+": looked for pod"+uid+"/"+id) {
		t.Fatalf("err = %v, want where it looked", err)
	}
}
