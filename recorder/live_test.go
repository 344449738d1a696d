package recorder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
)

// heldBack stands in for the kernel's rate-limit map: what TakeSuppressed
// returns, once, per exec, capability and verdict.
type heldBack map[string]uint64

func (h heldBack) ReadLiveEvent() (bpf.Event, error) { return nil, bpf.ErrClosed }

func (h heldBack) TakeSuppressed(exec bpf.ExecKey, cap uint8, denied bool) (uint64, error) {
	key := fmt.Sprint(exec, cap, denied)
	n := h[key]
	delete(h, key)
	return n, nil
}

// TestLiveStream: events sent out of order (a check through its own ring
// buffer ahead of its exec) are written in kernel time order; a check
// before the exec that reported it is the exec's; what the kernel's rate
// limit held back of an exec's checks is written as a summary line when the
// exec ends, and counted; a fork's child is named after its parent.
func TestLiveStream(t *testing.T) {
	names := newTargetNames()
	names.addCommand(7, &namedTarget{identity: v1alpha1.Identity{Name: "app"}})
	out := filepath.Join(t.TempDir(), "events.json")
	const ms = time.Millisecond
	app := bpf.ExecKey{TGID: 5, Start: 1 * ms, Seq: 1}
	child := bpf.ExecKey{TGID: 6, Start: 4 * ms, Seq: 1}
	held := heldBack{fmt.Sprint(app, uint8(10), false): 4}
	var progress bytes.Buffer
	s, err := newLiveStream(EventsConfig{Output: out, Format: "json"}, &progress, held, "node-a", bpf.ExeID{Ino: 99}, false, names)
	if err != nil {
		t.Fatal(err)
	}
	header := func(key bpf.ExecKey, at time.Duration) bpf.Header {
		return bpf.Header{PID: key.TGID, TGID: key.TGID, Exec: key, CgroupID: 7, Time: at, Comm: "app"}
	}
	bind := bpf.CheckKey{CgroupID: 7, Exe: bpf.ExeID{Ino: 1}, Syscall: 49, Cap: 10}
	for _, ev := range []bpf.Event{
		&bpf.LiveCheck{Header: header(app, 3*ms), Key: bind, Suppressed: 2},
		&bpf.Exit{Header: header(app, 9*ms), Status: 0},
		&bpf.Fork{Header: header(app, 4*ms), Child: child, ChildPID: 6},
		&bpf.Exec{Header: header(app, 2*ms), Exe: bpf.ExeID{Ino: 1}, Filename: "/app", ExePath: "/app"},
		&bpf.Exit{Header: header(child, 5*ms), Status: 9},
		// capprof's own child before its exec: left out, as in the profile.
		&bpf.LiveCheck{Header: header(child, 4*ms+1), Key: bpf.CheckKey{Exe: bpf.ExeID{Ino: 99}, Cap: 21}},
	} {
		s.send(ev)
	}
	if err := s.close(&progress, 0); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		line := string(e.Type()) + " " + e.Process().Binary + fmt.Sprintf(" pid %d", e.Process().PID)
		switch {
		case e.ProcessKprobe != nil:
			line += fmt.Sprintf(" %s checks %d summary %v", e.ProcessKprobe.Capability.Name, e.ProcessKprobe.Checks, e.ProcessKprobe.Summary)
		case e.ProcessExit != nil:
			line += fmt.Sprintf(" status %d signal %q", e.ProcessExit.Status, e.ProcessExit.Signal)
		}
		got = append(got, line)
	}
	want := []string{
		"exec /app pid 5",
		"cap /app pid 5 CAP_NET_BIND_SERVICE checks 3 summary false",
		"exit /app pid 6 status 0 signal \"SIGKILL\"",
		"cap /app pid 5 CAP_NET_BIND_SERVICE checks 4 summary true",
		"exit /app pid 5 status 0 signal \"\"",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if msg := progress.String(); !strings.Contains(msg, "5 written to "+out) || !strings.Contains(msg, "6 checks held back by the rate limit") {
		t.Errorf("progress %q: want 5 events written and 6 checks held back", msg)
	}
}

// TestDispatcher: the collector gets the execs of the workload, the live
// stream those and the processes listed as already running; neither gets
// the container runtime executing itself.
func TestDispatcher(t *testing.T) {
	names := newTargetNames()
	names.addCommand(7, &namedTarget{identity: v1alpha1.Identity{Name: "app"}})
	out := filepath.Join(t.TempDir(), "events.json")
	var progress bytes.Buffer
	live, err := newLiveStream(EventsConfig{Output: out, Format: "json"}, &progress, heldBack{}, "node-a", bpf.ExeID{}, false, names)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector(bpf.ExeID{}, names)
	d := dispatcher{col: c, live: live}
	exec := func(tgid uint32, existing, runtime bool) *bpf.Exec {
		key := bpf.ExecKey{TGID: tgid, Start: time.Duration(tgid), Seq: 1}
		return &bpf.Exec{Header: bpf.Header{PID: tgid, TGID: tgid, Exec: key, CgroupID: 7, Time: time.Duration(tgid)},
			ExePath: "/app", Existing: existing, RuntimeInit: runtime}
	}
	d.handle(exec(1, false, false))
	d.handle(exec(2, true, false))
	d.handle(exec(3, false, true))
	if err := live.close(&progress, 0); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.nExecs != 1 || bytes.Count(data, []byte("\n")) != 2 {
		t.Errorf("the collector counted %d execs, the live stream wrote\n%s\nwant 1 exec and 2 events (pids 1 and 2)", c.nExecs, data)
	}
}

