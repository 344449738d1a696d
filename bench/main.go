// Command bench measures what capprof costs, side by side with no tracing and
// with bpftrace doing the simplest equivalent in-kernel aggregation, on the
// same machine in one run. `make bench` runs it (as root) and it prints a
// table on stdout and writes the full figures as JSON.
//
// Each workload times itself (the workload program's "bench" action), so
// tool start-up never counts; BPF program cost comes from the kernel's own
// counters (kernel.bpf_stats_enabled: run_time_ns / run_cnt per program).
package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/api/v1alpha1"
	bpftracecmd "github.com/capprof/capprof/bench/bpftrace"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/internal/outfile"
	"github.com/capprof/capprof/profile"
)

// tarFiles is (e)'s tarball: enough files that one extraction takes a few
// hundred milliseconds, so that run-to-run noise is small against it.
const tarFiles = 10000

// bareCountProgram counts every check in one counter: about the least any
// program that does something per check costs, the floor under capprof's
// untracked path.
const bareCountProgram = `tracepoint:capability:cap_capable { @ = count(); }`

type workload struct {
	ID, Name   string
	Kind       string // the workload program's bench kind
	Iterations string
}

type mode string

const (
	baseline  mode = "baseline"
	tracked   mode = "capprof tracked"
	untracked mode = "capprof untracked"
	bpftrace  mode = "bpftrace"
)

var modes = []mode{baseline, tracked, untracked, bpftrace}

// ProgramCost is one BPF program's cost over a measurement.
type ProgramCost struct {
	Name     string  `json:"name"`
	Runs     uint64  `json:"runs"`
	NsPerRun float64 `json:"nsPerRun"`
}

// Measurement is one workload under one mode.
type Measurement struct {
	Workload    string        `json:"workload"`
	Name        string        `json:"name"`
	Mode        mode          `json:"mode"`
	ElapsedNs   []int64       `json:"elapsedNs"`
	MedianNs    int64         `json:"medianNs"`
	OverheadPct float64       `json:"overheadPct"`
	SpreadPct   [2]float64    `json:"spreadPct"` // min and max run against the baseline median
	Programs    []ProgramCost `json:"programs,omitempty"`
	// BPFSharePct is the time the programs ran during one repetition (the
	// run with statistics on), against the baseline's median: the part of
	// the overhead the BPF programs account for, without wall-time noise.
	BPFSharePct   float64 `json:"bpfSharePct,omitempty"`
	UserCPUMs     float64 `json:"capprofUserCpuMs,omitempty"`
	PeakRSSMiB    float64 `json:"capprofPeakRssMiB,omitempty"`
	EventsDropped *int64  `json:"eventsDropped,omitempty"`
}

// Report is everything one run measured.
type Report struct {
	Time    time.Time     `json:"time"`
	Kernel  string        `json:"kernel"`
	Probe   string        `json:"probe"` // what capprof record --probe auto chose
	Pinning string        `json:"pinning"`
	CPU     string        `json:"cpu"`
	CPUs    int           `json:"cpus"`
	Reps    int           `json:"reps"`
	Results []Measurement `json:"results"`
	// EmptyProgramNs is what an empty tp_btf/cap_capable program measures
	// per run with statistics on: the floor under every ns/run figure.
	EmptyProgramNs float64 `json:"emptyProgramNsPerRun"`
	// BareCountNs is bpftrace's bareCountProgram per run, over (a) with
	// statistics on.
	BareCountNs float64 `json:"bareCountNsPerRun"`
	// UntrackedLadder is what the untracked path's loads cost, one more
	// at each step, over (a) with statistics on.
	UntrackedLadder []LadderStep `json:"untrackedLadder"`
	Soak            *Soak        `json:"soak,omitempty"`
	Analyze         *AnalyzeTime `json:"analyze,omitempty"`
	AnalyzeWide     *AnalyzeTime `json:"analyzeWide,omitempty"`
	Targets         []Target     `json:"targets"`
}

