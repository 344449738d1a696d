package outfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func write(t *testing.T, path, text string) error {
	t.Helper()
	return Write("-o", path, nil, func(w io.Writer) error { _, err := io.WriteString(w, text); return err })
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

func TestNewFileHonoursUmask(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	path := filepath.Join(t.TempDir(), "p.json")
	if err := write(t, path, "{}\n"); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("mode %v under umask 077, want -rw-------", m)
	}
}

func TestReplacedFileKeepsItsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	if err := write(t, path, "new"); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o640 {
		t.Errorf("mode %v, want the old file's -rw-r-----", m)
	}
	if data, _ := os.ReadFile(path); string(data) != "new" {
		t.Errorf("content %q", data)
	}
}

func TestSymlinkStays(t *testing.T) {
	dir := t.TempDir()
	target, link := filepath.Join(dir, "real.json"), filepath.Join(dir, "link.json")
	os.WriteFile(target, []byte("old"), 0o644)
	if err := os.Symlink("real.json", link); err != nil {
		t.Fatal(err)
	}
	if err := write(t, link, "new"); err != nil {
		t.Fatal(err)
	}
	if mode(t, link)&os.ModeSymlink == 0 {
		t.Fatal("the symbolic link was replaced by a file")
	}
	if data, _ := os.ReadFile(target); string(data) != "new" {
		t.Errorf("target holds %q", data)
	}
	if err := write(t, filepath.Join(dir, "dangling"), "x"); err != nil {
		t.Fatal(err)
	}
	os.Symlink("nowhere", filepath.Join(dir, "broken"))
	if err := write(t, filepath.Join(dir, "broken"), "x"); err == nil || !strings.Contains(err.Error(), "symbolic link to a file that does not exist") {
		t.Errorf("broken link: %v", err)
	}
}

func TestSpecialFilesWrittenInPlace(t *testing.T) {
	if err := write(t, "/dev/null", "profile"); err != nil {
		t.Fatal(err)
	}
	if mode(t, "/dev/null")&os.ModeCharDevice == 0 {
		t.Fatal("/dev/null is no longer a character device")
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string)
	go func() {
		data, _ := os.ReadFile(fifo)
		got <- string(data)
	}()
	if err := write(t, fifo, "through the pipe"); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "through the pipe" {
		t.Errorf("the reader got %q", s)
	}
	if mode(t, fifo)&os.ModeNamedPipe == 0 {
		t.Fatal("the FIFO was replaced")
	}
}

func TestStdout(t *testing.T) {
	var b bytes.Buffer
	if err := Write("-o", "-", &b, func(w io.Writer) error { _, err := io.WriteString(w, "{}\n"); return err }); err != nil || b.String() != "{}\n" {
		t.Fatalf("wrote %q: %v", b.String(), err)
	}
}

func TestRefused(t *testing.T) {
	dir := t.TempDir()
	for path, want := range map[string]string{
		dir:                 "is a directory, not a file",
		"/dev/loop-control": "", // a character device: fine
	} {
		err := Check("-o", path)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("Check(%q) = %v, want %q", path, err, want)
		}
	}
	if err := unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err == nil {
		if err := Check("-o", filepath.Join(dir, "blk")); err == nil || !strings.Contains(err.Error(), "is a block device") {
			t.Errorf("block device: %v", err)
		}
	}
}

// A failed write leaves the old file, and no temporary file, behind.
func TestFailedWriteLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.json")
	os.WriteFile(path, []byte("old"), 0o644)
	err := Write("-o", path, nil, func(w io.Writer) error {
		io.WriteString(w, "half")
		return errors.New("encoder broke")
	})
	if err == nil || !strings.Contains(err.Error(), "encoder broke") {
		t.Fatalf("err = %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("file holds %q", data)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

// On a full filesystem the output says it was not written, and is not.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	path := filepath.Join(dir, "events.json")
	o, err := Open("--events", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = o.Write(bytes.Repeat([]byte("x"), 1024))
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("write error %v, want ENOSPC", werr)
	}
	err = o.Commit()
	if err == nil || !strings.Contains(err.Error(), `write --events "`+path+`": no space left on device (`+path+` not written)`) {
		t.Fatalf("commit: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestSame(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	os.WriteFile(a, nil, 0o644)
	os.Symlink("a.json", filepath.Join(dir, "l.json"))
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{a, a, true},
		{a, filepath.Join(dir, ".", "a.json"), true},
		{a, filepath.Join(dir, "l.json"), true},
		{a, filepath.Join(dir, "b.json"), false},
		{"-", "-", true},
		{"-", a, false},
		{"/dev/null", "/dev/null", false},
	} {
		if got := Same(tc.a, tc.b); got != tc.want {
			t.Errorf("Same(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
