// Command workload performs one privileged (or deliberately unprivileged)
// action per subcommand, so capprof's end-to-end tests and demo know exactly
// which capability each run needs.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	"noise":   {"DIR", noise},
	"exit":    {"CODE", exitWith},
	"sleep":   {"", sleepUntilSignal},
	"serve":   {"DATADIR", serve},
	"version": {"", func([]string) error { fmt.Println("workload 1"); return nil }},
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
