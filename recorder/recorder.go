// Package recorder runs a workload under capprof's eBPF probe and turns what
// the kernel reported into a profile.
package recorder

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/profile"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/internal/outfile"
	"github.com/capprof/capprof/internal/redact"
)

// CommandConfig is what `capprof record -- COMMAND` needs.
type CommandConfig struct {
	Command []string
	// Name is the container name in the profile.
	Name string
	// Output is the profile file; JSON, or YAML for .yaml/.yml; "-" is
	// Stdout.
	Output string
	// Duration stops the command after this long (0: until it exits).
	Duration time.Duration
	// Startup is the startup window: checks in the first Startup after the
	// command starts are in the startup phase, later ones steady.
	Startup time.Duration
	// Probe chooses the kernel hooks (bpf.Auto: the first that works).
	Probe bpf.Backend
	// EventBufferMiB sizes the kernel's event buffer (0: 4 MiB).
	EventBufferMiB int
	// StopTimeout is how long the command has to exit after being asked to
	// stop before every process in its cgroup is killed.
	StopTimeout time.Duration
	// Signals delivers SIGINT/SIGTERM received by capprof; they stop the
	// recording and are forwarded to the command.
	Signals <-chan os.Signal
	// Redact masks secrets in the command line the profile keeps.
	Redact *redact.Redactor
	// Stdin, Stdout and Stderr are the command's.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Progress receives capprof's own progress lines and warnings.
	Progress       io.Writer
	ProgressPeriod time.Duration
	Version        string
	// Events, when set, streams live events (record --events).
	Events *EventsConfig
	// Restrict, when set, runs the command as a container with that
	// securityContext would run it (verify's runs); else with capprof's
	// own privileges.
	Restrict *Restriction
}

// RecordCommand runs the command in a fresh cgroup, records it and every
// descendant, saves the profile and returns the command's exit code (128+n
// when a signal ended it).
func RecordCommand(cfg CommandConfig) (int, error) {
	if err := checkCommand(cfg); err != nil {
		return 0, err
	}
	if err := checkOutputs(cfg.Output, cfg.Events); err != nil {
		return 0, err
	}
	return runCommand(cfg, true, func(rec *recording, meta v1alpha1.Metadata) error {
		return rec.finish(meta, cfg.Output, cfg.Stdout, cfg.Name)
	})
}

// RunCommand records the command as RecordCommand does, without announcing
// it or saving anything: it returns the exit code and the profile. Output
// and Events are not used.
func RunCommand(cfg CommandConfig) (int, *v1alpha1.Profile, error) {
	if err := checkCommand(cfg); err != nil {
		return 0, nil, err
	}
	cfg.Events = nil
	var p *v1alpha1.Profile
	code, err := runCommand(cfg, false, func(rec *recording, meta v1alpha1.Metadata) error {
		var err error
		p, _, err = rec.collect(meta)
		return err
	})
	return code, p, err
}

func checkCommand(cfg CommandConfig) error {
	if len(cfg.Command) == 0 {
		return errors.New("nothing to record: give --pods NAME[,NAME...] or -l SELECTOR to record pods, or -- COMMAND [ARGS...] to record a command")
	}
	return NeedRoot("record")
}

// NeedRoot fails early, before anything runs, when verb (record, verify,
// probes) cannot load eBPF programs for want of root.
func NeedRoot(verb string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s needs root: loading eBPF programs takes CAP_BPF and CAP_PERFMON, and capprof reads and writes root's files under /sys; run it with sudo", verb)
	}
	return nil
}

