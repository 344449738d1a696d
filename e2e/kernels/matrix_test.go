package kernels

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the module root, relative to this package's directory.
const repoRoot = "../.."

// kernelNames are the cache directories fetch.sh fills, one per kernel.
var kernelNames = []string{"6.1", "6.12", "7.x"}

// backends are capprof's probe backends; every Debian cloud kernel has BTF
// trampolines and kprobes, and the tracepoint from Linux 6.14 on.
var backends = []string{"tracepoint", "fexit", "kprobe"}

// guestTimeout bounds one kernel's boot and tests under TCG emulation. The
// 7.x guest, which runs every probe, took 21.5 min alone and over 25 min
// beside another guest on a slow day (2026-11-30); the whole matrix must
// stay within CI's 90 minutes with the rest of make test.
const guestTimeout = 45 * time.Minute

// e2eSkip are the e2e tests the host runs and the guests do not: those
// that need the pod harness (etcd, kube-apiserver, containerd) or the
// install tools (helm, kubectl, krew), which the guests do not have, those of capprof's own handling of its outputs,
// secrets, names and terminal, which no kernel changes and which cost
// minutes under emulation, and verify's (dozens of recordings each), whose
// kernel-dependent part, telling a denial's outcome, the accuracy corpus
// covers.
// go test splits the pattern at its slash into one per level: the one
// subtest, TestAccuracyCorpus/pod_serve, comes last.
const e2eSkip = "TestPods|TestManifest|TestPodSecurity|TestCluster|TestInstall|TestChart|TestKubectlPlugin|TestKrewInstall|" +
	"TestOutputsIntoSpecialFiles|TestOutputModes|TestFullDisk|TestRedaction|TestHostileNames|TestOneInterruptPerCtrlC|TestSecondSignalQuitsWhileSaving|" +
	"TestVerify|" +
	"TestAccuracyCorpus/pod_serve"

// TestKernelMatrix boots each kernel under qemu and runs, inside it, the bpf
// package's load-and-attach test, then for every backend the kernel
// supports the e2e recording tests and the accuracy corpus with
// CAPPROF_PROBE set to it. It fails when a kernel lacks a backend it should
// have, when anything fails inside, or when backends recommend differently
// for the same workload on the same kernel. The table it writes to
// bin/kernel-matrix.md is the README's.
func TestKernelMatrix(t *testing.T) {
	if reason := missingTools(); reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run: %s (CI=true: not skipping)", reason)
		}
		t.Skip(reason)
	}
	cache := os.Getenv("CAPPROF_KERNEL_CACHE")
	if cache == "" {
		cache = filepath.Join(repoRoot, ".cache", "kernels")
	}
	if out, err := exec.Command("./fetch.sh", cache).CombinedOutput(); err != nil {
		t.Fatalf("fetch kernels: %v\n%s", err, out)
	} else if len(out) > 0 {
		t.Logf("%s", out)
	}
	image := buildInitramfs(t)
	logs := filepath.Join(repoRoot, "bin", "kernel-matrix")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}

	// The guests run in parallel, one emulated CPU each: under TCG, two
	// vCPUs made Linux 7.3 oops on an int3 while a syscall tracepoint's
	// static branch was being patched (text_poke_bp), which one vCPU avoids.
	var mu sync.Mutex
	rowsByKernel := map[string][]matrixRow{}
	t.Run("kernels", func(t *testing.T) {
		for _, name := range kernelNames {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				vmlinuz := filepath.Join(cache, name, "vmlinuz")
				release, err := os.ReadFile(filepath.Join(cache, name, "release"))
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				console := boot(t, vmlinuz, image, filepath.Join(logs, name+".log"))
				g := parseConsole(console)
				t.Logf("kernel %s (%s): booted and tested in %s", name, g.release, time.Since(start).Round(time.Second))
				if !g.done {
					t.Fatalf("the guest did not finish (see %s)", filepath.Join(logs, name+".log"))
				}
				if g.release != strings.TrimSpace(string(release)) {
					t.Errorf("guest runs %q, want %q", g.release, strings.TrimSpace(string(release)))
				}
				rows := checkGuest(t, name, g)
				mu.Lock()
				rowsByKernel[name] = rows
				mu.Unlock()
			})
		}
	})
	var rows []matrixRow
	for _, name := range kernelNames {
		rows = append(rows, rowsByKernel[name]...)
	}
	table := matrixTable(rows)
	t.Logf("\n%s", table)
	if err := os.WriteFile(filepath.Join(repoRoot, "bin", "kernel-matrix.md"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
}

func missingTools() string {
	for tool, pkg := range map[string]string{"qemu-system-x86_64": "qemu-system-x86", "gcc": "gcc", "apt-get": "apt",
		"/bin/busybox": "busybox-static", "setpriv": "util-linux", "ldd": "libc-bin"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s not found (Debian package %s; make e2e-deps installs it)", tool, pkg)
		}
	}
	return ""
}

