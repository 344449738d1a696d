package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
)

// TestCheckBackend: capprof's own object has BTF but none of the kernel's
// types, so it stands in for a kernel without the tracepoint (before 6.14)
// or the functions the fexit and kprobe backends hook.
func TestCheckBackend(t *testing.T) {
	spec, err := btf.LoadSpec("capprof_x86_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	for backend, want := range map[Backend]string{
		Tracepoint: "no capability:cap_capable tracepoint (added in Linux 6.14)",
		Fexit:      "no function cap_capable in its BTF",
		Kprobe:     "no function cap_capable in its BTF",
		"uprobe":   `unknown probe "uprobe"`,
	} {
		if err := checkBackend(spec, backend); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkBackend(%s) = %v, want %q", backend, err, want)
		}
	}
}

func TestParseBackend(t *testing.T) {
	for _, s := range []string{"auto", "tracepoint", "fexit", "kprobe"} {
		if b, err := ParseBackend(s); err != nil || string(b) != s {
			t.Errorf("ParseBackend(%q) = %q, %v", s, b, err)
		}
	}
	if _, err := ParseBackend("fentry"); err == nil || !strings.Contains(err.Error(), `unknown probe "fentry": use auto, tracepoint, fexit or kprobe`) {
		t.Errorf("ParseBackend(fentry) = %v", err)
	}
}

// TestProgramBackends: every program in the object belongs to one backend
// or to all, and each backend has a cap_capable hook.
func TestProgramBackends(t *testing.T) {
	spec, err := loadCapprof()
	if err != nil {
		t.Fatal(err)
	}
	hooks := map[Backend]int{}
	for _, p := range spec.Programs {
		b := programBackend(p.SectionName)
		if strings.HasSuffix(p.SectionName, "/cap_capable") {
			hooks[b]++
		}
	}
	want := map[Backend]int{Tracepoint: 1, Fexit: 1, Kprobe: 2}
	if fmt.Sprint(hooks) != fmt.Sprint(want) {
		t.Fatalf("cap_capable programs per backend %v, want %v", hooks, want)
	}
	for _, b := range Backends {
		s, _ := loadCapprof()
		selectPrograms(s, b)
		for _, p := range s.Programs {
			if other := programBackend(p.SectionName); other != "" && other != b {
				t.Errorf("%s keeps %s's program %s", b, other, p.SectionName)
			}
		}
	}
}