// runCommand runs and records the command; finish ends the recording.
func runCommand(cfg CommandConfig, announce bool, finish func(*recording, v1alpha1.Metadata) error) (int, error) {
	cgroupRoot, err := cgroup2Mount()
	if err != nil {
		return 0, err
	}
	sweepStaleCgroups(cgroupRoot, cfg.Progress)
	rec, err := startRecording(recordingOptions{progress: cfg.Progress, startup: cfg.Startup, backend: cfg.Probe,
		events: cfg.Events, node: hostname(), eventBufferMiB: cfg.EventBufferMiB})
	if err != nil {
		return 0, err
	}
	defer rec.close()

	cg, err := createCgroup(cgroupRoot, fmt.Sprintf("%s%d-%d", cgroupPrefix, os.Getpid(), time.Now().UnixNano()))
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := cg.remove(); err != nil {
			fmt.Fprintf(cfg.Progress, "capprof: warning: %v\n", err)
		}
	}()
	// Not started: the command's exec starts its startup window. The
	// cgroups it creates below are recorded too.
	rec.names.addCommand(cg.id, &namedTarget{identity: v1alpha1.Identity{Name: cfg.Name},
		pod: &events.Pod{Container: &events.Container{Name: cfg.Name}}})
	if _, err := rec.probe.AddTarget(cg.id, bpf.Target{}); err != nil {
		return 0, err
	}

	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	// clone3(CLONE_INTO_CGROUP), Linux 5.7: the child is born in the target
	// cgroup, so nothing it does escapes the filter and nothing capprof does
	// enters it. If capprof is killed, the command is too (Pdeathsig); what
	// it started is killed with its cgroup by the next capprof
	// (sweepStaleCgroups).
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.dir.Fd()), Pdeathsig: syscall.SIGKILL}
	terminal := foregroundTerminal(cfg.Stdin)
	commandGroup(cmd.SysProcAttr, terminal)
	exited, err := startCommand(cmd, cfg.Restrict)
	if err != nil {
		rec.stop()
		return 0, StartError{Command: cfg.Command[0], Err: err}
	}
	command := cfg.Redact.Args(cfg.Command) // as the profile and the progress lines show it
	if announce {
		fmt.Fprintf(cfg.Progress, "capprof: recording %q as container %q (pid %d, cgroup %s)\n",
			strings.Join(command, " "), cfg.Name, cmd.Process.Pid, cg.path)
	}

	exitCode := waitCommand(cmd, exited, cg, cfg, rec.col, rec.start)

	n, err := cg.killAll(10 * time.Second)
	takeTerminalBack(terminal)
	if err != nil {
		fmt.Fprintf(cfg.Progress, "capprof: warning: %v\n", err)
	} else if n > 0 {
		fmt.Fprintf(cfg.Progress, "capprof: killed %d leftover process(es) of the command (in its cgroup and the cgroups it created)\n", n)
	}
	meta := v1alpha1.Metadata{Node: hostname(), CapprofVersion: cfg.Version, Command: command}
	if err := rec.finishUnlessSignalled(cfg.Signals, func() error { return finish(rec, meta) }); err != nil {
		return exitCode, err
	}
	return exitCode, nil
}

// recording is a loaded and attached probe with its event reader running.
type recording struct {
	probe      *bpf.Probe
	col        *collector
	live       *liveStream // nil without --events
	readerDone chan error
	liveDone   chan error
	start      time.Time
	progress   io.Writer
	// names names the target cgroups.
	names   *targetNames
	startup time.Duration
	quit    bool // a signal cut finishing short (finishUnlessSignalled)
	stopped bool
}

type recordingOptions struct {
	progress io.Writer
	startup  time.Duration
	backend  bpf.Backend
	events   *EventsConfig
	node     string
	// eventBufferMiB sizes the event ring buffer (0: the probe's default).
	eventBufferMiB int
	pods           bool // recording pods, not a command
	// requireClassification refuses to record when the probe cannot tell the
	// kernel's silent checks from real use: no audit options, and no
	// kernel symbols to classify call stacks with.
	requireClassification bool
}

