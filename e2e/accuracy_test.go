package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/e2e/cluster"
	"github.com/capprof/capprof/e2e/kernels"
	"github.com/capprof/capprof/profile"
)

// foreignID owns the fixtures the corpus works on (corpus.h FOREIGN_UID).
const foreignID = 1000

// corpusCase is one workload of the accuracy corpus (e2e/corpus/*.c): what
// it needs prepared, what capprof must recommend, and what it must list for
// a human or leave out.
type corpusCase struct {
	name string
	// program is the corpus source's name without .c; name when empty.
	program string
	// setup prepares fresh fixtures in dir and returns the program's
	// arguments. It runs before the recording and before every verification.
	setup func(t *testing.T, dir string) []string
	// recordWithout are capabilities kept from the recording's bounding set
	// (capprof runs under setpriv without them).
	recordWithout []string
	// want is the expected recommendation: capabilities.add. Sufficiency and
	// minimality are verified whatever it is; want catches a wrong but
	// verifiable answer (a workload failing for an unrelated reason).
	want []string
	// denied are capabilities capprof must list as denied, for a human.
	denied []string
	// tolerated are denied capabilities capprof must classify as not needed.
	tolerated []string
}

// corpus is the accuracy corpus. Each program does one privileged thing, or
// only things that need no capability, and exits 0 only when it worked.
var corpus = []corpusCase{
	{name: "bind_low_port", want: []string{"NET_BIND_SERVICE"}},
	{name: "chown", setup: ownFile(0, 0, 0o644), want: []string{"CHOWN"}},
	{name: "raw_socket", want: []string{"NET_RAW"}},
	{name: "drop_ids", want: []string{"SETGID", "SETUID"}},
	{name: "mknod", setup: path("null"), want: []string{"MKNOD"}},
	{name: "dac_write", setup: ownFile(foreignID, foreignID, 0o600), want: []string{"DAC_OVERRIDE"}},
	{name: "dac_read", setup: ownFile(foreignID, foreignID, 0o600), want: []string{"DAC_READ_SEARCH"}},
	// The other answer to the same read: without DAC_READ_SEARCH the kernel
	// falls back to DAC_OVERRIDE; the denied DAC_READ_SEARCH check's open
	// still succeeded, so it is a tolerated denial.
	{name: "dac_read_with_override", program: "dac_read", setup: ownFile(foreignID, foreignID, 0o600),
		recordWithout: []string{"DAC_READ_SEARCH"}, want: []string{"DAC_OVERRIDE"}, tolerated: []string{"DAC_READ_SEARCH"}},
	{name: "kill_other_user", setup: foreignProcess, want: []string{"KILL"}},
	{name: "chroot", setup: dir, want: []string{"SYS_CHROOT"}},
	{name: "utimes_foreign", setup: ownFile(foreignID, foreignID, 0o644), want: []string{"FOWNER"}},
	{name: "raise_priority", want: []string{"SYS_NICE"}},
	{name: "kernel_log", want: []string{"SYSLOG"}},
	{name: "uts_namespace", want: []string{"SYS_ADMIN"}},
	{name: "setgid_bit", setup: ownFile(0, foreignID, 0o755), want: []string{"FSETID"}},
	{name: "file_caps", setup: ownFile(0, 0, 0o755), want: []string{"SETFCAP"}},
	{name: "bounding_drop", want: []string{"SETPCAP"}},
	{name: "mlock_over_limit", want: []string{"IPC_LOCK"}},
	{name: "inode_flags", setup: ownFile(0, 0, 0o644), want: []string{"LINUX_IMMUTABLE"}},
	{name: "mmap_storm", want: []string{}},
	{name: "process_tree", setup: treeFiles, want: []string{"CHOWN"}},
	{name: "threads", want: []string{"NET_BIND_SERVICE"}},
	{name: "short_lived_children", want: []string{}},
	{name: "tolerated_probe", setup: ownFile(0, foreignID, 0o755), want: []string{}, tolerated: []string{"FSETID"}},
	{name: "denied_failed", want: []string{}, denied: []string{"SYS_NICE"}},
}

