package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineEvent is event i of stream s, with a pad that makes lines long
// enough to cross the bufio buffers of the writers.
func lineEvent(s, i int) *Event {
	return &Event{NodeName: fmt.Sprintf("stream-%d-event-%d-%s", s, i, strings.Repeat("x", 100+i%300)), Time: time.Unix(int64(i), 0).UTC()}
}

// writeStreams writes n events on each of streams concurrent JSON writers
// to sink, flushing at every 7th as the live stream flushes at its ticks.
func writeStreams(t *testing.T, sink *Sink, streams, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for s := range streams {
		wg.Go(func() {
			stream := sink.Stream()
			w, err := NewWriter("json", stream)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range n {
				if err := w.Write(lineEvent(s, i)); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					if err := w.Flush(); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if err := w.Flush(); err != nil {
				t.Error(err)
			}
			if err := stream.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// readLines returns every line of data, each of which must be a whole
// event, and checks that each stream's events follow each other without a
// gap from the first of it there.
func readLines(t *testing.T, data []byte) []string {
	t.Helper()
	var lines []string
	next := map[int]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d is not a whole event (%v): %.200q", len(lines)+1, err, sc.Text())
		}
		var s, i int
		if _, err := fmt.Sscanf(e.NodeName, "stream-%d-event-%d-", &s, &i); err != nil {
			t.Fatalf("line %d: %v", len(lines)+1, err)
		}
		if want, seen := next[s]; seen && i != want {
			t.Fatalf("stream %d: event %d after %d", s, i, want-1)
		}
		next[s] = i + 1
		lines = append(lines, sc.Text())
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatal("the output ends inside a line")
	}
	return lines
}

func TestSinkKeepsLinesWhole(t *testing.T) {
	var out bytes.Buffer
	sink := NewSink("stdout", &out)
	writeStreams(t, sink, 4, 2000)
	if got := len(readLines(t, out.Bytes())); got != 4*2000 {
		t.Fatalf("%d lines, want %d", got, 4*2000)
	}
}

func TestSinkStreamReportsUnfinishedLine(t *testing.T) {
	var out bytes.Buffer
	stream := NewSink("stdout", &out).Stream()
	if _, err := stream.Write([]byte("{\"a\":1}\n{\"b\"")); err != nil {
		t.Fatal(err)
	}
	if out.String() != "{\"a\":1}\n" {
		t.Fatalf("sink got %q, want the whole line only", out.String())
	}
	if err := stream.Close(); err == nil || !strings.Contains(err.Error(), "unfinished line") {
		t.Fatalf("Close = %v, want the unfinished line reported", err)
	}
}

func TestRotatedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	f, err := RotatedFile(path, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file is not there once opened: %v", err)
	}
	// About 4.5 MiB of lines: four rotations, of which two files are kept.
	writeStreams(t, NewSink(path, f), 3, 6000)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var names []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, e := range entries {
			if e.Name() != ".events.log.lock" { // the writer's lock
				names = append(names, e.Name())
			}
		}
		// Old files are removed in the background.
		if len(names) <= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(names) != 3 || !slices.Contains(names, "events.log") {
		t.Fatalf("files %v, want events.log and two rotated ones", names)
	}
	// Oldest first: the rotated files by their names' times, then the
	// current one; together they are the streams' last events, in order.
	slices.Sort(names)
	names = append(slices.DeleteFunc(names, func(n string) bool { return n == "events.log" }), "events.log")
	var all []byte
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 1<<20 {
			t.Fatalf("%s has %d bytes, more than 1 MiB", name, len(data))
		}
		if name != "events.log" && !strings.HasPrefix(name, "events-") {
			t.Fatalf("rotated file %s is not named events-TIME.log", name)
		}
		var e Event
		first, _, _ := bytes.Cut(data, []byte("\n"))
		if err := json.Unmarshal(first, &e); err != nil {
			t.Fatalf("%s does not begin with a whole event: %v", name, err)
		}
		if data[len(data)-1] != '\n' {
			t.Fatalf("%s ends inside a line", name)
		}
		all = append(all, data...)
	}
	lines := readLines(t, all)
	if !strings.Contains(lines[len(lines)-1], "-event-5999-") {
		t.Fatalf("the last line is not a last event: %.100s", lines[len(lines)-1])
	}
}

// TestRotatedFileOneWriter: a second writer of one events file (another
// agent sharing the node's directory) is refused at its start, until the
// first closes it.
func TestRotatedFileOneWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "events.log")
	first, err := RotatedFile(path, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RotatedFile(path, 1, 1); err == nil || !strings.Contains(err.Error(), "another capprof agent writes it") {
		t.Fatalf("a second writer: %v, want it refused", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := RotatedFile(path, 1, 1)
	if err != nil {
		t.Fatalf("once the first closed it: %v", err)
	}
	second.Close()
}

func TestRotatedFileRefuses(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(notDir, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path         string
		size, copies int
		want         string
	}{
		{filepath.Join(dir, "e.log"), 0, 5, "at least 1 MiB"},
		{filepath.Join(dir, "e.log"), 10, -1, "must not be negative"},
		{"", 10, 5, "names no file"},
		{dir + "/", 10, 5, "names no file"},
		{dir, 10, 5, "it is a directory"},
		{link, 10, 5, "it is a symbolic link"},
		{"/dev/null", 10, 5, "it is a device"},
		{filepath.Join(notDir, "e.log"), 10, 5, "not a directory"},
	} {
		if _, err := RotatedFile(tc.path, tc.size, tc.copies); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RotatedFile(%q, %d, %d) = %v, want an error saying %q", tc.path, tc.size, tc.copies, err, tc.want)
		}
	}
	// Nothing refused was renamed or made.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("the directory holds %v after the refusals, want file and link.log alone", entries)
	}
}
