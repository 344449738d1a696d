package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/profile"
)

// startSleeping starts `capprof record ARGS -- workload sleep` and waits
// until the workload says it is ready. capprof's stderr goes to a file, not
// a pipe, which a workload that outlived capprof would hold open.
func startSleeping(t *testing.T, args ...string) (cmd *exec.Cmd, stderr func() string) {
	t.Helper()
	cmd = exec.Command(capprofBin, append(append([]string{"record"}, args...), "--", workloadBin, "sleep")...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = errFile
	stderr = func() string { return string(mustRead(t, errFile.Name())) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("workload did not start: %q %v; stderr: %s", line, err, stderr())
	}
	return cmd, stderr
}

// TestHangupStopsRecording: SIGHUP (a dropped SSH session) stops the
// recording as SIGTERM does: the command gets SIGTERM, the profile is saved.
func TestHangupStopsRecording(t *testing.T) {
	requireRecording(t)
	out := filepath.Join(t.TempDir(), "profile.json")
	cmd, stderr := startSleeping(t, "-o", out)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	state, err := cmd.Process.Wait()
	if err != nil || state.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("capprof after SIGHUP: %v %v, want the command's exit by SIGTERM (143); stderr: %s", state, err, stderr())
	}
	if !strings.Contains(stderr(), "received SIGHUP: sending SIGTERM to the command") {
		t.Fatalf("stderr does not say what happened: %s", stderr())
	}
	p, err := profile.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	wantExitStatuses(t, p, workloadBin, "SIGTERM")
}

// TestEventsReaderGoesAway: `record --events - | head -1`: when stdout's
// reader goes away, events stop with one warning and the recording goes on
// to save its profile; capprof is not killed by SIGPIPE.
func TestEventsReaderGoesAway(t *testing.T) {
	requireRecording(t)
	out := filepath.Join(t.TempDir(), "profile.json")
	cmd := exec.Command(capprofBin, "record", "-o", out, "--events", "-", "--events-rate-limit", "0", "--",
		"sh", "-c", fmt.Sprintf("sleep 1; %s bench setuid 2000 1 >/dev/null", workloadBin))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("no event line: %v; stderr: %s", err, stderr.String())
	}
	stdout.Close() // as head does after its line
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capprof after its stdout closed: %v, want exit 0; stderr: %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "stdout was closed by its reader (broken pipe)") {
		t.Fatalf("no warning about the closed stdout: %s", stderr.String())
	}
	p, err := profile.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	wantRequired(t, p, "SETUID")
}

