// Package outfile writes capprof's outputs (profiles, events) so that a
// fault never leaves a half-written or replaced file: a regular file
// appears at its path, complete, when the output is committed, or not at
// all; what was there before stays until then.
//
// Not every path is a regular file. "-" is stdout. Character devices and
// pipes (/dev/null, a FIFO, a terminal), and the paths of open file
// descriptors (/dev/stdout, /dev/fd/N, /proc/self/fd/N) are written in
// place, as a shell's redirection does, instead of being replaced by a
// regular file. A symbolic link stays: the file it points to is replaced.
// A new file gets the umask's mode, and a replaced file keeps its mode and
// owner.
package outfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// File is an output being written.
type File struct {
	flag, path string
	w          io.Writer
	file       *os.File // nil for stdout
	target     string   // the regular file that commit replaces; "" when written in place
	named      string   // the temporary name, when O_TMPFILE is not available
	written    int64
	err        error
	done       bool
}

// Open prepares path for what flag (such as "-o") names; stdout is what
// "-" means.
func Open(flag, path string, stdout io.Writer) (*File, error) {
	o := &File{flag: flag, path: path}
	if path == "-" {
		o.w = stdout
		return o, nil
	}
	k, target, err := classify(flag, path)
	if err != nil {
		return nil, err
	}
	if k == inPlace {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, fmt.Errorf("cannot write %s: %w", describe(flag, path), err)
		}
		o.file, o.w = f, f
		return o, nil
	}
	o.target = target
	dir := filepath.Dir(target)
	var f *os.File
	if f = openUnnamed(dir, target); f == nil {
		if f, err = os.CreateTemp(dir, "."+filepath.Base(target)+".*.tmp"); err != nil {
			return nil, fmt.Errorf("cannot write %s: %w", describe(flag, path), err)
		}
		o.named = f.Name()
		if err := f.Chmod(0o666 &^ umask()); err != nil {
			o.Abort()
			return nil, fmt.Errorf("cannot write %s: %w", describe(flag, path), err)
		}
	}
	o.file, o.w = f, f
	if st, err := os.Stat(target); err == nil {
		// Replacing a file keeps its mode (a 0600 profile stays 0600) and,
		// where capprof may, its owner.
		if err := f.Chmod(st.Mode().Perm()); err != nil {
			o.Abort()
			return nil, fmt.Errorf("cannot write %s: %w", describe(flag, path), err)
		}
		if sys, ok := st.Sys().(*unix.Stat_t); ok {
			f.Chown(int(sys.Uid), int(sys.Gid))
		}
	}
	return o, nil
}

// Name is the output as messages name it: "stdout" or its path.
func (o *File) Name() string {
	if o.path == "-" {
		return "stdout"
	}
	return o.path
}

// Write writes p; after a failed write it writes nothing more and reports
// that first error again.
func (o *File) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	o.written += int64(n)
	if err != nil {
		o.err = err
	}
	return n, err
}

// Err is the first write error.
func (o *File) Err() error { return o.err }

// Commit makes the output appear at its path. After a write error it
// writes nothing, leaves the path as it was, and says why.
func (o *File) Commit() error {
	if o.done {
		return nil
	}
	if o.err != nil {
		o.Abort()
		return o.failed(o.err)
	}
	o.done = true
	if o.file == nil {
		return nil
	}
	if o.target == "" {
		if err := o.file.Close(); err != nil {
			return o.failed(err)
		}
		return nil
	}
	if err := o.file.Sync(); err != nil {
		o.file.Close()
		o.removeTemporary()
		return o.failed(err)
	}
	if o.named != "" {
		if err := o.file.Close(); err != nil {
			o.removeTemporary()
			return o.failed(err)
		}
		if err := os.Rename(o.named, o.target); err != nil {
			o.removeTemporary()
			return o.failed(err)
		}
		return nil
	}
	// An O_TMPFILE file is linked under a temporary name, then renamed
	// over the target: linkat cannot replace a file.
	tmp := filepath.Join(filepath.Dir(o.target), fmt.Sprintf(".%s.%d-%d.tmp", filepath.Base(o.target), os.Getpid(), time.Now().UnixNano()))
	err := linkUnnamed(o.file, tmp)
	closeErr := o.file.Close()
	if err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp, o.target)
	}
	if err != nil {
		os.Remove(tmp)
		return o.failed(err)
	}
	return nil
}