// ownFile makes DIR/file with that owner, group and mode.
func ownFile(uid, gid int, mode os.FileMode) func(*testing.T, string) []string {
	return func(t *testing.T, dir string) []string {
		t.Helper()
		f := filepath.Join(dir, "file")
		if err := os.WriteFile(f, []byte("data\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil { // chown cleared nothing, but the umask may have
			t.Fatal(err)
		}
		return []string{f}
	}
}

// path is DIR/name, not created.
func path(name string) func(*testing.T, string) []string {
	return func(_ *testing.T, dir string) []string { return []string{filepath.Join(dir, name)} }
}

func dir(_ *testing.T, dir string) []string { return []string{dir} }

// treeFiles makes DIR/0..3 for the process tree's grandchildren.
func treeFiles(t *testing.T, dir string) []string {
	t.Helper()
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{dir}
}

// foreignProcess starts a process of the foreign user, outside any recording.
func foreignProcess(t *testing.T, _ string) []string {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid", strconv.Itoa(foreignID), "--regid", strconv.Itoa(foreignID), "--clear-groups", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Until setpriv has switched users, the process is root's, and root
	// may signal it without CAP_KILL: wait for the switch.
	want := fmt.Sprintf("Uid:\t%d\t", foreignID)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err == nil && strings.Contains(string(status), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never ran as uid %d", cmd.Process.Pid, foreignID)
		}
	}
	return []string{strconv.Itoa(cmd.Process.Pid)}
}

var (
	corpusOnce sync.Once
	corpusDir  string
	corpusErr  error
)

// buildCorpus compiles every corpus program once, with the host's gcc, or
// returns $CAPPROF_E2E_CORPUS, where the kernel matrix put them built.
func buildCorpus(t *testing.T) string {
	t.Helper()
	if prebuilt := os.Getenv("CAPPROF_E2E_CORPUS"); prebuilt != "" {
		return prebuilt
	}
	corpusOnce.Do(func() {
		sources, err := filepath.Glob("corpus/*.c")
		if err != nil || len(sources) == 0 {
			corpusErr = fmt.Errorf("no corpus sources (%v)", err)
			return
		}
		corpusDir, corpusErr = os.MkdirTemp("", "capprof-corpus-")
		if corpusErr != nil {
			return
		}
		for _, src := range sources {
			bin := filepath.Join(corpusDir, strings.TrimSuffix(filepath.Base(src), ".c"))
			if out, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
				corpusErr = fmt.Errorf("gcc %s: %v\n%s", src, err, out)
				return
			}
		}
	})
	if corpusErr != nil {
		t.Fatal(corpusErr)
	}
	return corpusDir
}

// verdict is one row of the accuracy table.
type verdict struct {
	workload   string
	recorded   string // what the recording ran without, if anything
	required   []string
	forHuman   []string // denied capabilities listed for a human
	sufficient bool
	minimal    bool
	notes      []string
	probe      string // the backend that recorded it
}

