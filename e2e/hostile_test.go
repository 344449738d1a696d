package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/capprof/capprof/profile"
)

// TestHostileNames: a workload names its executables with terminal escapes,
// a carriage return, a bidi override and bytes that are not UTF-8. The
// profile keeps every one apart, and neither the analysis table nor the
// compact events print any of them raw.
func TestHostileNames(t *testing.T) {
	requireRecording(t)
	dir := t.TempDir()
	names := []string{"bin-\xff\xfe", "bin-\xfe\xff", "\x1b[2J\x1b[Hok\rCAP_SYS_ADMIN not needed\u202e"}
	data, err := os.ReadFile(workloadBin)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	script := `for b in "$@"; do "$b" bind80 || exit 1; done`
	r := record(t, []string{"--events", "-", "--events-format", "compact"}, append([]string{"/bin/sh", "-c", script, "sh"}, paths...)...)
	if r.code != 0 {
		t.Fatalf("record: exit %d, stderr: %s", r.code, r.stderr)
	}
	var executables []string
	for _, s := range sources(r.profile, "CAP_NET_BIND_SERVICE") {
		executables = append(executables, s.Executable)
	}
	slices.Sort(executables)
	want := []string{filepath.Join(dir, `\x1b[2J\x1b[Hok\rCAP_SYS_ADMIN not needed\u202e`), filepath.Join(dir, `bin-\xfe\xff`), filepath.Join(dir, `bin-\xff\xfe`)}
	slices.Sort(want)
	if !slices.Equal(executables, want) {
		t.Errorf("CAP_NET_BIND_SERVICE executables = %q, want %q", executables, want)
	}
	out := filepath.Join(t.TempDir(), "p.json")
	if err := profile.Save(r.profile, out); err != nil {
		t.Fatal(err)
	}
	table := capprof(t, "analyze", out)
	for what, text := range map[string]string{"events": r.stdout, "stderr": r.stderr, "analyze": table.stdout + table.stderr} {
		if i := strings.IndexFunc(text, func(c rune) bool { return c < 0x20 && c != '\n' || c == '\u202e' || c == 0xfffd }); i >= 0 {
			t.Errorf("%s prints %q raw:\n%s", what, text[i:i+1], text)
		}
	}
	if !strings.Contains(table.stdout, `bin-\xfe\xff: bind`) || !strings.Contains(r.stdout, `\x1b[2J\x1b[Hok\rCAP_SYS_ADMIN`) {
		t.Errorf("the escaped names are not shown:\n%s\n%s", table.stdout, r.stdout)
	}
}
