// Command workload performs one privileged (or deliberately unprivileged)
// action per subcommand, so capprof's end-to-end tests and demo know exactly
// which capability each run needs.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const nobody = 65534

var actions = map[string]struct {
	usage string
	run   func(args []string) error
}{
	"bind80":  {"", bind80},
	"chown":   {"FILE", chown},
	"klog":    {"", klog},
	"setuid":  {"", setuid},
	"seteuid": {"", seteuid},
	"noise":   {"DIR", noise},
	"exit":    {"CODE", exitWith},
	"sleep":   {"", sleepUntilSignal},
	// Counts the SIGINTs one Ctrl-C brings: a program that force-quits on a
	// second one must get exactly one.
	"interrupts": {"FILE", countInterrupts},
	"serve":      {"DATADIR", serve},
	"bench":      {"KIND ITERATIONS|DURATION REPS [hold]", bench},
	"hold":       {"", hold},
	// For recordings from a container's first instruction:
	"timeline": {"DIR", timeline},
	"escape":   {"FILE", escape},
	// For capprof verify's canaries:
	"canary": {"DIR", canary},
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	a, ok := actions[os.Args[1]]
	if !ok {
		usage()
	}
	if err := a.run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "workload %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: workload ACTION [ARGS]; actions:")
	for name, a := range actions {
		fmt.Fprintf(os.Stderr, "  %s %s\n", name, a.usage)
	}
	os.Exit(2)
}

// bind80 binds TCP port 80: CAP_NET_BIND_SERVICE (net/ipv4/af_inet.c __inet_bind).
func bind80([]string) error {
	l, err := net.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		return err
	}
	return l.Close()
}

// chown gives FILE (created if missing) to nobody: CAP_CHOWN.
func chown(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("need FILE")
	}
	f, err := os.OpenFile(args[0], os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return os.Chown(args[0], nobody, -1)
}

// klog asks the kernel log for its unread size, an action syslog(2) always
// restricts: CAP_SYSLOG (kernel/printk/printk.c check_syslog_permissions).
func klog([]string) error {
	_, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_UNREAD, nil)
	return err
}

// setuid drops to nobody: CAP_SETUID, and a credential change 0 -> 65534.
func setuid([]string) error {
	if err := syscall.Setuid(nobody); err != nil {
		return err
	}
	if uid := os.Getuid(); uid != nobody {
		return fmt.Errorf("uid is %d after setuid", uid)
	}
	return nil
}

// seteuid, as root, sets its thread's effective uid to nobody, which needs
// CAP_SETUID; tries setgid(nobody), which is denied CAP_SETGID with that
// euid;
// and sets the effective uid back to 0, which needs no capability (0 is
// still its real and saved uid). Raw syscalls on a locked thread: Go's
// syscall.Setresuid would repeat each call on every thread.
func seteuid([]string) error {
	runtime.LockOSThread()
	keep := ^uintptr(0) // -1: leave the id as it is
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, nobody, keep); errno != 0 {
		return fmt.Errorf("setresuid(-1, %d, -1): %w", nobody, errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETGID, nobody, 0, 0); errno != unix.EPERM {
		return fmt.Errorf("setgid(%d) with euid %d: %v, want EPERM", nobody, nobody, errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, 0, keep); errno != 0 {
		return fmt.Errorf("setresuid(-1, 0, -1): %w", errno)
	}
	return nil
}

// noise does what every root process does and needs no capability for:
// private writable mappings, writing its own files, fork+exec.
func noise(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("need DIR")
	}
	for i := range 64 {
		m, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		m[i] = 1
		if err := unix.Munmap(m); err != nil {
			return err
		}
	}
	for i := range 10 {
		name := filepath.Join(args[0], "own-"+strconv.Itoa(i))
		if err := os.WriteFile(name, []byte("data\n"), 0o600); err != nil {
			return err
		}
		if _, err := os.ReadFile(name); err != nil {
			return err
		}
	}
	for range 5 {
		if err := exec.Command("/bin/true").Run(); err != nil {
			return err
		}
	}
	return nil
}