// TestAccuracyCorpus records every corpus workload, takes the recommended
// set R and re-runs the workload as root with the capability bounding set
// exactly R (it must succeed) and R minus each capability in turn (it must
// fail). It prints the table and fails on any miss.
func TestAccuracyCorpus(t *testing.T) {
	requireRecording(t)
	bins := buildCorpus(t)
	followed := bpf.FollowsDenials()
	var rows []verdict
	for _, tc := range corpus {
		t.Run(tc.name, func(t *testing.T) {
			program := tc.program
			if program == "" {
				program = tc.name
			}
			bin := filepath.Join(bins, program)
			setup := func() []string {
				if tc.setup == nil {
					return nil
				}
				return tc.setup(t, t.TempDir())
			}

			command := append([]string{bin}, setup()...)
			out := filepath.Join(t.TempDir(), "profile.json")
			args := []string{"record", "--progress", "0", "--name", tc.name, "-o", out, "--"}
			r := capprofUnder(t, tc.recordWithout, append(args, command...)...)
			if r.code != 0 {
				t.Fatalf("capprof record -- %s: exit %d:\n%s", strings.Join(command, " "), r.code, r.stderr)
			}
			p, err := profile.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			_, analysis := decisions(t, p)
			row := verdict{workload: tc.name, required: addList(analysis), probe: p.Metadata.Probe}
			if want := probe(); want != bpf.Auto && p.Metadata.Probe != string(want) {
				t.Errorf("recorded with probe %q, want %q ($CAPPROF_PROBE)", p.Metadata.Probe, want)
			}
			if len(tc.recordWithout) > 0 {
				row.recorded = "without " + strings.Join(tc.recordWithout, ",")
			}
			for _, d := range analysis.Capabilities {
				name := d.Capability.KubernetesName()
				switch {
				case d.Decision == profile.DeniedDecision:
					row.forHuman = append(row.forHuman, name)
				case d.Decision == profile.Required:
					// The done criterion: analyze says what needed it.
					e := d.Evidence
					if len(e) == 0 || e[0].Executable != bin || e[0].Syscall == "none" || len(e[0].CallSites) == 0 {
						t.Errorf("%s: evidence %+v, want %s with its syscall and kernel call site", name, e, bin)
					}
				case followed && slices.Contains(tc.tolerated, name) && !strings.Contains(d.Reason, "tolerated"):
					t.Errorf("%s: reason %q, want a tolerated denial", name, d.Reason)
				}
			}
			if !slices.Equal(row.required, tc.want) {
				t.Errorf("recommended %v, want %v", row.required, tc.want)
			}
			// Without denial outcomes (kernels before 6.18: no BPF task_work)
			// a tolerated denial cannot be told from a failing one, so it is
			// listed for a human.
			wantDenied := tc.denied
			if !followed {
				wantDenied = slices.Sorted(slices.Values(append(slices.Clone(tc.denied), tc.tolerated...)))
			}
			if !slices.Equal(row.forHuman, wantDenied) {
				t.Errorf("listed as denied %v, want %v", row.forHuman, wantDenied)
			}

			row.sufficient = true
			if err := runBounded(row.required, append([]string{bin}, setup()...)...); err != nil {
				row.sufficient = false
				row.notes = append(row.notes, fmt.Sprintf("fails with exactly %v: %v", row.required, err))
			}
			row.minimal = true
			for _, c := range row.required {
				less := slices.DeleteFunc(slices.Clone(row.required), func(x string) bool { return x == c })
				if err := runBounded(less, append([]string{bin}, setup()...)...); err == nil {
					row.minimal = false
					row.notes = append(row.notes, "works without "+c)
				}
			}
			if !row.sufficient || !row.minimal {
				t.Errorf("not sufficient and minimal: %s", strings.Join(row.notes, "; "))
			}
			rows = append(rows, row)
		})
	}
	if row, ran := podAccuracy(t); ran {
		rows = append(rows, row)
	}
	printAccuracy(rows)
	if path := os.Getenv("CAPPROF_E2E_RESULTS"); path != "" {
		if err := writeResults(path, rows); err != nil {
			t.Fatal(err)
		}
	}
}

