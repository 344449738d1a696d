package events

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Sink is one output that several event streams write at once (capprof
// agent's recordings, each with its own stream): every write it passes on
// is whole lines, so lines of two streams never interleave, and a rotated
// file never splits a line.
type Sink struct {
	name string
	mu   sync.Mutex
	w    io.Writer
}

// NewSink returns a sink writing to w, named name in messages ("stdout" or
// the file's path).
func NewSink(name string, w io.Writer) *Sink { return &Sink{name: name, w: w} }

// Name is the sink as messages name it.
func (s *Sink) Name() string { return s.name }

// Stream returns a writer for one stream of lines: it keeps a line until
// its end is written, and passes whole lines to the sink.
func (s *Sink) Stream() *SinkStream { return &SinkStream{sink: s} }

func (s *Sink) write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(p)
	return err
}

// SinkStream is one stream's writer to a Sink.
type SinkStream struct {
	sink    *Sink
	partial []byte // the start of a line whose end is still to come
}

// Name is the sink's name.
func (s *SinkStream) Name() string { return s.sink.name }

// Write passes the whole lines of partial+p to the sink and keeps the
// rest. It reports p written once its lines are.
func (s *SinkStream) Write(p []byte) (int, error) {
	end := bytes.LastIndexByte(p, '\n')
	if end < 0 {
		s.partial = append(s.partial, p...)
		return len(p), nil
	}
	lines := p[:end+1]
	if len(s.partial) > 0 {
		lines = append(s.partial, lines...)
	}
	if err := s.sink.write(lines); err != nil {
		return 0, err
	}
	s.partial = append(s.partial[:0], p[end+1:]...)
	return len(p), nil
}

// Close reports an unfinished line, which a writer of whole events never
// leaves; the sink stays open for the other streams.
func (s *SinkStream) Close() error {
	if len(s.partial) > 0 {
		return fmt.Errorf("events: %d bytes of an unfinished line left out of %s", len(s.partial), s.sink.name)
	}
	return nil
}

// CheckRotatedFile says why path cannot be a rotated events file: rotation
// renames it, so it must be a regular file, or not be there yet; a
// directory, a symbolic link, a device, a pipe or a socket is refused.
func CheckRotatedFile(path string) error {
	if path == "" || strings.HasSuffix(path, "/") || filepath.Base(path) == "." || filepath.Base(path) == ".." {
		return errors.New("names no file")
	}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.Mode().IsRegular():
		return nil
	}
	kind := "a special file"
	switch m := st.Mode(); {
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeSymlink != 0:
		kind = "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeDevice != 0:
		kind = "a device"
	}
	return fmt.Errorf("it is %s: the events file is rotated by renaming it, so give the path of a regular file (or of none yet)", kind)
}

// RotatedFile is an events file that is rotated as Tetragon rotates its
// export file (the same library, lumberjack): once a write would take it
// past maxSizeMB mebibytes, it is renamed with its time of rotation
// (events-2026-12-02T06-15-04.000.log) and a new file begun; at most
// maxBackups old files are kept (0: all). A file already there is
// appended to. It is opened now, so that a path that cannot be written
// fails here rather than at the first event.
func RotatedFile(path string, maxSizeMB, maxBackups int) (io.WriteCloser, error) {
	if maxSizeMB <= 0 {
		return nil, errors.New("the size of an events file must be at least 1 MiB")
	}
	if maxBackups < 0 {
		return nil, errors.New("the number of rotated events files to keep must not be negative")
	}
	if err := CheckRotatedFile(path); err != nil {
		return nil, err
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	f := &rotatedFile{Logger: &lumberjack.Logger{Filename: path, MaxSize: maxSizeMB, MaxBackups: maxBackups}, lock: lock}
	if _, err := f.Write(nil); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lockFile makes path's directory if need be and takes the lock that makes
// one process the writer of path: another agent of the node (a second
// release, an agent of another node sharing the directory) writing it too
// would overwrite its lines and rotate it under it. The lock is on
// .NAME.lock beside it, which rotation leaves alone.
func lockFile(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lockPath := filepath.Join(dir, "."+filepath.Base(path)+".lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another capprof agent writes it (it holds %s): give each agent a file of its own", lockPath)
		}
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	return lock, nil
}

// rotatedFile is a rotated events file and the lock that keeps its
// process its one writer.
type rotatedFile struct {
	*lumberjack.Logger
	lock *os.File
}

// Close closes the file and lets another process write it.
func (f *rotatedFile) Close() error {
	err := f.Logger.Close()
	f.lock.Close()
	return err
}
