package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// podCgroupsFile lists, one per line, the cgroup parent of every pod the
// harness ran, so that Cleanup finds them even after a crash.
const podCgroupsFile = "pod-cgroups"

// DirPrefix starts the name of every cluster state directory in os.TempDir.
const DirPrefix = "capprof-cluster-"

// Cleanup undoes what a cluster in dir left behind, whether or not it was
// stopped: processes started from it (containerd shims, containers), the
// pod cgroups in every hierarchy, mounts below dir, and dir itself.
func Cleanup(dir string) error {
	var errs []error
	parents := readLines(filepath.Join(dir, podCgroupsFile))
	// Processes first: shims name the socket in dir on their command line;
	// container processes sit in the pod cgroups.
	for _, pid := range processesMentioning(dir) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	roots := cgroupRoots()
	for _, parent := range parents {
		for _, root := range roots {
			if err := removeCgroupTree(filepath.Join(root, parent)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// The QoS and kubepods levels are shared by all pods: removed only when
	// empty, and failures ignored.
	for _, parent := range parents {
		for _, root := range roots {
			for p := filepath.Dir(parent); p != "/" && p != "."; p = filepath.Dir(p) {
				os.Remove(filepath.Join(root, p))
			}
		}
	}
	for _, m := range mountsBelow(dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CleanupAll cleans every cluster directory in os.TempDir: what a crashed
// test run left.
func CleanupAll() error {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), DirPrefix+"*"))
	var errs []error
	for _, d := range dirs {
		if err := Cleanup(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func readLines(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(data))
}

func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupRoots are the mount points of every cgroup hierarchy, v1 and v2.
func cgroupRoots() []string {
	var roots []string
	for _, m := range mountinfo() {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			roots = append(roots, m.point)
		}
	}
	return roots
}

// removeCgroupTree kills the processes in a cgroup and its descendants and
// removes them, deepest first.
func removeCgroupTree(path string) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	var dirs []string
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		last = nil
		for _, d := range dirs {
			for _, pid := range strings.Fields(readFile(filepath.Join(d, "cgroup.procs"))) {
				if n, err := strconv.Atoi(pid); err == nil {
					syscall.Kill(n, syscall.SIGKILL)
				}
			}
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				last = err
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", path, last)
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

type mount struct{ point, fstype string }

func mountinfo() []mount {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(postFields) > 0 {
			out = append(out, mount{point: strings.ReplaceAll(fields[4], `\040`, " "), fstype: postFields[0]})
		}
	}
	return out
}

// mountsBelow lists the mounts under dir, deepest first.
func mountsBelow(dir string) []string {
	var out []string
	for _, m := range mountinfo() {
		if strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}
