package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/kube"
)

// containerCgroup finds a pod container's cgroup v2 directory below root
// and returns it with its id (the directory's inode, which is what
// bpf_get_current_cgroup_id returns).
//
// The kubelet names pod cgroups after the pod's QoS class and uid, and the
// runtime names the container's after its id:
//
//	cgroupfs driver: kubepods[/besteffort|/burstable]/pod<uid>/<id>
//	systemd driver:  kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/
//	                 {cri-containerd,crio,docker}-<id>.scope
//
// Those places are tried first; a kubelet with --cgroup-root (kind, k3s)
// puts them deeper, so then the whole tree is searched for a container
// directory under a directory of this pod.
func containerCgroup(root string, pod kube.Pod, c kube.Container) (string, uint64, error) {
	leaves := containerDirNames(c.ID)
	for _, podDir := range podDirCandidates(pod) {
		for _, leaf := range leaves {
			path := filepath.Join(root, podDir, leaf)
			if id, err := cgroupID(path); err == nil {
				return path, id, nil
			}
		}
	}
	found, err := findCgroup(root, func(path, name string) bool {
		return slices.Contains(leaves, name) && isPodDir(filepath.Base(filepath.Dir(path)), pod.UID)
	})
	if err != nil {
		return "", 0, err
	}
	if found != "" {
		if id, err := cgroupID(found); err == nil {
			return found, id, nil
		}
	}
	return "", 0, fmt.Errorf("container %q (%s) of pod %s/%s: no cgroup found under %s: looked for %s/%s (cgroupfs driver) and kubepods-*%s.slice/*-%s.scope (systemd driver), then in every directory below it; is this the pod's node, and does it use cgroup v2?",
		c.Name, c.ID, pod.Namespace, pod.Name, root, "pod"+pod.UID, c.ID, "pod"+systemdUID(pod.UID), c.ID)
}

// podCgroup finds the pod's own cgroup directory below root, where the
// kubelet's drivers put it and else anywhere in the tree; "" when the
// kubelet has not created it (yet).
func podCgroup(root string, pod kube.Pod) (string, error) {
	for _, podDir := range podDirCandidates(pod) {
		path := filepath.Join(root, podDir)
		if _, err := cgroupID(path); err == nil {
			return path, nil
		}
	}
	return findCgroup(root, func(_, name string) bool { return isPodDir(name, pod.UID) })
}

// findCgroup walks the tree below root for the first directory match takes.
func findCgroup(root string, match func(path, name string) bool) (string, error) {
	var found string
	errFound := errors.New("found")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed while walking
		}
		if match(path, d.Name()) {
			found = path
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return "", fmt.Errorf("search %s: %w", root, err)
	}
	return found, nil
}

// podDirCandidates lists the pod's cgroup directory for both drivers, the
// pod's QoS class first when it is known.
func podDirCandidates(pod kube.Pod) []string {
	qos := []string{"besteffort", "burstable", ""} // "": Guaranteed pods sit directly under kubepods
	if q := strings.ToLower(pod.QOSClass); q != "" {
		if q == "guaranteed" {
			q = ""
		}
		qos = slices.DeleteFunc(qos, func(s string) bool { return s == q })
		qos = append([]string{q}, qos...)
	}
	uid := systemdUID(pod.UID)
	var dirs []string
	for _, q := range qos {
		if q == "" {
			dirs = append(dirs, filepath.Join("kubepods", "pod"+pod.UID),
				filepath.Join("kubepods.slice", "kubepods-pod"+uid+".slice"))
			continue
		}
		dirs = append(dirs, filepath.Join("kubepods", q, "pod"+pod.UID),
			filepath.Join("kubepods.slice", "kubepods-"+q+".slice", "kubepods-"+q+"-pod"+uid+".slice"))
	}
	return dirs
}

// isPodDir tells a pod's cgroup directory, for the tree search: pod<uid>
// (cgroupfs driver), or a systemd slice ending in pod<uid_>.slice, whatever
// the prefix a --cgroup-root adds (kubelet-kubepods-besteffort-pod...).
func isPodDir(name, uid string) bool {
	return name == "pod"+uid || strings.HasSuffix(name, "-pod"+systemdUID(uid)+".slice")
}

// systemdUID is a pod uid as systemd unit names hold it: '-' separates
// slice levels, so the kubelet turns the uid's dashes into underscores.
func systemdUID(uid string) string { return strings.ReplaceAll(uid, "-", "_") }

// containerDirNames are the names a container's cgroup can have: the bare id
// (cgroupfs driver) or the runtime's systemd scope.
func containerDirNames(id string) []string {
	return []string{id, "cri-containerd-" + id + ".scope", "crio-" + id + ".scope", "docker-" + id + ".scope"}
}

// cgroupID is a cgroup2 directory's id: its inode number.
func cgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("%s is not a directory", path)
	}
	return st.Ino, nil
}