// startRecording loads and attaches the probe and starts reading its events.
// Targets are added afterwards; until then nothing is recorded.
func startRecording(opts recordingOptions) (*recording, error) {
	symbolsErr := checkKernelSymbols(kallsymsPath)
	if symbolsErr != nil && !opts.requireClassification {
		fmt.Fprintf(opts.progress, "capprof: warning: %v: the tracepoint probe's checks cannot be told apart by their call stacks (the kernel's silent probes from real use): they are classed unknown, and --probe auto prefers fexit and kprobe, which see the checks' options\n", symbolsErr)
	}
	probe, err := bpf.Open(bpf.Options{Startup: opts.startup, Backend: opts.backend,
		LiveEvents: opts.events != nil, CheckInterval: eventsRateLimit(opts.events), PreferAuditOptions: symbolsErr != nil,
		EventBufferBytes: uint32(opts.eventBufferMiB) << 20})
	if err != nil {
		return nil, explainProbeFailure(err)
	}
	if symbolsErr != nil && opts.requireClassification && !probe.Backend().SeesAuditOptions() {
		probe.Close()
		if have, err := effectiveCapabilities(); err == nil && !have.Has(unix.CAP_SYSLOG) {
			symbolsErr = fmt.Errorf("capprof lacks SYSLOG (in a container, add it to securityContext.capabilities.add): %w", symbolsErr)
		}
		return nil, fmt.Errorf("%w: with the %s probe, the kernel's silent checks (every private writable mmap checks SYS_ADMIN) could not be told from real use, "+
			"and every recorded workload would seem to need them", symbolsErr, probe.Backend())
	}
	self, err := bpf.ExeIDOf("/proc/self/exe")
	if err != nil {
		probe.Close()
		return nil, fmt.Errorf("identify capprof's own executable: %w", err)
	}
	names := newTargetNames()
	r := &recording{probe: probe, col: newCollector(self, names), readerDone: make(chan error, 1), liveDone: make(chan error, 1),
		start: time.Now(), progress: opts.progress, names: names, startup: opts.startup}
	if opts.events != nil {
		if r.live, err = newLiveStream(*opts.events, opts.progress, probe, opts.node, self, opts.pods, names); err != nil {
			probe.Close()
			return nil, err
		}
		go func() { r.liveDone <- r.live.readLive() }()
	} else {
		r.liveDone <- nil
	}
	d := dispatcher{col: r.col, live: r.live}
	go func() { r.readerDone <- d.consume(probe.ReadEvent) }()
	return r, nil
}

func eventsRateLimit(cfg *EventsConfig) time.Duration {
	if cfg == nil {
		return 0
	}
	return cfg.RateLimit
}

// listProcesses has live events name the processes already running in the
// targets added since the last call.
func (r *recording) listProcesses() error {
	if r.live == nil {
		return nil
	}
	return r.probe.ListProcesses()
}

// stop detaches the probe and drains the events: after it no counter moves,
// so the map read that follows is final.
func (r *recording) stop() error {
	if r.stopped {
		return nil
	}
	r.stopped = true
	detachErr := r.probe.Detach()
	var flushErr error
	if err := r.probe.Flush(); err != nil {
		// The readers stop when the probe closes, which close does.
		flushErr = fmt.Errorf("flush events: %w", err)
		r.probe.Close()
	}
	return errors.Join(detachErr, flushErr, <-r.readerDone, <-r.liveDone)
}

func (r *recording) close() {
	if r.quit {
		return // the finishing goroutine may still use the probe; capprof is exiting
	}
	r.stop()
	if r.live != nil { // recording failed: no events file is left behind
		r.live.discard()
	}
	r.probe.Close()
}

// StartError is a command that could not be started: not found, not
// executable, or refused.
type StartError struct {
	Command string
	Err     error
}

func (e StartError) Error() string { return fmt.Sprintf("start %q: %v", e.Command, e.Err) }
func (e StartError) Unwrap() error { return e.Err }

// NotStarted marks it for capprof's exit status (126, 127).
func (e StartError) NotStarted() {}

// QuitError is a recording that a signal cut short while it was being
// stopped and saved (or a verification, While "verifying"): nothing was
// saved, and capprof exits at once.
type QuitError struct {
	Signal syscall.Signal
	While  string // "stopping" when empty
}

// ExitStatus is capprof's exit status after it: 128+N, as a shell reports
// a process ended by signal N.
func (e QuitError) ExitStatus() int { return 128 + int(e.Signal) }

func (e QuitError) Error() string {
	return fmt.Sprintf("received %s while %s: quit without saving the profile", unix.SignalName(e.Signal), cmp.Or(e.While, "stopping"))
}

