// Package verify proves a container's advice by experiment: it runs the
// workload with exactly the advised capabilities, then without each of them,
// records every run, and writes into the profile which capabilities the
// workload needs and which it does without. The kernel cannot tell a
// recording what would have happened had a granted check been denied;
// a run without the capability can.
package verify

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/internal/redact"
	"github.com/capprof/capprof/profile"
	"github.com/capprof/capprof/recorder"
)

// CommandConfig is what `capprof verify -- COMMAND` needs.
type CommandConfig struct {
	// Command decides success: it passes when it exits 0 and no check
	// was denied with its syscall failing.
	Command []string
	// Profile is the recording to verify; nil records Command first, with
	// capprof's own privileges.
	Profile *v1alpha1.Profile
	// Source names Profile in messages.
	Source string
	// Name is the container the command is recorded as, and the one
	// verified.
	Name string
	// Runs is how many times each set of capabilities is run.
	Runs int
	// Setup, when not empty, is a shell command run before every run, with
	// capprof's privileges and not recorded: what resets the fixtures.
	Setup string
	// Duration stops each run after this long. 0: the recording and the
	// advised runs go until the command exits, and the runs without a
	// capability are stopped after hangLimit (a server that lost a
	// capability often hangs rather than exits).
	Duration    time.Duration
	Startup     time.Duration
	Probe       bpf.Backend
	StopTimeout time.Duration
	Redact      *redact.Redactor
	// Signals stop the run under way, and verification with it: nothing
	// is saved.
	Signals <-chan os.Signal
	// Output receives the command's and the setup's output.
	Output io.Writer
	// Progress receives capprof's progress lines and warnings.
	Progress io.Writer
	Version  string
}

// ErrAdviceFailed is returned, with the profile, when the advised
// capabilities failed every run.
var ErrAdviceFailed = errors.New("the advised capabilities failed every run")

// Command verifies the advice for the command's container and returns the
// profile with its verification. With ErrAdviceFailed the profile is
// returned too: it says how the advice failed.
func Command(cfg CommandConfig) (*v1alpha1.Profile, error) {
	if cfg.Runs < 1 {
		return nil, fmt.Errorf("--runs %d: must be at least 1", cfg.Runs)
	}
	if err := recorder.NeedRoot("verify"); err != nil {
		return nil, err
	}
	v := &verifier{cfg: cfg, signals: make(chan os.Signal, 2)}
	go v.forwardSignals()
	p := cfg.Profile
	if p == nil {
		fmt.Fprintf(cfg.Progress, "capprof: verify: recording %s with capprof's privileges first\n", v.shown())
		code, recorded, _, err := v.run(nil)
		if err != nil {
			return nil, err
		}
		if code != 0 {
			return nil, fmt.Errorf("the command failed while being recorded with every capability (exit %d): verify needs a command that passes", code)
		}
		p = recorded
	}
	i, err := containerIndex(p, cfg.Name, cfg.Source)
	if err != nil {
		return nil, err
	}
	observed := p.Containers[i]
	v.cfg.Name = observed.Name  // the runs' recordings name it so too
	observed.Verification = nil // verify what was observed, not an earlier verification
	advice := profile.Analyze([]profile.Input{{Source: cfg.Source, Profile: &v1alpha1.Profile{Containers: []v1alpha1.Container{observed}}}}).Containers[0]
	advised := recorder.Restriction{Capabilities: addedCapabilities(advice), NoNewPrivs: noNewPrivs(advice)}
	caps := advised.Capabilities.List()
	as := "as root with drop [ALL]"
	if advised.NoNewPrivs {
		as += " and no_new_privs (allowPrivilegeEscalation: false)"
	}
	v.total = cfg.Runs * (1 + len(caps))
	plan := fmt.Sprintf("%d with the advised capabilities (%s), then %d without each of them in turn", cfg.Runs, advised, cfg.Runs*len(caps))
	if len(caps) == 0 {
		plan = "with no capabilities, as advised"
	}
	fmt.Fprintf(cfg.Progress, "capprof: verify: running %s %s, %s: %s\n", v.shown(), times(v.total), as, plan)

	result := &v1alpha1.Verification{Command: cfg.Redact.Args(cfg.Command), Time: v1alpha1.Time{Time: time.Now().UTC().Truncate(time.Second)}, RunsPerSet: cfg.Runs}
	result.Advised.Capabilities, result.Advised.NoNewPrivs = advised.Capabilities, advised.NoNewPrivs
	runs, err := v.runSet(advised, nil)
	if err != nil {
		return nil, err
	}
	result.Advised.Passed, result.Advised.Failed, result.Advised.FailedRun = runs.passed, runs.failed, runs.firstFailed
	p.Containers[i].Verification = result
	if runs.passed == 0 {
		return p, ErrAdviceFailed
	}
	if cfg.Duration == 0 {
		v.limit = v.hangLimit()
		fmt.Fprintf(cfg.Progress, "capprof: verify: the advised runs took up to %s: a run without a capability is stopped after %s, and fails (--duration sets the limit)\n",
			v.advisedTook.Round(time.Millisecond), v.limit)
	}
	current := advised
	for _, c := range caps {
		without := current
		without.Capabilities &^= 1 << c
		runs, err := v.runSet(without, &c)
		if err != nil {
			return nil, err
		}
		vc := v1alpha1.VerifiedCapability{Capability: c, Passed: runs.passed, Failed: runs.failed}
		switch {
		case runs.neededBy != nil:
			vc.Verified, vc.FailedRun = v1alpha1.VerifiedNeeded, runs.neededBy
		case runs.passed > 0:
			vc.Verified = v1alpha1.VerifiedRemovable
			current = without
		default:
			vc.Verified, vc.FailedRun = v1alpha1.VerifiedUndecided, runs.firstFailed
		}
		fmt.Fprintf(cfg.Progress, "capprof: verify: %s %s\n", c, vc.Verified)
		result.Capabilities = append(result.Capabilities, vc)
	}
	return p, nil
}