// TestHostNamespacesOf: sharing the host's PID namespace, capprof compares
// with PID 1's namespaces; in a PID namespace of its own (an agent without
// hostPID), with the initial namespaces' fixed numbers, and it never calls
// a mount or network namespace the host's, whose numbers it cannot know.
func TestHostNamespacesOf(t *testing.T) {
	read := func(name string) uint32 { return uint32(len(name)) }
	shared := hostNamespacesOf(true, read)
	if shared.ns[bpf.NSNet] != 3 || shared.ns[bpf.NSPIDForChildren] != uint32(len("pid_for_children")) || shared.user != 4 {
		t.Errorf("in the host's PID namespace: %+v, want PID 1's", shared)
	}
	own := hostNamespacesOf(false, func(string) uint32 { t.Fatal("read /proc from another PID namespace"); return 0 })
	want := map[int]uint32{bpf.NSUTS: 0xEFFFFFFE, bpf.NSIPC: 0xEFFFFFFF, bpf.NSPID: 0xEFFFFFFC, bpf.NSPIDForChildren: 0xEFFFFFFC,
		bpf.NSCgroup: 0xEFFFFFFB, bpf.NSTime: 0xEFFFFFFA, bpf.NSTimeForChildren: 0xEFFFFFFA, bpf.NSNet: 0, bpf.NSMnt: 0}
	for index, inum := range want {
		if own.ns[index] != inum {
			t.Errorf("in its own PID namespace, namespace %s = %#x, want %#x", nsNames[index], own.ns[index], inum)
		}
	}
	if own.user != 0xEFFFFFFD {
		t.Errorf("user namespace %#x, want the initial one's", own.user)
	}
	// No namespace number is 0: an unknown host namespace matches none.
	s := &liveStream{hostNS: own, podsMode: true}
	if why := s.privileged(bpf.Creds{}, &bpf.ExecDetails{}); len(why) != 0 {
		t.Errorf("a process without namespace numbers is privileged for %v", why)
	}
	d := &bpf.ExecDetails{}
	d.Namespaces[bpf.NSPID] = 0xEFFFFFFC
	if why := s.privileged(bpf.Creds{}, d); strings.Join(why, ",") != "host_pid_ns" {
		t.Errorf("a process in the initial PID namespace is privileged for %v, want host_pid_ns", why)
	}
}

// TestLiveStreamsShareSink: two recordings' live streams (capprof agent's)
// write whole lines to one sink, and stopping one leaves the sink to the
// other; a stream's file name is the sink's.
func TestLiveStreamsShareSink(t *testing.T) {
	names := newTargetNames()
	names.addCommand(7, &namedTarget{identity: v1alpha1.Identity{Name: "app"}})
	var out bytes.Buffer
	sink := events.NewSink("/var/log/capprof/events.log", &out)
	var progress bytes.Buffer
	var streams []*liveStream
	for range 2 {
		s, err := newLiveStream(EventsConfig{Output: sink.Name(), Format: "json", Sink: sink}, &progress, heldBack{}, "node-a", bpf.ExeID{}, false, names)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	for i, s := range streams {
		for n := range 500 {
			tgid := uint32(1000*(i+1) + n)
			key := bpf.ExecKey{TGID: tgid, Start: time.Duration(n), Seq: 1}
			s.send(&bpf.Exec{Header: bpf.Header{PID: tgid, TGID: tgid, Exec: key, CgroupID: 7, Time: time.Duration(n)},
				Filename: "/app", ExePath: "/app", Details: &bpf.ExecDetails{Args: []string{"/app", strings.Repeat("a", n)}}})
		}
	}
	for _, s := range streams {
		if err := s.close(&progress, 0); err != nil {
			t.Fatal(err)
		}
	}
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 1000 {
		t.Fatalf("%d lines in the sink, want 1000", len(lines))
	}
	for _, line := range lines {
		var e events.Event
		if err := json.Unmarshal(line, &e); err != nil || e.ProcessExec == nil {
			t.Fatalf("not a whole exec event (%v): %.200s", err, line)
		}
	}
	if n := strings.Count(progress.String(), "500 written to /var/log/capprof/events.log"); n != 2 {
		t.Errorf("progress %q: want each stream's 500 events said written to the sink", progress.String())
	}
}