func exitWith(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("need CODE")
	}
	code, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

// sleepUntilSignal prints "ready" and waits; SIGINT/SIGTERM end it by the
// Go runtime's default action, so the exit status shows the signal.
func sleepUntilSignal([]string) error {
	fmt.Println("ready")
	time.Sleep(time.Hour)
	return errors.New("not stopped within an hour")
}

// countInterrupts says "ready", waits for SIGINT, counts the SIGINTs that
// come within a second of the first, writes the count to FILE and exits.
func countInterrupts(args []string) error {
	if len(args) != 1 {
		return errors.New("need FILE")
	}
	interrupts := make(chan os.Signal, 16)
	signal.Notify(interrupts, syscall.SIGINT)
	fmt.Println("ready")
	<-interrupts
	n := 1
	for deadline := time.After(time.Second); ; {
		select {
		case <-interrupts:
			n++
			continue
		case <-deadline:
		}
		break
	}
	return os.WriteFile(args[0], []byte(strconv.Itoa(n)), 0o644)
}

// benchKinds are the loops `make bench` times. Each runs on one thread with
// raw syscalls, so the loop measures the kernel path and little else.
var benchKinds = map[string]func() error{
	// One CAP_SETUID check per call (ns_capable_setid in __sys_setuid), as root.
	"setuid": func() error {
		if _, _, e := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0); e != 0 {
			return e
		}
		return nil
	},
	// No capability check: the cost of syscall-level hooks alone.
	"getppid": func() error {
		unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
		return nil
	},
	// fork+exec+wait of /bin/true: exec and exit tracking.
	"forkexec": func() error {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			return err
		}
		_, err = syscall.Wait4(pid, nil, 0, nil)
		return err
	},
	// tar -x --same-owner of $BENCH_TAR into a fresh directory, then its
	// removal: a realistic root job with CHOWN/FOWNER/DAC checks per file.
	"untar": func() error {
		dir, err := os.MkdirTemp("", "capprof-untar-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if out, err := exec.Command("tar", "-x", "--same-owner", "-f", os.Getenv("BENCH_TAR"), "-C", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("tar: %v: %s", err, out)
		}
		return os.RemoveAll(dir)
	},
}

// bench runs KIND REPS times and prints one line per repetition:
// "<iterations> <elapsed ns>". ITERATIONS may be a duration ("60s"): then
// each repetition loops that long. With "hold" it then prints "done" and
// waits for stdin to close, so the caller can read BPF statistics while the
// programs are still loaded.
func bench(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("need KIND ITERATIONS|DURATION REPS [hold]")
	}
	run, ok := benchKinds[args[0]]
	if !ok {
		return fmt.Errorf("unknown kind %q", args[0])
	}
	var iterations int
	duration, err := time.ParseDuration(args[1])
	if err != nil {
		if iterations, err = strconv.Atoi(args[1]); err != nil {
			return fmt.Errorf("ITERATIONS: %v", err)
		}
	}
	reps, err := strconv.Atoi(args[2])
	if err != nil {
		return fmt.Errorf("REPS: %v", err)
	}
	runtime.LockOSThread()
	for range reps {
		start := time.Now()
		n := 0
		for ; duration == 0 && n < iterations || duration > 0 && (n%1024 != 0 || time.Since(start) < duration); n++ {
			if err := run(); err != nil {
				return err
			}
		}
		fmt.Printf("%d %d\n", n, time.Since(start).Nanoseconds())
	}
	if len(args) > 3 && args[3] == "hold" {
		return hold(nil)
	}
	return nil
}

// hold prints "done" and waits until stdin is closed.
func hold([]string) error {
	fmt.Println("done")
	_, err := io.Copy(io.Discard, os.Stdin)
	return err
}