// TestKilledRecordingLeavesNothing: when capprof is killed (SIGKILL), the
// command dies with it, the --events file leaves no temporary file behind,
// and the next capprof kills what the command left in its cgroup and
// removes the cgroup.
func TestKilledRecordingLeavesNothing(t *testing.T) {
	requireRecording(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	cmd := exec.Command(capprofBin, "record", "-o", filepath.Join(dir, "p.json"), "--events", filepath.Join(dir, "events.json"), "--",
		"sh", "-c", fmt.Sprintf("%s sleep >/dev/null & echo $! > %s; wait", workloadBin, pidFile))
	// A file, not a pipe: the child that outlives capprof keeps its end.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(30 * time.Second)
	for child == 0 {
		if data, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(data), "\n") {
			child, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the command did not start its child; stderr: %s", mustRead(t, stderr.Name()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer syscall.Kill(child, syscall.SIGKILL)
	cg := strings.TrimSpace(string(mustRead(t, fmt.Sprintf("/proc/%d/cgroup", child))))
	cmd.Process.Kill()
	cmd.Wait()

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "child.pid" {
			t.Fatalf("the killed capprof left %s behind in %s", e.Name(), dir)
		}
	}
	if !alive(child) {
		t.Fatalf("the command's child %d died with capprof: the test needs it to outlive the command", child)
	}

	r := record(t, nil, "true")
	if r.code != 0 || !strings.Contains(r.stderr, "of a capprof that died") {
		t.Fatalf("next record: exit %d, stderr %q; want it to clean up the dead capprof's cgroup", r.code, r.stderr)
	}
	deadline = time.Now().Add(5 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the dead capprof's command's child %d (%s) still runs after the next recording", child, cg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// alive reports whether a process runs (a zombie does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

// TestOneInterruptPerCtrlC: Ctrl-C on the terminal capprof runs on reaches
// the command exactly once (a program that force-quits on a second SIGINT
// still shuts down cleanly), and capprof saves the profile when it exits.
func TestOneInterruptPerCtrlC(t *testing.T) {
	requireRecording(t)
	master, terminal := openTerminal(t)
	dir := t.TempDir()
	count, out := filepath.Join(dir, "count"), filepath.Join(dir, "profile.json")
	logs, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(capprofBin, "record", "-o", out, "--", workloadBin, "interrupts", count)
	// A session of its own on the terminal, in its foreground, as a shell
	// runs a job there.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = terminal, logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	output := func() string { return string(mustRead(t, logs.Name())) }
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(output(), "ready\n"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the workload did not start: %s", output())
		}
	}
	if _, err := master.Write([]byte{3}); err != nil { // ^C: the terminal's interrupt character
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("capprof: %v; output: %s", err, output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("capprof still running after Ctrl-C; output: %s", output())
	}
	if n := string(mustRead(t, count)); n != "1" {
		t.Errorf("one Ctrl-C brought the command %s SIGINTs, want 1", n)
	}
	if _, err := profile.Load(out); err != nil {
		t.Errorf("no profile after Ctrl-C: %v", err)
	}
}

// openTerminal opens a pseudo-terminal: its master, and the terminal.
func openTerminal(t *testing.T) (master, terminal *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal (devpts mounted on /dev/pts?): %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	terminal, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { terminal.Close() })
	// Keep the terminal's echo of ^C from filling its buffer.
	go io.Copy(io.Discard, master)
	return master, terminal
}

// quitWhileSaving starts `capprof record -o FIFO args...`, which blocks
// saving into a FIFO nobody reads, sends SIGINT to stop it, then another:
// capprof must quit at once, say so, and exit 128+SIGINT.
func quitWhileSaving(t *testing.T, started string, args ...string) {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	b := &background{done: make(chan error, 1)}
	b.cmd = exec.Command(capprofBin, append([]string{"record", "-o", fifo, "--progress", "0"}, args...)...)
	b.cmd.Stderr = b
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() { b.cmd.Process.Kill() })
	b.waitFor(t, started)
	b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-b.done:
		t.Fatalf("capprof exited (%v) while its output had no reader:\n%s", err, b.log())
	case <-time.After(2 * time.Second): // stopping, and blocked opening the FIFO
	}
	b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("capprof did not quit on a second SIGINT:\n%s", b.log())
	}
	if code := b.cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGINT) ||
		!strings.Contains(b.log(), "capprof: received SIGINT while stopping: quit without saving the profile") {
		t.Fatalf("exit %d, want 130 and a message:\n%s", code, b.log())
	}
}

// TestSecondSignalQuitsWhileSaving: a recording stopped by a signal that
// then hangs saving (here: a FIFO nobody reads) quits on the next signal.
func TestSecondSignalQuitsWhileSaving(t *testing.T) {
	requireRecording(t)
	quitWhileSaving(t, "capprof: recording ", "--", workloadBin, "sleep")
}

// TestKernelSymbolsHidden: with /proc/kallsyms showing no addresses (as
// under kernel.kptr_restrict=2, or in a container without CAP_SYSLOG),
// capprof says so at the start, still saves the profile, and classes the
// checks it cannot tell apart as unknown rather than audited.
func TestKernelSymbolsHidden(t *testing.T) {
	requireRecording(t)
	dir := t.TempDir()
	zeros := filepath.Join(dir, "kallsyms")
	if err := os.WriteFile(zeros, []byte("0000000000000000 T _stext\n0000000000000000 T cap_capable\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "profile.json")
	// A private mount namespace (Go makes its mounts private) in which a
	// file of zeros hides the kernel's symbols.
	cmd := exec.Command("/bin/sh", "-c", `mount -o bind "$1" /proc/kallsyms && exec "$2" record -o "$3" -- "$4" bind80`, "sh", zeros, capprofBin, out, workloadBin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	stderr, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("record with kallsyms hidden: %v\n%s", err, stderr)
	}
	if !strings.Contains(string(stderr), "/proc/kallsyms shows no addresses (kernel.kptr_restrict, or no CAP_SYSLOG)") {
		t.Errorf("capprof did not say the symbols are hidden:\n%s", stderr)
	}
	p, err := profile.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, cc := range p.Containers[0].Capabilities {
		for _, s := range cc.Sources {
			if s.AuditFrom == v1alpha1.AuditFromStack {
				t.Errorf("%s by %s in %s classed %s from a stack no symbol named", cc.Capability, s.Executable, s.Syscall, s.Audit)
			}
		}
	}
}