// finishUnlessSignalled runs finish (what ends a recording: waiting for the
// watchers, saving the profile) unless a signal comes first: then it
// returns a QuitError at once. A user who presses Ctrl-C again does not
// wait for a slow API server or disk. The profile is then never half
// there: outfile writes it whole or not at all.
func (r *recording) finishUnlessSignalled(signals <-chan os.Signal, finish func() error) error {
	done := make(chan error, 1)
	go func() { done <- finish() }()
	select {
	case err := <-done:
		return err
	case sig := <-signals:
		r.quit = true
		s, _ := sig.(syscall.Signal)
		return QuitError{Signal: s}
	}
}

// collect stops the recording and makes its profile, completing meta; it
// warns of what the profile may lack. It returns when the recording ended.
func (r *recording) collect(meta v1alpha1.Metadata) (*v1alpha1.Profile, time.Time, error) {
	end := time.Now()
	if err := r.stop(); err != nil {
		return nil, end, err
	}
	p, err := r.snapshot(meta, end)
	if err != nil {
		return nil, end, err
	}
	if err := r.col.symbolsErr; err != nil {
		fmt.Fprintf(r.progress, "capprof: warning: call stacks not resolved (%v): their checks are classed unknown in the profile\n", err)
	}
	if d := p.Metadata.Drops; d.Total() > 0 {
		advice := ""
		if d.Events > 0 {
			advice = " (events are dropped when the event buffer fills while capprof waits for a CPU: a larger --event-buffer-mb holds more)"
		}
		fmt.Fprintf(r.progress, "capprof: warning: %s; the profile may be incomplete%s\n", d, advice)
	}
	return p, end, nil
}

// snapshot makes the profile of what was recorded until end, completing
// meta. While the probe runs, counts may move during the read: each is
// exact as of some moment of it.
func (r *recording) snapshot(meta v1alpha1.Metadata, end time.Time) (*v1alpha1.Profile, error) {
	checks, err := r.probe.Checks()
	if err != nil {
		return nil, err
	}
	if !r.stopped {
		checks = r.col.described(checks)
	}
	stats, err := r.probe.Stats()
	if err != nil {
		return nil, err
	}
	meta.StartTime = v1alpha1.Time{Time: r.start.UTC().Truncate(time.Millisecond)}
	meta.EndTime = v1alpha1.Time{Time: end.UTC().Truncate(time.Millisecond)}
	meta.KernelRelease = bpf.KernelRelease()
	meta.Probe = string(r.probe.Backend())
	meta.StartupWindow = v1alpha1.Duration(r.startup)
	meta.Drops = v1alpha1.Drops{
		Events:                    kernelCount(stats.RingBufferDrops),
		UncountedChecks:           kernelCount(stats.AggregationMapFull),
		UnfollowedCredentialCalls: kernelCount(stats.PendingMapFull),
		UnfollowedDenials:         kernelCount(stats.OutcomesLost),
		UntrackedCgroups:          kernelCount(stats.TargetsFull),
		UndecodableEvents:         kernelCount(r.col.undecodable.Load()),
		ExecsNotKept:              r.col.notKept(),
		SkippedProbeRuns:          kernelCount(stats.SkippedRuns),
	}
	p := &v1alpha1.Profile{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Metadata: meta}
	seeds, _ := r.names.recorded()
	if p.Containers, err = r.col.containers(checks, seeds); err != nil {
		return nil, err
	}
	return p, nil
}

// finish stops the recording, completes meta, saves the profile atomically
// and prints the summary line for what.
func (r *recording) finish(meta v1alpha1.Metadata, output string, stdout io.Writer, what string) error {
	p, end, err := r.collect(meta)
	if err != nil {
		return err
	}
	if err := profile.Write(p, "-o", output, stdout); err != nil {
		return err
	}
	if r.live != nil {
		live := r.live
		r.live = nil
		stats, err := r.probe.Stats()
		if err != nil {
			return err
		}
		if err := live.close(r.progress, stats.LiveDrops); err != nil {
			return err
		}
	}
	fmt.Fprintf(r.progress, "capprof: recorded %s in %s with probe %s: %s; saved %s; %s\n",
		what, end.Sub(r.start).Round(time.Millisecond), r.probe.Backend(), r.col.summary(), output, ownUsage())
	return nil
}

