package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/profile"
)

// TestOutputsIntoSpecialFiles: -o - is stdout; /dev/null and a FIFO are
// written into, not replaced by a regular file.
func TestOutputsIntoSpecialFiles(t *testing.T) {
	requireRecording(t)
	r := capprof(t, "record", "-o", "-", "--", workloadBin, "bind80")
	var p v1alpha1.Profile
	if r.code != 0 || json.Unmarshal([]byte(r.stdout[strings.Index(r.stdout, "{"):]), &p) != nil || p.Kind != v1alpha1.Kind {
		t.Fatalf("record -o -: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	r = capprof(t, "record", "-o", "/dev/null", "--events", "/dev/null", "--", workloadBin, "bind80")
	if st, err := os.Stat("/dev/null"); r.code != 0 || err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("record -o /dev/null --events /dev/null: exit %d, stderr %s; /dev/null is %v (%v)", r.code, r.stderr, st.Mode(), err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		data, _ := os.ReadFile(fifo)
		got <- data
	}()
	r = capprof(t, "record", "-o", fifo, "--", workloadBin, "bind80")
	if err := json.Unmarshal(<-got, &p); r.code != 0 || err != nil {
		t.Fatalf("record -o FIFO: exit %d, stderr %s; the reader: %v", r.code, r.stderr, err)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", st.Mode(), err)
	}
}

// TestOutputModes: a new profile honours the umask; a replaced one keeps
// its mode.
func TestOutputModes(t *testing.T) {
	requireRecording(t)
	dir := t.TempDir()
	fresh, existing := filepath.Join(dir, "new.json"), filepath.Join(dir, "old.json")
	if err := os.WriteFile(existing, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(existing, 0o640)
	for _, out := range []string{fresh, existing} {
		r := capprof(t, "record", "-o", out, "--", "/bin/sh", "-c", "umask 0; exec "+workloadBin+" bind80")
		if r.code != 0 {
			t.Fatalf("record: exit %d: %s", r.code, r.stderr)
		}
	}
	// capprof itself runs under the test's umask (022, or 002); the
	// command's umask is its own.
	mask := unix.Umask(0)
	unix.Umask(mask)
	for out, want := range map[string]os.FileMode{fresh: 0o666 &^ os.FileMode(mask), existing: 0o640} {
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", filepath.Base(out), st.Mode().Perm(), err, want)
		}
	}
	cmd := fmt.Sprintf("umask 077; exec %s record -o %s -- %s bind80", capprofBin, filepath.Join(dir, "private.json"), workloadBin)
	if r := capprof(t, "record", "-o", filepath.Join(dir, "outer.json"), "--", "/bin/sh", "-c", cmd); r.code != 0 {
		t.Fatalf("record under umask 077: exit %d: %s", r.code, r.stderr)
	}
	if st, err := os.Stat(filepath.Join(dir, "private.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("profile written under umask 077: %v (%v), want -rw-------", st.Mode().Perm(), err)
	}
}

// TestFullDisk: --events on a full filesystem says so at once and at the
// end, leaves no file, and the profile (elsewhere) is still saved; a
// profile that does not fit is not written, and capprof says so.
func TestFullDisk(t *testing.T) {
	requireRecording(t)
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount a small tmpfs: %v", err)
	}
	defer unix.Unmount(small, unix.MNT_DETACH)
	out := filepath.Join(t.TempDir(), "profile.json")
	events := filepath.Join(small, "events.json")
	r := capprof(t, "record", "-o", out, "--events", events, "--events-rate-limit", "0", "--", workloadBin, "bench", "setuid", "5000", "1")
	if r.code == 0 {
		t.Fatalf("record with --events on a full disk: exit 0; stderr: %s", r.stderr)
	}
	for _, want := range []string{
		"failed after", "no space left on device; no more events are written, the recording goes on",
		fmt.Sprintf(`capprof: write --events %q: no space left on device (%s not written)`, events, events),
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if entries, _ := os.ReadDir(small); len(entries) != 0 {
		t.Errorf("left on the full filesystem: %v", entries)
	}
	if p, err := profile.Load(out); err != nil {
		t.Errorf("the profile was not saved: %v", err)
	} else {
		wantRequired(t, p, "SETUID")
	}

	// Now the profile itself does not fit.
	if err := os.WriteFile(filepath.Join(small, "filler"), make([]byte, 128<<10), 0o644); err == nil {
		t.Fatal("the filler fit in a 64 KiB filesystem")
	}
	out = filepath.Join(small, "profile.json")
	r = capprof(t, "record", "-o", out, "--", workloadBin, "bind80")
	if want := fmt.Sprintf(`write -o %q: no space left on device (%s not written)`, out, out); r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("profile on a full disk: exit %d, stderr lacks %q:\n%s", r.code, want, r.stderr)
	}
	if entries, _ := os.ReadDir(small); len(entries) != 1 {
		t.Errorf("left on the full filesystem: %v", entries)
	}
}

// TestRedaction: secrets on command lines reach neither the profile nor
// the events: by default, and with --redact.
func TestRedaction(t *testing.T) {
	requireRecording(t)
	script := workloadBin + ` bind80; /bin/sh -c true "$0" --license=L1C3NS3`
	r := record(t, []string{"--events", "-", "--redact", `--license=(\S+)`}, "/bin/sh", "-c", script,
		"postgres://app:pa55word@db/app", "--db-password=hunter2", "--token", "t0ken", "--port=80")
	if r.code != 0 {
		t.Fatalf("record: exit %d: %s", r.code, r.stderr)
	}
	saved, err := json.Marshal(r.profile)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"pa55word", "hunter2", "t0ken", "L1C3NS3"} {
		if strings.Contains(string(saved), secret) || strings.Contains(r.stdout, secret) {
			t.Errorf("%q is in the profile or the events", secret)
		}
	}
	command := strings.Join(r.profile.Metadata.Command, " ")
	if !strings.Contains(command, "postgres://app:*****@db/app --db-password=***** --token ***** --port=80") {
		t.Errorf("the profile's command is %q", command)
	}
	if !strings.Contains(r.stdout, `--license=*****`) {
		t.Errorf("the events do not show the --redact mask:\n%s", r.stdout)
	}
	r = record(t, []string{"--default-redaction=false"}, "/bin/sh", "-c", "true", "sh", "--db-password=hunter2")
	if command := strings.Join(r.profile.Metadata.Command, " "); !strings.Contains(command, "hunter2") {
		t.Errorf("--default-redaction=false: the command is %q", command)
	}
}