// Cause is what went wrong with a file, without the file's name, which the
// message names already: "no space left on device", not "write /x: no space
// left on device".
func Cause(err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}

func (o *File) failed(err error) error {
	err = Cause(err)
	what := fmt.Sprintf("%s not written", o.path)
	if o.target == "" {
		what = fmt.Sprintf("%d bytes written to %s", o.written, o.Name())
	}
	return fmt.Errorf("%s: %w (%s)", o.what(), err, what)
}

// what is `write -o "p.json"`.
func (o *File) what() string { return "write " + describe(o.flag, o.path) }

// describe is `-o "p.json"`, or `"p.json"` for a path no flag names.
func describe(flag, path string) string {
	if flag == "" {
		return strconv.Quote(path)
	}
	return flag + " " + strconv.Quote(path)
}

// Abort discards the output: a regular file's path stays as it was.
func (o *File) Abort() {
	if o.done {
		return
	}
	o.done = true
	if o.file != nil {
		o.file.Close()
		o.removeTemporary()
	}
}

func (o *File) removeTemporary() {
	if o.named != "" {
		os.Remove(o.named)
	}
}

// Write writes what write produces to path (stdout for "-") and commits
// it, or leaves path as it was and says why.
func Write(flag, path string, stdout io.Writer, write func(io.Writer) error) error {
	o, err := Open(flag, path, stdout)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(o)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil && o.Err() == nil {
		o.Abort()
		return fmt.Errorf("%s: %w", o.what(), err)
	}
	return o.Commit()
}

// Check says, before a recording starts, whether path can be written.
func Check(flag, path string) error {
	if path == "-" {
		return nil
	}
	k, target, err := classify(flag, path)
	if err != nil || k == inPlace {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(target), ".capprof-check-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", describe(flag, path), err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// Same reports whether two outputs would replace one file, which would
// lose one of them: the same path, or the same regular file (through
// another spelling or a symbolic link), or both stdout. Writing twice into
// a device or a pipe (/dev/null) loses nothing.
func Same(a, b string) bool {
	if a == "-" || b == "-" {
		return a == b
	}
	ka, ta, errA := classify("", a)
	kb, tb, errB := classify("", b)
	if errA != nil || errB != nil || ka == inPlace || kb == inPlace {
		return false
	}
	absA, errA := filepath.Abs(ta)
	absB, errB := filepath.Abs(tb)
	if errA == nil && errB == nil && absA == absB {
		return true
	}
	stA, errA := os.Stat(ta)
	stB, errB := os.Stat(tb)
	return errA == nil && errB == nil && os.SameFile(stA, stB)
}

type kind int

const (
	replace kind = iota // a regular file, replaced at commit
	inPlace             // a device, a pipe or an open descriptor, written as it is
)

// fdPath matches the paths of open file descriptors.
var fdPath = regexp.MustCompile(`^(/proc/[^/]+/fd|/dev/fd)/[0-9]+$|^/dev/std(out|err)$`)

// classify says how path is written and, for a regular file, which file
// (symbolic links resolved) is replaced.
func classify(flag, path string) (kind, string, error) {
	if fdPath.MatchString(filepath.Clean(path)) {
		return inPlace, "", nil
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(path); lerr == nil {
			return 0, "", fmt.Errorf("%s is a symbolic link to a file that does not exist", describe(flag, path))
		}
		return replace, path, nil
	case err != nil:
		return 0, "", fmt.Errorf("cannot write %s: %w", describe(flag, path), err)
	case st.IsDir():
		return 0, "", fmt.Errorf("%s is a directory, not a file", describe(flag, path))
	case st.Mode().IsRegular():
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return 0, "", fmt.Errorf("cannot write %s: %w", describe(flag, path), err)
		}
		return replace, target, nil
	case st.Mode()&(fs.ModeCharDevice|fs.ModeNamedPipe) != 0:
		return inPlace, "", nil
	}
	return 0, "", fmt.Errorf("%s is a %s: capprof writes into regular files, character devices and pipes", describe(flag, path), fileType(st.Mode()))
}

func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// umask is the process's file mode creation mask (Linux 4.7 shows it in
// /proc/self/status; reading it with umask(2) would change it for every
// thread for a moment).
func umask() os.FileMode {
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(m)
				}
			}
		}
	}
	return 0o022
}