// waitCommand waits for the command to exit, stopping it at the deadline or
// on a signal (forwarded; a second one kills the cgroup at once), and prints
// progress meanwhile.
func waitCommand(cmd *exec.Cmd, exited <-chan struct{}, cg *cgroup, cfg CommandConfig, col *collector, start time.Time) int {
	deadline, progress, stopTicker := recordingClock(cfg.Duration, cfg.ProgressPeriod)
	defer stopTicker()
	var killTimer <-chan time.Time
	stopping := false
	stop := func(sig os.Signal, why string) {
		if stopping {
			fmt.Fprintf(cfg.Progress, "capprof: %s again: killing the command\n", why)
			cg.killAll(10 * time.Second)
			return
		}
		stopping = true
		fmt.Fprintf(cfg.Progress, "capprof: %s: sending %s to the command, killing it after %s\n", why, unix.SignalName(sig.(syscall.Signal)), cfg.StopTimeout)
		cmd.Process.Signal(sig)
		killTimer = time.After(cfg.StopTimeout)
	}
	for {
		select {
		case <-exited:
			return exitStatus(cmd.ProcessState)
		case <-deadline:
			stop(syscall.SIGTERM, fmt.Sprintf("duration %s reached", cfg.Duration))
		case sig := <-cfg.Signals:
			why := "received " + unix.SignalName(sig.(syscall.Signal))
			if sig == syscall.SIGHUP {
				// The terminal went away (an SSH session dropped): stop as
				// for SIGTERM; the command may read SIGHUP as "reload".
				sig = syscall.SIGTERM
			}
			stop(sig, why)
		case <-killTimer:
			fmt.Fprintf(cfg.Progress, "capprof: the command did not exit within %s: killing it\n", cfg.StopTimeout)
			cg.killAll(10 * time.Second)
		case <-progress:
			fmt.Fprintf(cfg.Progress, "capprof: %s elapsed, %s\n", time.Since(start).Round(time.Second), col.summary())
		}
	}
}

// startCommand starts cmd and waits for it in a goroutine that keeps its OS
// thread until the command has exited: the kernel sends Pdeathsig when the
// thread that forked the child exits, which the Go runtime may do with an
// unlocked thread at any time. With a restriction, the thread is
// restricted before it forks and never unlocked, so the runtime ends it
// afterwards. The channel is closed when cmd has exited.
func startCommand(cmd *exec.Cmd, restrict *Restriction) (<-chan struct{}, error) {
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if restrict == nil {
			defer runtime.UnlockOSThread()
		} else if err := restrictThread(*restrict); err != nil {
			started <- fmt.Errorf("restrict to %s: %w", restrict, err)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	return exited, <-started
}

// recordingClock returns a channel that fires once after duration (nil
// when it is 0: no deadline), one that ticks every period for progress lines
// (nil when 0), and a function that stops the ticker.
func recordingClock(duration, period time.Duration) (deadline, progress <-chan time.Time, stop func()) {
	stop = func() {}
	if duration > 0 {
		deadline = time.After(duration)
	}
	if period > 0 {
		t := time.NewTicker(period)
		progress, stop = t.C, t.Stop
	}
	return deadline, progress, stop
}

func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// checkOutputs fails early, before the workload runs, when the profile or
// the events could not be saved.
func checkOutputs(output string, events *EventsConfig) error {
	if output == "" {
		return errors.New("no output file: give -o FILE")
	}
	if err := outfile.Check("-o", output); err != nil {
		return err
	}
	if events == nil {
		return nil
	}
	if outfile.Same(output, events.Output) {
		return fmt.Errorf("--events %q is the profile's file (-o): give each its own file", events.Output)
	}
	return outfile.Check("--events", events.Output)
}

// ownUsage is capprof's own CPU time and peak RSS, without the command's
// (RUSAGE_SELF: the reaped command's usage would be in RUSAGE_CHILDREN).
func ownUsage() string {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return "resource usage unknown"
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return fmt.Sprintf("capprof used %s CPU (user %s), peak RSS %.1f MiB",
		cpu.Round(time.Millisecond), time.Duration(ru.Utime.Nano()).Round(time.Millisecond), float64(ru.Maxrss)/1024)
}

func hostname() string {
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	n, _ := os.Hostname()
	return n
}