// times is "once" or "N times".
func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// verifier runs the command, forwarding signals to the run under way.
type verifier struct {
	cfg         CommandConfig
	signals     chan os.Signal // the run's
	interrupted atomic.Value   // the first signal received
	done, total int            // verification runs made, and to make
	// advisedTook is the longest passing run with the advised
	// capabilities; limit bounds the runs without one (see hangLimit).
	advisedTook, limit time.Duration
}

// Without --duration, a run without a capability is stopped after
// hangFactor times the longest passing advised run, and no sooner than
// minHangLimit: it failed, the capability's denials tell why.
const (
	hangFactor   = 10
	minHangLimit = 30 * time.Second
)

func (v *verifier) hangLimit() time.Duration { return max(minHangLimit, hangFactor*v.advisedTook) }

func (v *verifier) forwardSignals() {
	for sig := range v.cfg.Signals {
		v.interrupted.CompareAndSwap(nil, sig)
		select {
		case v.signals <- sig:
		default:
		}
	}
}

// shown is the command as progress lines show it: redacted.
func (v *verifier) shown() string { return profile.CommandLine(v.cfg.Redact.Args(v.cfg.Command)) }

// setResult is how the runs with one set of capabilities went.
type setResult struct {
	passed, failed int
	firstFailed    *v1alpha1.FailedRun
	// neededBy is the first failed run in which the capability taken away
	// was denied.
	neededBy *v1alpha1.FailedRun
}