// buildInitramfs builds capprof and the test binaries statically (CGO off),
// the accuracy corpus with gcc, and packs them with busybox, setpriv and an
// init script into a cpio archive.
func buildInitramfs(t *testing.T) string {
	t.Helper()
	work := t.TempDir()
	build := func(args ...string) {
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	bin := func(name string) string { return filepath.Join(work, name) }
	build("build", "-ldflags=-s -w", "-o", bin("capprof"), "./cmd/capprof")
	build("build", "-ldflags=-s -w", "-o", bin("workload"), "./e2e/workload")
	build("test", "-c", "-ldflags=-s -w", "-o", bin("bpf.test"), "./bpf")
	build("test", "-c", "-ldflags=-s -w", "-o", bin("e2e.test"), "./e2e")

	f, err := os.Create(filepath.Join(work, "initramfs.cpio"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := newInitramfs(f)
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/etc", "/usr/bin"} {
		r.dir(d)
	}
	r.file("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	r.file("/etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	r.executable("/bin/busybox", "/bin/busybox")
	setpriv, _ := exec.LookPath("setpriv")
	r.executable("/usr/bin/setpriv", setpriv)
	for _, name := range []string{"capprof", "workload", "bpf.test", "e2e.test"} {
		r.executable("/capprof/"+name, bin(name))
	}
	sources, err := filepath.Glob(filepath.Join(repoRoot, "e2e", "corpus", "*.c"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("no corpus sources (%v)", err)
	}
	for _, src := range sources {
		out := bin(strings.TrimSuffix(filepath.Base(src), ".c"))
		if o, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-pthread", "-o", out, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", src, err, o)
		}
		r.executable("/capprof/corpus/"+filepath.Base(out), out)
	}
	r.file("/init", 0o755, []byte(guestInit))
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// guestInit runs as PID 1 in the guest. Lines starting with "capprof-matrix"
// are for parseConsole; the tests' own -test.v output is kept in the log.
const guestInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
# /usr/bin first: util-linux's setpriv, not busybox's smaller one.
export PATH=/usr/bin:/bin HOME=/root TMPDIR=/tmp CI=true
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
echo "capprof-matrix release $(uname -r)"
# Where cap_capable lives in this build: its out-of-line copies and callers
# in security/commoncap.c that gcc may have inlined it into.
grep -E ' (cap_capable|cap_vm_enough_memory|cap_mmap_addr|commit_creds)([.][a-z0-9.]*)?$' /proc/kallsyms
cd /capprof
echo "capprof-matrix begin probes"
./capprof probes
echo "capprof-matrix end probes $?"
echo "capprof-matrix begin bpf"
# Loading, and what the kernel side decides alone: cgroup subtrees
# tracked from their creation, the runtime's processes told apart.
./bpf.test -test.v -test.count=1 -test.run '^(TestLoadAndAttach|TestOpenFallsBackWhenAttachFails|TestCgroupSubtreeTracking|TestRuntimeInit|TestReadCredsBothWays)$'
echo "capprof-matrix end bpf $?"
for probe in ` + "tracepoint fexit kprobe" + `; do
	./capprof probes | grep -q "^$probe *yes" || continue
	echo "capprof-matrix begin e2e $probe"
	CAPPROF_PROBE=$probe CAPPROF_E2E_BINARIES=/capprof CAPPROF_E2E_CORPUS=/capprof/corpus \
		CAPPROF_E2E_RESULTS=/tmp/accuracy-$probe.jsonl \
		./e2e.test -test.v -test.count=1 -test.timeout=20m -test.skip '` + e2eSkip + `'
	echo "capprof-matrix end e2e $probe $?"
	sed "s/^/capprof-matrix accuracy $probe /" /tmp/accuracy-$probe.jsonl 2>/dev/null
done
echo "capprof-matrix done"
poweroff -f
`

// boot runs the kernel with the initramfs under qemu (TCG: nested KVM does
// not work on these machines) and returns the console output, also written
// to logPath as it comes. qemu exits 0 even when the guest panics, so the caller judges
// by the output.
func boot(t *testing.T, vmlinuz, initramfs, logPath string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "2048",
		"-nographic", "-no-reboot", "-nic", "none", "-kernel", vmlinuz, "-initrd", initramfs,
		"-append", "console=ttyS0 panic=-1 quiet")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, log)
	cmd.Stderr = cmd.Stdout
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("qemu still running after %s (console in %s)", guestTimeout, logPath)
	}
	if err != nil {
		t.Fatalf("qemu: %v (console in %s)", err, logPath)
	}
	return strings.ReplaceAll(out.String(), "\r", "")
}

// guest is what a guest's console says.
type guest struct {
	release string
	probes  map[string]string // backend -> "yes" or the reason it does not work
	bpf     section
	e2e     map[string]section // by backend
	// accuracy are the accuracy corpus's rows, by backend.
	accuracy map[string][]AccuracyResult
	done     bool
}

// section is one test binary's run: its exit status and its tests.
type section struct {
	ran    bool
	status int
	passed []string // top-level tests that passed
	failed []string
	output string
}

var (
	// Not anchored: the serial console may put escape sequences in front.
	markerLine = regexp.MustCompile(`capprof-matrix (\S+)(?: (.*))?$`)
	probeRow   = regexp.MustCompile(`^(tracepoint|fexit|kprobe)\s+(yes|no)\s+.*?(?:\s{3,}(\S.*))?$`)
	testResult = regexp.MustCompile(`^--- (PASS|FAIL): (Test\S+)`)
)

func parseConsole(console string) guest {
	g := guest{probes: map[string]string{}, e2e: map[string]section{}, accuracy: map[string][]AccuracyResult{}}
	var current *section
	var body strings.Builder
	inProbes := false
	sc := bufio.NewScanner(strings.NewReader(console))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := markerLine.FindStringSubmatch(line)
		if m == nil {
			if inProbes {
				if p := probeRow.FindStringSubmatch(line); p != nil {
					g.probes[p[1]] = p[2]
					if p[2] == "no" {
						g.probes[p[1]] = p[3]
					}
				}
			}
			if current != nil {
				body.WriteString(line + "\n")
				if r := testResult.FindStringSubmatch(line); r != nil && !strings.Contains(r[2], "/") {
					if r[1] == "PASS" {
						current.passed = append(current.passed, r[2])
					} else {
						current.failed = append(current.failed, r[2])
					}
				}
			}
			continue
		}
		fields := strings.Fields(m[2])
		switch m[1] {
		case "release":
			g.release = m[2]
		case "begin":
			if len(fields) > 0 && fields[0] == "probes" {
				inProbes = true
				continue
			}
			current = &section{ran: true}
			body.Reset()
		case "end":
			if len(fields) > 0 && fields[0] == "probes" {
				inProbes = false
				continue
			}
			if current == nil || len(fields) == 0 {
				continue
			}
			current.status, _ = strconv.Atoi(fields[len(fields)-1])
			current.output = body.String()
			switch {
			case fields[0] == "bpf":
				g.bpf = *current
			case fields[0] == "e2e" && len(fields) == 3:
				g.e2e[fields[1]] = *current
			}
			current = nil
		case "accuracy":
			backend, rest, _ := strings.Cut(m[2], " ")
			var r AccuracyResult
			if err := json.Unmarshal([]byte(rest), &r); err == nil {
				g.accuracy[backend] = append(g.accuracy[backend], r)
			}
		case "done":
			g.done = true
		}
	}
	return g
}

// matrixRow is one kernel and backend in the README's table.
type matrixRow struct {
	kernel, release, backend string
	works                    bool
	reason                   string
	tests, workloads         int
	failed                   []string // e2e tests that failed
	agree                    bool
}

// checkGuest fails the test for whatever the guest got wrong and returns its
// rows of the table.
func checkGuest(t *testing.T, name string, g guest) []matrixRow {
	t.Helper()
	if !g.bpf.ran || g.bpf.status != 0 {
		t.Errorf("bpf load-and-attach test: exit %d, failed %v\n%s", g.bpf.status, g.bpf.failed, g.bpf.output)
	}
	var rows []matrixRow
	var reference []AccuracyResult
	referenceBackend := ""
	for _, b := range backends {
		row := matrixRow{kernel: name, release: g.release, backend: b}
		status, listed := g.probes[b]
		row.works = status == "yes"
		if !row.works {
			row.reason = status
		}
		if want := b != "tracepoint" || atLeast(g.release, 6, 14); want != row.works {
			t.Errorf("backend %s works = %v (%q), want %v on %s", b, row.works, status, want, g.release)
		}
		if !listed {
			t.Errorf("capprof probes did not list %s", b)
		}
		if !row.works {
			rows = append(rows, row)
			continue
		}
		s := g.e2e[b]
		row.tests, row.failed = len(s.passed), s.failed
		if !s.ran || s.status != 0 || len(s.failed) > 0 || len(s.passed) == 0 {
			t.Errorf("%s: e2e tests: exit %d, passed %d, failed %v\n%s", b, s.status, len(s.passed), s.failed, failureOutput(s))
		}
		results := g.accuracy[b]
		row.workloads = len(results)
		if len(results) == 0 {
			t.Errorf("%s: no accuracy results", b)
		}
		for _, r := range results {
			if r.Probe != b {
				t.Errorf("%s: workload %s was recorded with probe %q", b, r.Workload, r.Probe)
			}
			if !r.Sufficient || !r.Minimal {
				t.Errorf("%s: workload %s: recommendation %v sufficient %v, minimal %v", b, r.Workload, r.Required, r.Sufficient, r.Minimal)
			}
		}
		row.agree = true
		if reference == nil {
			reference, referenceBackend = results, b
		} else if diff := compareResults(reference, results); diff != "" {
			row.agree = false
			t.Errorf("%s and %s recommend differently on %s: %s", referenceBackend, b, g.release, diff)
		}
		rows = append(rows, row)
	}
	return rows
}

// compareResults says how two backends' accuracy rows differ, or "".
func compareResults(a, b []AccuracyResult) string {
	byName := map[string]AccuracyResult{}
	for _, r := range a {
		byName[r.Workload] = r
	}
	var diffs []string
	for _, r := range b {
		ref, ok := byName[r.Workload]
		switch {
		case !ok:
			diffs = append(diffs, r.Workload+" only in one")
		case !slices.Equal(ref.Required, r.Required) || !slices.Equal(ref.Denied, r.Denied):
			diffs = append(diffs, fmt.Sprintf("%s: required %v denied %v vs required %v denied %v", r.Workload, ref.Required, ref.Denied, r.Required, r.Denied))
		}
		delete(byName, r.Workload)
	}
	for w := range byName {
		diffs = append(diffs, w+" only in one")
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; ")
}

// atLeast compares a kernel release ("6.12.57+deb13-cloud-amd64") with major.minor.
func atLeast(release string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(release, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// failureOutput is what a failed run printed that tells why: each failed
// test's own lines (from its "=== RUN" to its "--- FAIL"), or the run's
// last lines when no test failed (a crash, a timeout).
func failureOutput(s section) string {
	if len(s.failed) == 0 {
		return lastLines(s.output, 60)
	}
	var b strings.Builder
	for _, name := range s.failed {
		start := strings.Index(s.output, "=== RUN   "+name+"\n")
		end := strings.Index(s.output, "--- FAIL: "+name+" ")
		if start < 0 || end < start {
			continue
		}
		b.WriteString(lastLines(s.output[start:end], 200) + "\n")
	}
	if b.Len() == 0 {
		return lastLines(s.output, 60)
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// matrixTable renders the rows as the README's markdown table.
func matrixTable(rows []matrixRow) string {
	var b strings.Builder
	b.WriteString("| Kernel | Probe | Works | Verified in the guest |\n|---|---|---|---|\n")
	for _, r := range rows {
		if !r.works {
			fmt.Fprintf(&b, "| %s | %s | no | %s |\n", r.release, r.backend, strings.ReplaceAll(r.reason, "|", `\|`))
			continue
		}
		agree := "same recommendations as the other probes"
		if !r.agree {
			agree = "DIFFERENT recommendations from the other probes"
		}
		failed := ""
		if len(r.failed) > 0 {
			failed = fmt.Sprintf(" (FAILED: %s)", strings.Join(r.failed, ", "))
		}
		fmt.Fprintf(&b, "| %s | %s | yes | loads and attaches; %d e2e tests pass%s; %d accuracy workloads sufficient and minimal; %s |\n",
			r.release, r.backend, r.tests, failed, r.workloads, agree)
	}
	return b.String()
}
