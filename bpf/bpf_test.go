package bpf

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
)

func TestCheckKernelTypesWithoutTracepoint(t *testing.T) {
	// capprof's own object has BTF, but no btf_trace_cap_capable: it stands
	// in for a kernel older than 6.14.
	spec, err := btf.LoadSpec("capprof_x86_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	err = checkKernelTypes(spec)
	if err == nil || !strings.Contains(err.Error(), "no capability:cap_capable tracepoint (added in Linux 6.14)") {
		t.Fatalf("checkKernelTypes = %v, want the missing-tracepoint error", err)
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

// TestLoadAndAttach loads every program through the kernel verifier and
// attaches it: what `capprof record` does before it starts a workload.
func TestLoadAndAttach(t *testing.T) {
	reason := ""
	if os.Geteuid() != 0 {
		reason = "loading eBPF programs needs root"
	} else if err := CheckKernel(); err != nil {
		reason = err.Error()
	}
	if reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run: %s (CI=true: not skipping)", reason)
		}
		t.Skip(reason)
	}
	p, err := Load(Options{Startup: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Attach(); err != nil {
		t.Fatal(err)
	}
	if got, want := len(p.links), len(p.spec.Programs); got != want {
		t.Fatalf("%d links for %d programs", got, want)
	}
	if _, err := p.Stats(); err != nil {
		t.Fatal(err)
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