// TestCapCapableAuditArg reads cap_capable's prototype: "opts" since Linux
// 5.1, "audit" before.
func TestCapCapableAuditArg(t *testing.T) {
	param := func(name string) btf.FuncParam { return btf.FuncParam{Name: name, Type: &btf.Int{Size: 4}} }
	for last, want := range map[string]bool{"opts": false, "audit": true} {
		var b btf.Builder
		fn := &btf.Func{Name: "cap_capable", Type: &btf.FuncProto{Return: &btf.Int{Size: 4},
			Params: []btf.FuncParam{param("cred"), param("targ_ns"), param("cap"), param(last)}}}
		if _, err := b.Add(fn); err != nil {
			t.Fatal(err)
		}
		raw, err := b.Marshal(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := capCapableAuditArg(spec); err != nil || got != want {
			t.Errorf("argument %q: capCapableAuditArg = %v, %v; want %v", last, got, err, want)
		}
	}
}

func TestJoinPath(t *testing.T) {
	var names [16][128]int8
	for i, n := range []string{"ls", "bin", "usr"} {
		for j := range n {
			names[i][j] = int8(n[j])
		}
	}
	if got := joinPath(3, 0, &names); got != "/usr/bin/ls" {
		t.Errorf("joinPath = %q, want /usr/bin/ls", got)
	}
	if got := joinPath(2, 1, &names); got != "/.../bin/ls" {
		t.Errorf("truncated joinPath = %q, want /.../bin/ls", got)
	}
	if got := joinPath(0, 0, &names); got != "" {
		t.Errorf("empty joinPath = %q", got)
	}
	if got := joinPath(99, 0, &names); !strings.HasPrefix(got, "/////") {
		t.Errorf("depth beyond the array must be clamped, got %q", got)
	}
}

func TestDecodeExec(t *testing.T) {
	var raw capprofExecEvent
	raw.Hdr.Type = uint32(capprofEventTypeEVENT_EXEC)
	raw.Hdr.Pid, raw.Hdr.Tgid, raw.Hdr.CgroupId = 11, 10, 42
	raw.Flags = uint32(capprofExecFlagEXEC_PRIV_GAIN | capprofExecFlagEXEC_HAVE_BEFORE | capprofExecFlagEXEC_SCRIPT)
	raw.Before.Euid, raw.After.Euid = 1000, 0
	raw.After.CapPermitted = 1 << 7
	for i, c := range "./run.sh" {
		raw.Filename[i] = int8(c)
	}
	raw.Exe.Depth = 2
	for i, n := range []string{"sh", "bin"} {
		for j := range n {
			raw.Exe.Names[i][j] = int8(n[j])
		}
	}
	buf := encode(t, &raw)
	e, ok := roundTrip(t, &raw).(*Exec)
	if !ok {
		t.Fatalf("decoded %T, want *Exec", e)
	}
	if e.TGID != 10 || e.PID != 11 || e.CgroupID != 42 || e.ExePath != "/bin/sh" || e.Filename != "./run.sh" ||
		!e.Script || !e.PrivilegeGain || e.Before == nil || e.Before.EUID != 1000 || e.After.Permitted != 1<<7 {
		t.Fatalf("decoded %+v (before %+v)", e, e.Before)
	}
	if _, err := decodeEvent(buf[:3]); err == nil {
		t.Fatal("decoding 3 bytes succeeded")
	}
	if _, err := decodeEvent(buf[:100]); err == nil {
		t.Fatal("decoding a truncated exec event succeeded")
	}
	binary.NativeEndian.PutUint32(buf, 99)
	if _, err := decodeEvent(buf); err == nil || !strings.Contains(err.Error(), "unknown event type 99") {
		t.Fatalf("unknown type: %v", err)
	}
}

// encode lays out a generated event struct as the kernel writes it.
func encode(t *testing.T, raw any) []byte {
	t.Helper()
	buf, err := binary.Append(nil, binary.NativeEndian, raw)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// roundTrip decodes what encode wrote.
func roundTrip(t *testing.T, raw any) Event {
	t.Helper()
	ev, err := decodeEvent(encode(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestLoadAndAttach loads every backend's programs through the kernel
// verifier and attaches them: what `capprof record` does before it starts a
// workload. A backend this kernel cannot run must say why in one of the
// ways a user is told (no tracepoint, fentry refused, no kprobes); auto
// must find one that works.
func TestLoadAndAttach(t *testing.T) {
	reason := ""
	if os.Geteuid() != 0 {
		reason = "loading eBPF programs needs root"
	} else if err := CheckBackend(Auto); err != nil {
		reason = err.Error()
	}
	if reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run: %s (CI=true: not skipping)", reason)
		}
		t.Skip(reason)
	}
	explained := []string{"no capability:cap_capable tracepoint", "refuses fentry/fexit programs", "has no kprobes"}
	for _, s := range Survey() {
		if s.Err != nil {
			if !slices.ContainsFunc(explained, func(why string) bool { return strings.Contains(s.Err.Error(), why) }) {
				t.Errorf("%s: unexplained failure: %v", s.Backend, s.Err)
			}
			t.Logf("backend %s: unavailable: %v", s.Backend, s.Err)
			continue
		}
		t.Logf("backend %s: loads and attaches", s.Backend)
	}
	// With live events on, the verifier sees the code that streams checks
	// and exec details, which it drops as dead otherwise.
	for _, live := range []bool{false, true} {
		p, err := Load(Options{Startup: 10 * time.Second, Backend: Auto, LiveEvents: live, CheckInterval: time.Second})
		if err != nil {
			t.Fatalf("live events %v: %v", live, err)
		}
		defer p.Close()
		if err := p.Attach(); err != nil {
			t.Fatal(err)
		}
		hooked := 0
		for _, prog := range p.spec.Programs {
			if !strings.HasPrefix(prog.SectionName, "iter/") {
				hooked++
			}
		}
		if len(p.links) != hooked {
			t.Fatalf("%d links for %d hooked programs", len(p.links), hooked)
		}
		if err := p.ListProcesses(); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Stats(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDecodeSample(t *testing.T) {
	var raw capprofSampleEvent
	raw.Hdr.Type = uint32(capprofEventTypeEVENT_CAP_SAMPLE)
	raw.Key.Cap, raw.Key.Syscall, raw.Key.Flags = 21, 9, uint8(capprofCheckFlagCHECK_STEADY|capprofCheckFlagCHECK_INIT_USERNS)
	raw.StackBytes = 16
	raw.Stack[0], raw.Stack[1], raw.Stack[2] = 1, 2, 3
	s, ok := roundTrip(t, &raw).(*CheckSample)
	if !ok {
		t.Fatalf("decoded %T, want *CheckSample", s)
	}
	if s.Check.Cap != 21 || s.Check.Syscall != 9 || !s.Check.Steady || !s.Check.InitUserNS || len(s.Stack) != 2 || s.Stack[1] != 2 {
		t.Fatalf("decoded %+v", s)
	}
}