// serve is the demo: a server that binds port 80, hands its data directory
// to the user it will run as, drops root and answers nothing.
func serve(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("need DATADIR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		return err
	}
	defer l.Close()
	if err := os.MkdirAll(args[0], 0o755); err != nil {
		return err
	}
	if err := os.Chown(args[0], nobody, nobody); err != nil {
		return err
	}
	if err := syscall.Setgid(nobody); err != nil {
		return err
	}
	if err := syscall.Setuid(nobody); err != nil {
		return err
	}
	fmt.Printf("serving on %s as uid %d\n", l.Addr(), os.Getuid())
	return nil
}

// canary is a server that binds port 80 (CAP_NET_BIND_SERVICE: needed),
// marks DIR, whose group it is not in, set-group-ID without looking whether
// the bit stuck (CAP_FSETID: granted when it has it, not needed), says
// "ready" and runs until a signal. Concurrent canaries share the host's
// network in the pod harness: the socket is bound with SO_REUSEADDR and
// never listens, so they do not collide.
func canary(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("need DIR")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 80, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("bind 127.0.0.1:80: %w", err)
	}
	unix.Close(fd)
	if err := os.Chmod(args[0], 0o755|os.ModeSetgid); err != nil {
		return err
	}
	return sleepUntilSignal(nil)
}

// timeline does privileged work from its first instruction on, each step
// needing another capability, at roughly 0, 0.1, 0.5, 1, 2 and 5 s after it
// started: NET_BIND_SERVICE (bind port 80), CHOWN (a new file in DIR to
// nobody), NET_RAW (a raw socket), MKNOD (a character device in DIR),
// SETGID (setgid(nobody)), SETUID (setuid(nobody)). It exits 0 when all
// succeeded, so running it with the advised capabilities proves them
// sufficient.
func timeline(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("need DIR")
	}
	start := time.Now()
	dir := args[0]
	steps := []struct {
		at   time.Duration
		name string
		do   func() error
	}{
		{0, "bind :80", func() error { return bind80(nil) }},
		{100 * time.Millisecond, "chown", func() error { return chown([]string{filepath.Join(dir, fmt.Sprintf("owned-%d", os.Getpid()))}) }},
		{500 * time.Millisecond, "raw socket", func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}},
		{time.Second, "mknod", func() error {
			path := filepath.Join(dir, fmt.Sprintf("null-%d", os.Getpid()))
			return unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
		}},
		{2 * time.Second, "setgid", func() error { return syscall.Setgid(nobody) }},
		{5 * time.Second, "setuid", func() error { return syscall.Setuid(nobody) }},
	}
	for _, s := range steps {
		time.Sleep(time.Until(start.Add(s.at)))
		if err := s.do(); err != nil {
			return fmt.Errorf("%s at %s: %w", s.name, time.Since(start).Round(time.Millisecond), err)
		}
	}
	fmt.Println("timeline: every step succeeded")
	return nil
}

// escape moves itself into a new cgroup below its own (as a process that
// manages its own cgroups does), gives FILE to nobody there (CHOWN), and
// leaves a child behind in that cgroup, sleeping, whose pid it writes to
// FILE.pid: a recording must see the chown and must not let the child
// outlive it.
func escape(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("need FILE")
	}
	mount, err := cgroup2Mount()
	if err != nil {
		return err
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	var path string
	for _, line := range strings.Split(string(own), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			path = rest
		}
	}
	if path == "" {
		return fmt.Errorf("no cgroup2 line in /proc/self/cgroup: %q", own)
	}
	sub := filepath.Join(mount, path, "escaped")
	if err := os.Mkdir(sub, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sub, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("move into %s: %w", sub, err)
	}
	if err := chown(args); err != nil {
		return err
	}
	child := exec.Command("/proc/self/exe", "sleep")
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return err
	}
	return os.WriteFile(args[0]+".pid", []byte(strconv.Itoa(child.Process.Pid)), 0o644)
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if fields := strings.Fields(pre); ok && len(fields) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return fields[4], nil
		}
	}
	return "", errors.New("no cgroup2 mount in /proc/self/mountinfo")
}
