package kernels

import (
	"strings"
	"testing"
)

// TestFailureOutput: a guest's failed test is reported with its own lines,
// not the run's last ones (which are the tests after it).
func TestFailureOutput(t *testing.T) {
	console := strings.Join([]string{
		"capprof-matrix begin e2e kprobe",
		"=== RUN   TestA",
		"--- PASS: TestA (1.00s)",
		"=== RUN   TestB",
		"    e2e_test.go:477: two recordings of the same workload differ",
		"--- FAIL: TestB (2.00s)",
		"=== RUN   TestC",
		"    c says something long",
		"--- PASS: TestC (3.00s)",
		"FAIL",
		"capprof-matrix end e2e kprobe 1",
		"capprof-matrix done",
	}, "\n")
	g := parseConsole(console)
	s := g.e2e["kprobe"]
	if s.status != 1 || len(s.failed) != 1 || s.failed[0] != "TestB" || len(s.passed) != 2 {
		t.Fatalf("section %+v", s)
	}
	out := failureOutput(s)
	if !strings.Contains(out, "two recordings of the same workload differ") || strings.Contains(out, "TestC") || strings.Contains(out, "TestA") {
		t.Fatalf("failure output %q, want TestB's lines only", out)
	}
	s.failed = nil // a crash: no test failed, the last lines tell
	if out := failureOutput(s); !strings.Contains(out, "c says something long") {
		t.Fatalf("failure output %q, want the last lines", out)
	}
}