// writeResults writes the rows as JSON lines.
func writeResults(path string, rows []verdict) error {
	var b strings.Builder
	for _, r := range rows {
		line, err := json.Marshal(kernels.AccuracyResult{Workload: r.workload, Probe: r.probe, Required: r.required,
			Denied: r.forHuman, Sufficient: r.sufficient, Minimal: r.minimal})
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// capprofUnder runs capprof with these capabilities kept out of its
// bounding set (and so out of the recorded command's).
func capprofUnder(t *testing.T, without []string, args ...string) run {
	t.Helper()
	if len(without) == 0 {
		return capprof(t, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	drop := "-" + strings.ToLower(strings.Join(without, ",-"))
	cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--bounding-set", drop, "--inh-caps", "-all", "--", capprofBin}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := run{stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// runBounded runs the command as root with its capability bounding set
// exactly caps (so its permitted and effective sets are caps too) and
// returns an error unless it exits 0.
func runBounded(caps []string, command ...string) error {
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + strings.ToLower(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "setpriv", append([]string{"--bounding-set", bounding, "--inh-caps", "-all", "--"}, command...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func addList(a profile.ContainerAnalysis) []string {
	out := []string{}
	for _, c := range a.SecurityContext.Capabilities.Add {
		out = append(out, string(c))
	}
	return out
}

// printAccuracy prints the accuracy table on stdout, which go test shows
// with -v (make accuracy) or when the package fails.
func printAccuracy(rows []verdict) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w, "WORKLOAD\tRECORDED\tRECOMMENDED (R)\tDENIED, FOR A HUMAN\tSUFFICIENT\tMINIMAL")
	yes := map[bool]string{true: "yes", false: "NO"}
	for _, r := range rows {
		recorded := r.recorded
		if recorded == "" {
			recorded = "as root"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.workload, recorded, list(r.required), list(r.forHuman), yes[r.sufficient], yes[r.minimal])
	}
	w.Flush()
	fmt.Print(b.String())
}

func list(caps []string) string {
	if len(caps) == 0 {
		return "-"
	}
	return strings.Join(caps, ",")
}

// podAccuracy is the corpus's container workload: the demo server (binds
// port 80, hands a directory to nobody, drops to nobody) exec'd in a pod of
// the harness while capprof records the pod. The recommendation is then
// verified the way it will be used: new pods run the server as their
// command with securityContext.capabilities {drop: [ALL], add: R}, and with
// R minus each capability.
func podAccuracy(t *testing.T) (row verdict, ran bool) {
	row = verdict{workload: "pod: serve (container)", recorded: "containerd's defaults"}
	t.Run("pod_serve", func(t *testing.T) {
		c := needCluster(t)
		ran = true
		ns := namespace(t, c, "accuracy")
		pod := runPod(t, c, testPod(ns, "server", nil, "app"))
		rec := startRecord(t, "--pods", "server", "-n", ns, "--kubeconfig", c.Kubeconfig)
		execIn(t, c, containerID(t, pod, "app"), "/workload", "serve", "/data/srv")
		p := rec.stop(t)
		analysis := profile.Analyze([]profile.Input{{Source: "pod", Profile: alone(entry(t, p, ns, "app"))}})
		row.required = addList(analysis.Containers[0])
		want := []string{"CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"}
		if !slices.Equal(row.required, want) {
			t.Errorf("recommended %v, want %v", row.required, want)
		}
		seq := 0
		runServer := func(add []string) (int32, error) {
			seq++
			pod := testPod(ns, fmt.Sprintf("verify-%d", seq), nil, "app")
			ctr := &pod.Spec.Containers[0]
			ctr.Command = []string{"/workload", "serve", "/data/srv"}
			caps := &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
			for _, a := range add {
				caps.Add = append(caps.Add, corev1.Capability(a))
			}
			ctr.SecurityContext = &corev1.SecurityContext{Capabilities: caps}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			running, err := c.RunPod(ctx, pod)
			if err != nil {
				return 0, err
			}
			return c.WaitExit(ctx, cluster.ContainerID(running.Status.ContainerStatuses[0]))
		}
		code, err := runServer(row.required)
		if err != nil {
			t.Fatal(err)
		}
		row.sufficient = code == 0
		if !row.sufficient {
			row.notes = append(row.notes, fmt.Sprintf("exit %d with add %v", code, row.required))
		}
		row.minimal = true
		for _, cp := range row.required {
			less := slices.DeleteFunc(slices.Clone(row.required), func(x string) bool { return x == cp })
			code, err := runServer(less)
			if err != nil {
				t.Fatal(err)
			}
			if code == 0 {
				row.minimal = false
				row.notes = append(row.notes, "works without "+cp)
			}
		}
		if !row.sufficient || !row.minimal {
			t.Errorf("not sufficient and minimal: %s", strings.Join(row.notes, "; "))
		}
	})
	return row, ran
}