// runSet runs the command cfg.Runs times restricted to r; taken is the
// capability taken away, if any.
func (v *verifier) runSet(r recorder.Restriction, taken *v1alpha1.Capability) (setResult, error) {
	var res setResult
	what := "the advised capabilities"
	if taken != nil {
		what = "without " + taken.KubernetesName()
	}
	for range v.cfg.Runs {
		v.done++
		code, p, took, err := v.run(&r)
		if err != nil {
			return res, err
		}
		c, err := containerIndex(p, v.cfg.Name, "the run's recording")
		if err != nil {
			return res, err
		}
		denials, takenDenied := profile.RunDenials(p.Containers[c], taken)
		if code == 0 && !profile.Failing(denials) {
			if taken == nil {
				v.advisedTook = max(v.advisedTook, took)
			}
			res.passed++
			fmt.Fprintf(v.cfg.Progress, "capprof: verify: run %d of %d, %s (%s): passed\n", v.done, v.total, what, r)
			continue
		}
		res.failed++
		failure := &v1alpha1.FailedRun{ExitStatus: code, Denials: denials}
		if res.firstFailed == nil {
			res.firstFailed = failure
		}
		if takenDenied && res.neededBy == nil {
			res.neededBy = failure
		}
		note := ""
		if v.limit > 0 && took >= v.limit {
			note = fmt.Sprintf(" (stopped after %s: it hung)", v.limit)
		}
		if taken != nil && !takenDenied {
			note += fmt.Sprintf(" (%s was never denied: not counted against it)", taken)
		}
		fmt.Fprintf(v.cfg.Progress, "capprof: verify: run %d of %d, %s (%s): failed: %s%s\n", v.done, v.total, what, r, failure, note)
	}
	return res, nil
}

// run makes one run: the setup, then the command restricted to r (nil:
// capprof's privileges), recorded. It returns how long the command took,
// the setup left out, which is what the hang limit bounds.
func (v *verifier) run(r *recorder.Restriction) (int, *v1alpha1.Profile, time.Duration, error) {
	if err := v.stopped(); err != nil {
		return 0, nil, 0, err
	}
	if v.cfg.Setup != "" {
		setup := exec.Command("/bin/sh", "-c", v.cfg.Setup)
		setup.Stdout, setup.Stderr = v.cfg.Output, v.cfg.Output
		if err := setup.Run(); err != nil {
			return 0, nil, 0, fmt.Errorf("--setup %q: %w", v.cfg.Setup, err)
		}
	}
	start := time.Now()
	code, p, err := recorder.RunCommand(recorder.CommandConfig{
		Command: v.cfg.Command, Name: v.cfg.Name, Duration: cmp.Or(v.cfg.Duration, v.limit), Startup: v.cfg.Startup,
		Probe: v.cfg.Probe, StopTimeout: v.cfg.StopTimeout, Signals: v.signals, Redact: v.cfg.Redact,
		Stdout: v.cfg.Output, Stderr: v.cfg.Output, Progress: v.cfg.Progress, Version: v.cfg.Version, Restrict: r,
	})
	if err != nil {
		return 0, nil, 0, err
	}
	if err := v.stopped(); err != nil {
		return 0, nil, 0, err
	}
	return code, p, time.Since(start), nil
}

// stopped is an error once a signal came: verification stops, nothing is
// saved.
func (v *verifier) stopped() error {
	sig, ok := v.interrupted.Load().(syscall.Signal)
	if !ok {
		return nil
	}
	return recorder.QuitError{Signal: sig, While: "verifying"}
}

// containerIndex finds the command's container in a profile: the one named
// name, or the only one.
func containerIndex(p *v1alpha1.Profile, name, source string) (int, error) {
	for i, c := range p.Containers {
		if c.Name == name && c.Owner == nil && c.Namespace == "" {
			return i, nil
		}
	}
	if len(p.Containers) == 1 {
		return 0, nil
	}
	var names []string
	for _, c := range p.Containers {
		names = append(names, c.Key().String())
	}
	return 0, fmt.Errorf("%s: no container %q among %d (%s): give --name", source, name, len(p.Containers), strings.Join(names, ", "))
}

func addedCapabilities(a profile.ContainerAnalysis) v1alpha1.CapSet {
	var set v1alpha1.CapSet
	if sc := a.SecurityContext; sc != nil && sc.Capabilities != nil {
		for _, name := range sc.Capabilities.Add {
			if c, err := v1alpha1.ParseCapability(string(name)); err == nil {
				set |= 1 << c
			}
		}
	}
	return set
}

func noNewPrivs(a profile.ContainerAnalysis) bool {
	sc := a.SecurityContext
	return sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
}
