package recorder

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup
// on unified hosts, /sys/fs/cgroup/unified on hybrid ones, else the first
// cgroup2 mount in mountinfo.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(postFields) > 0 && postFields[0] == "cgroup2" {
			mounts = append(mounts, unescapeMountPath(fields[4]))
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	for _, preferred := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		for _, m := range mounts {
			if m == preferred {
				return m, nil
			}
		}
	}
	if len(mounts) > 0 {
		return mounts[0], nil
	}
	return "", errors.New("no cgroup2 filesystem is mounted (checked /proc/self/mountinfo): capprof needs cgroup v2; mount it with: mount -t cgroup2 none /sys/fs/cgroup/unified")
}

// podCgroupRoot is the root of the cgroup v2 hierarchy, below which the
// kubelet makes every pod's cgroup. A cgroup2 mount of only part of it,
// as a container in its own cgroup namespace has at /sys/fs/cgroup, shows
// no other pod; the hierarchy's root cgroup is the one whose id (its
// directory's inode number) is 1.
func podCgroupRoot() (string, error) {
	const hint = "in a container, mount the node's /sys/fs/cgroup there (a read-only hostPath volume)"
	root, err := cgroup2Mount()
	if err != nil {
		return "", fmt.Errorf("%w; %s", err, hint)
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return "", fmt.Errorf("cgroup2 filesystem: %w", err)
	}
	if st.Ino != 1 {
		return "", fmt.Errorf("the cgroup2 filesystem at %s is part of the hierarchy, not its root (a cgroup namespace's view): no other pod's cgroup is seen there; %s", root, hint)
	}
	return root, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// cgroup is a cgroup v2 directory capprof created for one recording.
type cgroup struct {
	path string
	id   uint64   // the cgroup id bpf_get_current_cgroup_id() returns: the directory's inode
	dir  *os.File // for CLONE_INTO_CGROUP
}

func createCgroup(parent, name string) (*cgroup, error) {
	path := filepath.Join(parent, name)
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	dir, err := os.Open(path)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		dir.Close()
		os.Remove(path)
		return nil, fmt.Errorf("stat cgroup: %w", err)
	}
	return &cgroup{path: path, id: st.Ino, dir: dir}, nil
}

// subtree lists the cgroup's directory and every one below it, parents first.
func (c *cgroup) subtree() ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(c.path, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == c.path {
				return err
			}
			return nil // removed while walking
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	return dirs, err
}

// pids lists the processes still in the cgroup and the cgroups below it
// (the command may have created some and moved processes there).
func (c *cgroup) pids() ([]int, error) {
	dirs, err := c.subtree()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && dir != c.path {
				continue
			}
			return nil, err
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// killAll SIGKILLs every process in the cgroup and below it and waits until
// they are gone. cgroup.kill (Linux 5.14) does it atomically for the whole
// subtree; older kernels get a loop over cgroup.procs, which a fork storm
// can outrun only briefly.
func (c *cgroup) killAll(timeout time.Duration) (int, error) {
	pids, err := c.pids()
	if err != nil || len(pids) == 0 {
		return 0, err
	}
	killed := len(pids)
	useKillFile := os.WriteFile(filepath.Join(c.path, "cgroup.kill"), []byte("1"), 0) == nil
	deadline := time.Now().Add(timeout)
	for len(pids) > 0 {
		if time.Now().After(deadline) {
			return killed, fmt.Errorf("processes %v still in cgroup %s after %s", pids, c.path, timeout)
		}
		if !useKillFile {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(10 * time.Millisecond)
		if pids, err = c.pids(); err != nil {
			return killed, err
		}
	}
	return killed, nil
}

// remove deletes the cgroup directory and the ones the command created
// below it, deepest first; they must be empty.
func (c *cgroup) remove() error {
	if c.dir != nil {
		c.dir.Close()
	}
	dirs, err := c.subtree()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", c.path, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		for range 50 { // the last exiting task can linger for a moment
			if err = unix.Rmdir(dirs[i]); err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
		}
	}
	return nil
}

// processCgroup is a process's cgroup v2 path, from /proc/PID/cgroup's
// "0::PATH" line.
func processCgroup(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path, nil
		}
	}
	return "", fmt.Errorf("cgroup of pid %d: no cgroup v2 line in /proc/%d/cgroup", pid, pid)
}

// cgroupPrefix starts the name of the cgroup capprof creates for a command:
// capprof-<pid>-<unix nanoseconds>.
const cgroupPrefix = "capprof-"

// sweepStaleCgroups kills what is left in the cgroups of recorded commands
// whose capprof died (SIGKILL, a crash) and removes them: a command's
// children outlive it otherwise. A cgroup whose capprof still runs (a pid
// named capprof) is left alone. Failures are warnings: they do not stop
// this recording.
func sweepStaleCgroups(root string, progress io.Writer) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
		pidText, _, found := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || !found || err != nil || !e.IsDir() || capprofRuns(pid) {
			continue
		}
		stale := &cgroup{path: filepath.Join(root, e.Name())}
		n, err := stale.killAll(10 * time.Second)
		if err == nil {
			err = stale.remove()
		}
		if err != nil {
			fmt.Fprintf(progress, "capprof: warning: cgroup %s of a capprof that died (pid %d): %v\n", stale.path, pid, err)
			continue
		}
		fmt.Fprintf(progress, "capprof: removed cgroup %s of a capprof that died (pid %d), killing %d process(es) left in it\n", stale.path, pid, n)
	}
}

// capprofRuns reports whether pid is a running capprof.
func capprofRuns(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) == "capprof"
}