// Target is one of issue 7's targets against what this run measured.
type Target struct {
	Name     string `json:"name"`
	Want     string `json:"want"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// targets judges the run against capprof's published targets (README,
// "Performance"). A target whose figure this run did not measure (no soak)
// is left out.
func targets(r *Report) []Target {
	find := func(workload string, m mode) *Measurement {
		for i := range r.Results {
			if r.Results[i].Workload == workload && r.Results[i].Mode == m {
				return &r.Results[i]
			}
		}
		return nil
	}
	var ts []Target
	add := func(name, want, measured string, met bool) {
		ts = append(ts, Target{name, want, measured, met})
	}
	if tr, bt := find("a/b", tracked), find("a/b", bpftrace); tr != nil && bt != nil {
		add("(a) overhead, tracked", fmt.Sprintf("<= half of bpftrace's %+.1f%%", bt.OverheadPct),
			fmt.Sprintf("%+.1f%%", tr.OverheadPct), tr.OverheadPct <= bt.OverheadPct/2)
	}
	// BPF cost per capability check, against bpftrace's programs in this run.
	if tr, bt := find("a/b", tracked), find("a/b", bpftrace); tr != nil && bt != nil {
		ns, ok := programCost(tr.Programs, "on_cap_capable")
		agg, aggOK := programCost(bt.Programs, "cap_capable")
		if ok && aggOK {
			add("BPF ns per check, tracked", fmt.Sprintf("<= 0.5x bpftrace's aggregation (%.0f ns)", agg),
				fmt.Sprintf("%.0f ns = %.2fx", ns, ns/agg), ns <= agg/2)
		}
	}
	if un := find("a/b", untracked); un != nil && r.BareCountNs > 0 {
		if ns, ok := programCost(un.Programs, "on_cap_capable"); ok {
			add("BPF ns per check, untracked", fmt.Sprintf("<= bpftrace's bare count (%.0f ns) + 5 ns", r.BareCountNs),
				fmt.Sprintf("%.0f ns = %+.0f ns", ns, ns-r.BareCountNs), ns <= r.BareCountNs+5)
		}
	}
	for _, c := range []struct {
		workload string
		m        mode
		limit    float64
	}{{"c", tracked, 2}, {"c", untracked, 2}, {"e", tracked, 1}, {"e", untracked, 1}} {
		if m := find(c.workload, c.m); m != nil {
			add(fmt.Sprintf("(%s) overhead, %s", c.workload, strings.TrimPrefix(string(c.m), "capprof ")),
				fmt.Sprintf("<= %.0f%%", c.limit),
				fmt.Sprintf("%+.1f%% (%+.1f..%+.1f)", m.OverheadPct, m.SpreadPct[0], m.SpreadPct[1]), m.OverheadPct <= c.limit)
		}
	}
	if s := r.Soak; s != nil {
		lost := int64(s.SetuidCalls) - int64(s.CountedChecks)
		add("lost counts, (a) on every core", "0",
			fmt.Sprintf("%d of %d (%d events dropped)", lost, s.SetuidCalls, s.EventsDropped), lost == 0 && s.EventsDropped == 0)
	}
	if len(r.Results) > 0 || r.Soak != nil { // not with -analyze-only
		peak := 0.0
		for _, m := range r.Results {
			peak = max(peak, m.PeakRSSMiB)
		}
		if r.Soak != nil {
			peak = max(peak, r.Soak.PeakRSSMiB)
		}
		add("capprof peak RSS while recording", "<= 64 MiB", fmt.Sprintf("%.1f MiB", peak), peak <= 64)
	}
	if a := r.Analyze; a != nil {
		add(fmt.Sprintf("analyze of %d recordings", a.Profiles), "<= 1 s", fmt.Sprintf("%.0f ms", a.MedianMs), a.MedianMs <= 1000)
	}
	if a := r.AnalyzeWide; a != nil {
		add(fmt.Sprintf("analyze of %d executables", a.Executables), "<= 1 s", fmt.Sprintf("%.0f ms", a.MedianMs), a.MedianMs <= 1000)
	}
	return ts
}

func programCost(programs []ProgramCost, name string) (float64, bool) {
	for _, p := range programs {
		if p.Name == name && p.Runs > 0 {
			return p.NsPerRun, true
		}
	}
	return 0, false
}

// Soak is the lost-count check: (a) on every core at once.
type Soak struct {
	Duration      string  `json:"duration"`
	Processes     int     `json:"processes"`
	SetuidCalls   uint64  `json:"setuidCalls"`
	CountedChecks int64   `json:"countedChecks"`
	EventsDropped int64   `json:"eventsDropped"`
	PeakRSSMiB    float64 `json:"capprofPeakRssMiB"`
}

// AnalyzeTime is `capprof analyze` over many recordings of one workload.
type AnalyzeTime struct {
	Profiles int `json:"profiles"`
	// Executables is, for one wide profile, how many distinct executables
	// it holds.
	Executables int     `json:"executables,omitempty"`
	MedianMs    float64 `json:"medianMs"`
}

func main() {
	capprofBin := flag.String("capprof", "bin/capprof", "capprof binary")
	workloadBin := flag.String("workload", "bin/workload", "workload binary (./e2e/workload)")
	jsonOut := flag.String("json", "bin/bench.json", "where to write the JSON report")
	reps := flag.Int("reps", 12, "repetitions per workload and mode, spread over one round per mode")
	soak := flag.Duration("soak", 60*time.Second, "duration of the lost-count soak (0 skips it)")
	analyzeOnly := flag.Bool("analyze-only", false, "time only capprof analyze (no root, no recording)")
	flag.Parse()
	if err := run(*capprofBin, *workloadBin, *jsonOut, *reps, *soak, *analyzeOnly); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(capprofBin, workloadBin, jsonOut string, reps int, soakFor time.Duration, analyzeOnly bool) error {
	work, err := os.MkdirTemp("", "capprof-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{capprof: capprofBin, workload: workloadBin, work: work, reps: reps, cpus: runtime.NumCPU()}
	rep := Report{Time: time.Now().UTC().Truncate(time.Second), Kernel: bpf.KernelRelease(), CPU: cpuModel(), CPUs: runtime.NumCPU(), Reps: reps}
	if !analyzeOnly {
		if err := b.measureRecording(&rep, soakFor); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "bench: analyze of 1000 recordings")
	if rep.Analyze, err = b.analyzeMany(1000); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	fmt.Fprintln(os.Stderr, "bench: analyze of 40000 executables")
	if rep.AnalyzeWide, err = b.analyzeWide(40000); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	rep.Targets = targets(&rep)
	printReport(os.Stdout, &rep)
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := outfile.Write("", jsonOut, nil, func(w io.Writer) error { _, err := w.Write(append(data, '\n')); return err }); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", jsonOut)
	return nil
}

// measureRecording measures recording's overhead, against bpftrace's, per
// workload and mode, the empty program's floor and the soak.
func (b *bench) measureRecording(rep *Report, soakFor time.Duration) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: run it with sudo (make bench does), or give -analyze-only")
	}
	if err := bpf.CheckBackend(bpf.Auto); err != nil {
		return err
	}
	if _, err := exec.LookPath("bpftrace"); err != nil {
		return errors.New("bpftrace not found: make bench installs it with apt-get install bpftrace")
	}
	if err := bpf.EnsureTracefs(); err != nil {
		return err
	}
	tarball := filepath.Join(b.work, "files.tar")
	if err := writeTarball(tarball, tarFiles, 50); err != nil {
		return err
	}
	os.Setenv("BENCH_TAR", tarball)
	// (e) extracts into tmpfs: on disk, journal and writeback left by one
	// run slow the next, which drowns the effect being measured.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		os.Setenv("TMPDIR", "/dev/shm")
	}

	workloads := []workload{
		{"a/b", "setuid(0) loop, 1M calls", "setuid", "1000000"},
		{"c", "getppid loop, 3M calls", "getppid", "3000000"},
		{"d", "fork+exec /bin/true, 1000 times", "forkexec", "1000"},
		{"e", fmt.Sprintf("tar -x of %d files, 50 owners", tarFiles), "untar", "1"},
	}
	for _, w := range workloads {
		ms, err := b.measureAll(w)
		if err != nil {
			return fmt.Errorf("(%s) %s: %w", w.ID, w.Name, err)
		}
		rep.Results = append(rep.Results, ms...)
	}
	fmt.Fprintln(os.Stderr, "bench: the untracked path's loads, one at a time, on cap_capable")
	var err error
	if rep.UntrackedLadder, err = b.untrackedLadder(); err != nil {
		return fmt.Errorf("untracked ladder: %w", err)
	}
	rep.EmptyProgramNs = rep.UntrackedLadder[0].NsPerRun
	fmt.Fprintln(os.Stderr, "bench: bpftrace's bare count on cap_capable")
	if rep.BareCountNs, err = b.bareCountCost(); err != nil {
		return fmt.Errorf("bare count: %w", err)
	}
	if soakFor > 0 {
		fmt.Fprintf(os.Stderr, "bench: soak, (a) on %d cores for %s\n", runtime.NumCPU(), soakFor)
		if rep.Soak, err = b.soak(soakFor, runtime.NumCPU()); err != nil {
			return fmt.Errorf("soak: %w", err)
		}
	}
	rep.Probe = b.probe
	rep.Pinning = "none (one CPU)"
	if b.cpus > 1 {
		rep.Pinning = fmt.Sprintf("workload on CPU %d, tools on CPUs 0-%d", b.cpus-1, b.cpus-2)
	}
	return nil
}

func pct(v, base int64) float64 {
	if base == 0 {
		return 0
	}
	return (float64(v)/float64(base) - 1) * 100
}

type bench struct {
	capprof, workload, work string
	reps                    int
	cpus                    int
	probe                   string // as the profiles record it
}

// rounds splits the repetitions: the modes take turns round by round, so a
// slow drift of the machine spreads over all of them instead of one, and
// each round starts with the next mode, so each mode runs once in each
// position (the first run of a round measured faster on (e) than the rest).
var rounds = len(modes)

// measureAll times the workload under every mode with BPF statistics off
// (collecting them costs two clock reads per program run), then runs each
// tracing mode once more with statistics on for the per-program costs.
func (b *bench) measureAll(w workload) ([]Measurement, error) {
	ms := make([]Measurement, len(modes))
	perRound := max(1, b.reps/rounds)
	for round := range rounds {
		for turn := range modes {
			i := (round + turn) % len(modes)
			m := modes[i]
			fmt.Fprintf(os.Stderr, "bench: (%s) %s, %s, round %d/%d\n", w.ID, w.Name, m, round+1, rounds)
			meas, err := b.measure(w, m, perRound)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m, err)
			}
			acc := &ms[i]
			acc.Workload, acc.Name, acc.Mode = w.ID, w.Name, m
			acc.ElapsedNs = append(acc.ElapsedNs, meas.ElapsedNs...)
			acc.UserCPUMs += meas.UserCPUMs
			acc.PeakRSSMiB = max(acc.PeakRSSMiB, meas.PeakRSSMiB)
			if meas.EventsDropped != nil {
				drops := *meas.EventsDropped
				if acc.EventsDropped != nil {
					drops += *acc.EventsDropped
				}
				acc.EventsDropped = &drops
			}
		}
	}
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enable BPF statistics: %w", err)
	}
	defer stats.Close()
	for i, m := range modes[1:] {
		fmt.Fprintf(os.Stderr, "bench: (%s) %s, %s, BPF costs\n", w.ID, w.Name, m)
		meas, err := b.measure(w, m, 1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		ms[i+1].Programs = meas.Programs
	}
	base := median(ms[0].ElapsedNs)
	for i := range ms {
		ms[i].MedianNs = median(ms[i].ElapsedNs)
		ms[i].OverheadPct = pct(ms[i].MedianNs, base)
		ms[i].SpreadPct = [2]float64{pct(slices.Min(ms[i].ElapsedNs), base), pct(slices.Max(ms[i].ElapsedNs), base)}
		var bpfNs float64
		for _, p := range ms[i].Programs {
			bpfNs += p.NsPerRun * float64(p.Runs)
		}
		ms[i].BPFSharePct = bpfNs / float64(base) * 100
	}
	return ms, nil
}

// Wall times are taken with the workload on the last CPU and the tool
// (capprof, bpftrace) on the others, when there are two or more, so that the
// tool's own user space never takes the workload's CPU. Pinning is by
// taskset(1) (util-linux); the tracked workload is started by capprof, in
// its cgroup, through taskset.
func (b *bench) onWorkloadCPU(argv []string) []string {
	if b.cpus < 2 {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(b.cpus - 1)}, argv...)
}

func (b *bench) workloadCommand(args ...string) *exec.Cmd {
	argv := b.onWorkloadCPU(append([]string{b.workload}, args...))
	return exec.Command(argv[0], argv[1:]...)
}

func (b *bench) toolCommand(name string, args ...string) *exec.Cmd {
	if b.cpus < 2 {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", fmt.Sprintf("0-%d", b.cpus-2), name}, args...)...)
}

// measure runs reps repetitions of the workload under one mode.
func (b *bench) measure(w workload, m mode, reps int) (Measurement, error) {
	var meas Measurement
	args := []string{"bench", w.Kind, w.Iterations, strconv.Itoa(reps)}
	var err error
	switch m {
	case baseline:
		meas.ElapsedNs, _, err = runWorkload(b.workloadCommand(args...))
	case untracked:
		// capprof records a process that only waits; the workload runs beside it.
		err = b.withCapprof(&meas, []string{b.workload, "hold"}, func(holder *bufio.Reader, before programSnapshot) error {
			if _, err := readUntil(holder, "done"); err != nil {
				return err
			}
			before.refresh()
			var err error
			meas.ElapsedNs, _, err = runWorkload(b.workloadCommand(args...))
			meas.Programs = before.costs()
			return err
		})
	case tracked:
		err = b.withCapprof(&meas, b.onWorkloadCPU(append([]string{b.workload}, append(args, "hold")...)), func(out *bufio.Reader, before programSnapshot) error {
			lines, err := readUntil(out, "done")
			meas.Programs = before.costs()
			if err != nil {
				return err
			}
			meas.ElapsedNs, _, err = parseReps(lines)
			return err
		})
	case bpftrace:
		err = b.withBpftrace(bpftracecmd.Aggregation, func(before programSnapshot) error {
			var err error
			meas.ElapsedNs, _, err = runWorkload(b.workloadCommand(args...))
			meas.Programs = before.costs()
			return err
		})
	}
	if err != nil {
		return meas, err
	}
	if len(meas.ElapsedNs) == 0 {
		return meas, errors.New("no repetitions measured")
	}
	return meas, nil
}

// withCapprof runs `capprof record -- target...`, waits until it is
// recording, hands the target's stdout and a snapshot of the BPF programs
// loaded before capprof to during, then closes the target's stdin and
// collects capprof's resource usage and drops.
func (b *bench) withCapprof(meas *Measurement, target []string, during func(*bufio.Reader, programSnapshot) error) error {
	before, err := snapshotPrograms()
	if err != nil {
		return err
	}
	out := filepath.Join(b.work, "profile.json")
	cmd := b.toolCommand(b.capprof, append([]string{"record", "--progress", "0", "-o", out, "--"}, target...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Start(); err != nil {
		return err
	}
	// The target starts only after capprof has attached, so its first line
	// means the probes are live.
	runErr := during(bufio.NewReader(stdout), before)
	stdin.Close()
	waitErr := cmd.Wait()
	if runErr != nil {
		return runErr
	}
	if waitErr != nil {
		return fmt.Errorf("capprof: %w", waitErr)
	}
	if meas.UserCPUMs, meas.PeakRSSMiB, err = capprofUsage(stderr.String()); err != nil {
		return err
	}
	p, err := profile.Load(out)
	if err != nil {
		return err
	}
	drops := p.Metadata.Drops.Total()
	meas.EventsDropped = &drops
	b.probe = p.Metadata.Probe
	return nil
}

// bareCountCost runs (a) under bpftrace's bareCountProgram with statistics
// on: its ns per run.
func (b *bench) bareCountCost() (float64, error) {
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return 0, err
	}
	defer stats.Close()
	var costs []ProgramCost
	err = b.withBpftrace(bareCountProgram, func(before programSnapshot) error {
		_, _, err := runWorkload(b.workloadCommand("bench", "setuid", "1000000", "1"))
		costs = before.costs()
		return err
	})
	if err != nil {
		return 0, err
	}
	ns, ok := programCost(costs, "cap_capable")
	if !ok {
		return 0, errors.New("bpftrace's program never ran")
	}
	return ns, nil
}

func (b *bench) withBpftrace(program string, during func(programSnapshot) error) error {
	before, err := snapshotPrograms()
	if err != nil {
		return err
	}
	cmd := b.toolCommand("bpftrace", "-e", program)
	cmd.Stderr = os.Stderr
	if err := bpftracecmd.Start(cmd); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}()
	before.refresh()
	return during(before)
}

// LadderStep is one program of the untracked ladder: the loads capprof's
// untracked path makes, up to one of them, and what it measured per run.
type LadderStep struct {
	Loads    string  `json:"loads"`
	NsPerRun float64 `json:"nsPerRun"`
}

// untrackedLadder measures, over (a) with statistics on, a program on
// cap_capable that makes the untracked path's loads up to each of them in
// turn: none (the empty program), the current task's cgroups,
// ->dfl_cgrp, ->kn, ->id (the cgroup id) and the pre-filter's byte. Each
// runs alone, so every load finds only what the syscall left in the caches
// and TLB; the median of three runs is kept.
func (b *bench) untrackedLadder() ([]LadderStep, error) {
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("kernel BTF: %w", err)
	}
	var offsets []int32
	for _, m := range [][2]string{{"task_struct", "cgroups"}, {"css_set", "dfl_cgrp"}, {"cgroup", "kn"}, {"kernfs_node", "id"}} {
		off, err := memberOffset(kernel, m[0], m[1])
		if err != nil {
			return nil, err
		}
		offsets = append(offsets, off)
	}
	filter, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4096, MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		return nil, fmt.Errorf("pre-filter map: %w", err)
	}
	defer filter.Close()

	names := []string{"nothing (an empty program)", "task->cgroups", "->dfl_cgrp", "->kn", "->id (the cgroup id)", "+ the pre-filter's byte (capprof's untracked path)"}
	steps := make([]LadderStep, len(names))
	runs := make([][]float64, len(names))
	for range 3 {
		for i := range names {
			insns := asm.Instructions{asm.FnGetCurrentTaskBtf.Call()}
			for depth, off := range offsets[:min(i, len(offsets))] {
				from := asm.R1
				if depth == 0 {
					from = asm.R0
				}
				insns = append(insns, asm.LoadMem(asm.R1, from, int16(off), asm.DWord))
			}
			if i == len(names)-1 {
				load := asm.LoadMapValue(asm.R2, 0, 0)
				if err := load.AssociateMap(filter); err != nil {
					return nil, err
				}
				insns = append(insns, asm.And.Imm(asm.R1, 4095), load, asm.Add.Reg(asm.R2, asm.R1), asm.LoadMem(asm.R1, asm.R2, 0, asm.Byte))
			}
			insns = append(insns, asm.Mov.Imm(asm.R0, 0), asm.Return())
			ns, err := b.costOverSetuid(insns)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", names[i], err)
			}
			runs[i] = append(runs[i], ns)
		}
	}
	for i, name := range names {
		slices.Sort(runs[i])
		steps[i] = LadderStep{Loads: name, NsPerRun: runs[i][len(runs[i])/2]}
	}
	return steps, nil
}

// memberOffset is a member's byte offset in a kernel struct, looking into
// anonymous structs and unions.
func memberOffset(spec *btf.Spec, typ, member string) (int32, error) {
	var s *btf.Struct
	if err := spec.TypeByName(typ, &s); err != nil {
		return 0, fmt.Errorf("kernel BTF: struct %s: %w", typ, err)
	}
	var find func(members []btf.Member, base btf.Bits) (btf.Bits, bool)
	find = func(members []btf.Member, base btf.Bits) (btf.Bits, bool) {
		for _, m := range members {
			if m.Name == member {
				return base + m.Offset, true
			}
			if m.Name != "" {
				continue
			}
			var inner []btf.Member
			switch c := btf.UnderlyingType(m.Type).(type) {
			case *btf.Struct:
				inner = c.Members
			case *btf.Union:
				inner = c.Members
			}
			if off, ok := find(inner, base+m.Offset); ok {
				return off, true
			}
		}
		return 0, false
	}
	off, ok := find(s.Members, 0)
	if !ok {
		return 0, fmt.Errorf("kernel BTF: struct %s has no member %s", typ, member)
	}
	return int32(off.Bytes()), nil
}

// costOverSetuid attaches a tp_btf/cap_capable program and measures it over
// (a), pinned as (a) is, with statistics on.
func (b *bench) costOverSetuid(insns asm.Instructions) (float64, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "cap_capable", License: "GPL", Instructions: insns,
	})
	if err != nil {
		return 0, err
	}
	defer prog.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return 0, err
	}
	defer stats.Close()
	before, err := prog.Stats()
	if err != nil {
		return 0, err
	}
	if _, _, err := runWorkload(b.workloadCommand("bench", "setuid", "1000000", "1")); err != nil {
		return 0, err
	}
	after, err := prog.Stats()
	if err != nil {
		return 0, err
	}
	runs := after.RunCount - before.RunCount
	if runs == 0 {
		return 0, errors.New("the program never ran")
	}
	return float64(after.Runtime-before.Runtime) / float64(runs), nil
}

// soak runs (a) in one process per core inside one recording and compares
// the setuid calls made with the CAP_SETUID checks the profile counted.
func (b *bench) soak(d time.Duration, procs int) (*Soak, error) {
	out := filepath.Join(b.work, "soak.json")
	loop := fmt.Sprintf("%s bench setuid %s 1", b.workload, d)
	script := strings.Repeat(loop+" & ", procs) + "wait"
	cmd := exec.Command(b.capprof, "record", "--progress", "0", "-o", out, "--", "/bin/sh", "-c", script)
	var stderr strings.Builder
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	stdout, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	_, calls, err := parseReps(strings.Split(strings.TrimSpace(string(stdout)), "\n"))
	if err != nil {
		return nil, err
	}
	p, err := profile.Load(out)
	if err != nil {
		return nil, err
	}
	s := &Soak{Duration: d.String(), Processes: procs, SetuidCalls: calls, EventsDropped: p.Metadata.Drops.Total()}
	if _, s.PeakRSSMiB, err = capprofUsage(stderr.String()); err != nil {
		return nil, err
	}
	for _, c := range p.Containers[0].Capabilities {
		if c.Capability.String() != "CAP_SETUID" {
			continue
		}
		for _, src := range c.Sources {
			if src.Executable == b.workloadPath() && src.Syscall == "setuid" {
				s.CountedChecks += src.Count
			}
		}
	}
	return s, nil
}

func (b *bench) workloadPath() string {
	abs, err := filepath.Abs(b.workload)
	if err != nil {
		return b.workload
	}
	return abs
}

// analyzeMany times `capprof analyze` over n copies of a real profile, as if
// n pods' recordings were merged.
func (b *bench) analyzeMany(n int) (*AnalyzeTime, error) {
	src, err := profile.Load(filepath.Join(b.work, "soak.json"))
	if err != nil {
		if src, err = profile.Load("render/testdata/web.json"); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(b.work, "pods")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for i := range n {
		src.Metadata.Node = fmt.Sprintf("node-%d", i%50)
		path := filepath.Join(dir, fmt.Sprintf("pod-%04d.json", i))
		if err := profile.Save(src, path); err != nil {
			return nil, err
		}
		files = append(files, path)
	}
	ms, err := b.timeAnalyze(files)
	return &AnalyzeTime{Profiles: n, MedianMs: ms}, err
}

// analyzeWide times `capprof analyze` of one profile of n executables, each
// of which bound a privileged port as a non-root uid: every one is evidence
// for a required capability and is looked up among the execs.
func (b *bench) analyzeWide(n int) (*AnalyzeTime, error) {
	c := v1alpha1.Container{Identity: v1alpha1.Identity{Name: "main"}, UIDs: []uint32{1000}}
	bind := v1alpha1.CapabilityChecks{Capability: 10, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace}
	for i := range n {
		exe := fmt.Sprintf("/usr/lib/app/worker-%05d", i)
		bind.Sources = append(bind.Sources, v1alpha1.Source{Executable: exe, Syscall: "bind", CallSites: []string{"__inet_bind"},
			Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.SteadyPhase, Count: 1})
		c.Execs = append(c.Execs, v1alpha1.Exec{Executable: exe, UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, Count: 1, ExitStatuses: []string{"0"}})
		bind.Count++
	}
	c.Capabilities = []v1alpha1.CapabilityChecks{bind}
	// Normalized, as the recorder saves every profile.
	p := &v1alpha1.Profile{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Containers: profile.MergeContainers(c),
		Metadata: v1alpha1.Metadata{Node: "node-0", KernelRelease: "6.18", Probe: "tracepoint", CapprofVersion: "bench",
			StartTime: v1alpha1.Time{Time: time.Unix(0, 0).UTC()}, EndTime: v1alpha1.Time{Time: time.Unix(60, 0).UTC()}}}
	path := filepath.Join(b.work, "wide.json")
	if err := profile.Save(p, path); err != nil {
		return nil, err
	}
	ms, err := b.timeAnalyze([]string{path})
	return &AnalyzeTime{Profiles: 1, Executables: n, MedianMs: ms}, err
}

// timeAnalyze runs `capprof analyze -o json FILES` five times and returns
// the median wall time in milliseconds.
func (b *bench) timeAnalyze(files []string) (float64, error) {
	var times []int64
	for range 5 {
		start := time.Now()
		cmd := exec.Command(b.capprof, append([]string{"analyze", "-o", "json"}, files...)...)
		cmd.Stdout = io.Discard
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("capprof analyze: %v: %s", err, stderr.String())
		}
		times = append(times, time.Since(start).Nanoseconds())
	}
	return float64(median(times)) / 1e6, nil
}

// capprofUsage reads capprof's own user CPU and peak RSS from its last line.
// capprof's rusage as wait4 reports it would include the command it reaped.
func capprofUsage(stderr string) (userMs, rssMiB float64, err error) {
	i := strings.LastIndex(stderr, "capprof used ")
	if i < 0 {
		return 0, 0, fmt.Errorf("capprof printed no resource usage: %q", stderr)
	}
	var total, user string
	if _, err := fmt.Sscanf(stderr[i:], "capprof used %s CPU (user %s peak RSS %f MiB", &total, &user, &rssMiB); err != nil {
		return 0, 0, fmt.Errorf("parse %q: %w", stderr[i:], err)
	}
	d, err := time.ParseDuration(strings.TrimSuffix(user, "),"))
	if err != nil {
		return 0, 0, fmt.Errorf("parse user CPU %q: %w", user, err)
	}
	return float64(d.Microseconds()) / 1000, rssMiB, nil
}

// runWorkload runs the workload and parses its "<iterations> <ns>" lines.
func runWorkload(cmd *exec.Cmd) ([]int64, uint64, error) {
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, 0, err
	}
	return parseReps(strings.Split(strings.TrimSpace(string(out)), "\n"))
}

func parseReps(lines []string) ([]int64, uint64, error) {
	var elapsed []int64
	var iterations uint64
	for _, l := range lines {
		var n uint64
		var ns int64
		if _, err := fmt.Sscanf(l, "%d %d", &n, &ns); err != nil {
			return nil, 0, fmt.Errorf("workload printed %q: %w", l, err)
		}
		elapsed = append(elapsed, ns)
		iterations += n
	}
	return elapsed, iterations, nil
}

// readUntil reads lines until one equals marker and returns those before it.
func readUntil(r *bufio.Reader, marker string) ([]string, error) {
	var lines []string
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimSpace(line)
		if line == marker {
			return lines, nil
		}
		if err != nil {
			return lines, fmt.Errorf("output ended before %q: %w", marker, err)
		}
		if line != "" {
			lines = append(lines, line)
		}
	}
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// programSnapshot remembers which BPF programs existed and their counters, so
// the programs a tool adds and what they cost over a measurement can be told.
type programSnapshot struct {
	existed map[ebpf.ProgramID]bool
	stats   map[ebpf.ProgramID]ebpf.ProgramStats
}

func snapshotPrograms() (programSnapshot, error) {
	s := programSnapshot{existed: map[ebpf.ProgramID]bool{}, stats: map[ebpf.ProgramID]ebpf.ProgramStats{}}
	ids, err := programIDs()
	for _, id := range ids {
		s.existed[id] = true
	}
	return s, err
}

func programIDs() ([]ebpf.ProgramID, error) {
	var ids []ebpf.ProgramID
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids, nil
		}
		if err != nil {
			return ids, err
		}
		ids = append(ids, next)
		id = next
	}
}

// refresh records the counters of the programs added since the snapshot.
func (s programSnapshot) refresh() {
	ids, _ := programIDs()
	for _, id := range ids {
		if s.existed[id] {
			continue
		}
		if _, stats, ok := programStats(id); ok {
			s.stats[id] = stats
		}
	}
}

// costs returns, per program added since the snapshot, the runs and ns/run
// since refresh (or since it was loaded, for programs refresh did not see).
func (s programSnapshot) costs() []ProgramCost {
	byName := map[string]*ProgramCost{}
	var order []string
	ids, _ := programIDs()
	for _, id := range ids {
		if s.existed[id] {
			continue
		}
		name, now, ok := programStats(id)
		if !ok {
			continue
		}
		then := s.stats[id]
		runs := now.RunCount - then.RunCount
		c, ok := byName[name]
		if !ok {
			c = &ProgramCost{Name: name}
			byName[name] = c
			order = append(order, name)
		}
		total := c.NsPerRun*float64(c.Runs) + float64(now.Runtime-then.Runtime)
		c.Runs += runs
		if c.Runs > 0 {
			c.NsPerRun = total / float64(c.Runs)
		}
	}
	slices.Sort(order)
	out := make([]ProgramCost, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out
}

func programStats(id ebpf.ProgramID) (string, ebpf.ProgramStats, bool) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "", ebpf.ProgramStats{}, false
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "", ebpf.ProgramStats{}, false
	}
	st, err := p.Stats()
	if err != nil {
		return "", ebpf.ProgramStats{}, false
	}
	return info.Name, *st, true
}

// writeTarball writes n small files owned by `owners` different uids/gids.
func writeTarball(path string, n, owners int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	body := []byte("capprof bench file\n")
	for i := range n {
		owner := 1000 + i%owners
		if err := tw.WriteHeader(&tar.Header{
			Name: fmt.Sprintf("d%02d/f%05d", i%owners, i), Mode: 0o640, Size: int64(len(body)),
			Uid: owner, Gid: owner, ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg,
		}); err != nil {
			return err
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func printReport(w io.Writer, r *Report) {
	fmt.Fprintf(w, "capprof benchmark: %s, kernel %s, probe %s, %s x%d\nwall time: median of %d runs in %d interleaved rounds, BPF statistics off, %s; overhead vs baseline (min..max)\n\n",
		r.Time.Format(time.RFC3339), r.Kernel, r.Probe, r.CPU, r.CPUs, r.Reps, rounds, r.Pinning)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tBASELINE\tCAPPROF TRACKED\tCAPPROF UNTRACKED\tBPFTRACE\t")
	for i := 0; i < len(r.Results); i += len(modes) {
		row := r.Results[i : i+len(modes)]
		fmt.Fprintf(tw, "(%s) %s\t%s", row[0].Workload, row[0].Name, time.Duration(row[0].MedianNs).Round(time.Millisecond))
		for _, m := range row[1:] {
			fmt.Fprintf(tw, "\t%+.1f%% (%+.1f..%+.1f)", m.OverheadPct, m.SpreadPct[0], m.SpreadPct[1])
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()

	fmt.Fprintf(w, "\nBPF cost per program run, from kernel.bpf_stats_enabled (run_time_ns/run_cnt), over one more run with statistics on;\nan empty tp_btf/cap_capable program measures %.0f ns/run here\n", r.EmptyProgramNs)
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tMODE\tBPF TIME vs BASELINE\tPROGRAMS\t")
	for _, m := range r.Results {
		if len(m.Programs) == 0 {
			continue
		}
		var parts []string
		for _, p := range m.Programs {
			if p.Runs > 0 {
				parts = append(parts, fmt.Sprintf("%s %.0fns x%d", p.Name, p.NsPerRun, p.Runs))
			}
		}
		fmt.Fprintf(tw, "(%s)\t%s\t%.2f%%\t%s\t\n", m.Workload, m.Mode, m.BPFSharePct, strings.Join(parts, ", "))
	}
	tw.Flush()

	if len(r.UntrackedLadder) > 0 {
		fmt.Fprintf(w, "\nThe untracked path's loads, one more at each step: a program on cap_capable alone over (a), median of 3 runs;\nbpftrace's bare count measures %.0f ns/run here\n", r.BareCountNs)
		tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		fmt.Fprintln(tw, "LOADS\tNS/RUN\tTHIS STEP\t")
		for i, step := range r.UntrackedLadder {
			added := "-"
			if i > 0 {
				added = fmt.Sprintf("%+.0f ns", step.NsPerRun-r.UntrackedLadder[i-1].NsPerRun)
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t\n", step.Loads, step.NsPerRun, added)
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\ncapprof process while recording (user CPU summed over all runs)")
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tMODE\tUSER CPU\tPEAK RSS\tDROPPED\t")
	for _, m := range r.Results {
		if m.EventsDropped != nil {
			fmt.Fprintf(tw, "(%s)\t%s\t%.0f ms\t%.1f MiB\t%d\t\n", m.Workload, m.Mode, m.UserCPUMs, m.PeakRSSMiB, *m.EventsDropped)
		}
	}
	tw.Flush()
	if s := r.Soak; s != nil {
		fmt.Fprintf(w, "\nsoak: (a) in %d processes for %s: %d setuid calls, %d CAP_SETUID checks counted, %d lost, %d events dropped, peak RSS %.1f MiB\n",
			s.Processes, s.Duration, s.SetuidCalls, s.CountedChecks, int64(s.SetuidCalls)-int64(s.CountedChecks), s.EventsDropped, s.PeakRSSMiB)
	}
	if a := r.Analyze; a != nil {
		fmt.Fprintf(w, "analyze: %d recordings merged in %.0f ms (median of 5)\n", a.Profiles, a.MedianMs)
	}
	if a := r.AnalyzeWide; a != nil {
		fmt.Fprintf(w, "analyze: one recording of %d executables in %.0f ms (median of 5)\n", a.Executables, a.MedianMs)
	}

	fmt.Fprintln(w, "\ntargets")
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tWANT\tMEASURED\tVERDICT\t")
	for _, t := range r.Targets {
		verdict := "met"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", t.Name, t.Want, t.Measured, verdict)
	}
	tw.Flush()
}
