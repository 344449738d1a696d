package recorder

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/internal/outfile"
	"github.com/capprof/capprof/internal/redact"
)

// EventsConfig is what record --events needs.
type EventsConfig struct {
	// Output is the file to write, or "-" for Stdout. A file is written
	// under a temporary name and renamed when recording stops.
	Output string
	Stdout io.Writer
	// Format is one of events.Formats.
	Format string
	Filter events.Filter
	// RateLimit is the interval of capability-check events per exec,
	// capability and verdict (0: every check).
	RateLimit time.Duration
	// Redact masks secrets in the processes' arguments.
	Redact *redact.Redactor
	// Sink, when set, is Output already open, shared with other
	// recordings and outliving this one (capprof agent's rotated file or
	// stdout): the events go to it in whole lines, and nothing is renamed
	// or removed when the recording stops.
	Sink *events.Sink
}

// eventsOutput is where a live stream writes: a file of its own
// (outfile.File: it appears, complete, when committed), or its stream of
// a shared sink.
type eventsOutput interface {
	io.Writer
	Name() string
	Commit() error
	Abort()
}

// sinkOutput is a live stream's part of a shared sink: what it wrote
// stays, and committing it only checks that it ended with a whole line.
type sinkOutput struct{ *events.SinkStream }

func (o sinkOutput) Commit() error { return o.Close() }
func (o sinkOutput) Abort()        {}

// Live events are released in kernel time order once they are this old:
// checks come through their own ring buffer, and an exec, its checks and its
// exit must be written in the order they happened. Both ring buffers are
// read at least every 100 ms (bpf.pollInterval).
const (
	reorderDelay  = 500 * time.Millisecond
	releasePeriod = 100 * time.Millisecond
	// liveQueueLen bounds the events waiting for the writer: when the
	// reader of --events falls behind, events are dropped and counted
	// rather than slowing the recording.
	liveQueueLen = 16384
)

// liveProbe is what the live stream asks of the probe: its live check
// events, and how many checks its rate limit held back (bpf.Probe).
type liveProbe interface {
	ReadLiveEvent() (bpf.Event, error)
	TakeSuppressed(exec bpf.ExecKey, cap uint8, denied bool) (uint64, error)
}

// liveStream turns what the probe saw into live events. The dispatcher and
// the live reader send to it without ever blocking; one goroutine orders
// (reorderBuffer), follows processes (processTable), builds Tetragon's
// events (livebuild.go) and writes them.
type liveStream struct {
	cfg      EventsConfig
	progress io.Writer
	probe    liveProbe
	node     string
	self     bpf.ExeID
	podsMode bool // host namespaces mark a process privileged (in a pod, not for a command)
	names    *targetNames
	writer   events.Writer
	out      eventsOutput
	bootWall time.Time // wall time at CLOCK_MONOTONIC 0
	hostNS   hostNamespaces
	// hostPIDs: capprof shares the host's PID namespace, so /proc/PID is
	// the process an event names. An agent in its own (no hostPID) names a
	// process it saw no exec of by its command name alone.
	hostPIDs bool

	in          chan bpf.Event
	done        chan struct{}
	dropped     atomic.Uint64 // queue full
	undecodable atomic.Uint64 // check events that could not be decoded

	// Owned by run:
	pending  reorderBuffer
	procs    *processTable
	symbols  symbolCache
	written  uint64
	filtered uint64
	unnamed  uint64 // events of cgroups no selected container explains (a pod's sandbox)
	held     uint64 // checks the kernel's rate limit held back
	writeErr error  // the first; no event is written after it
	runErr   error
}

// newLiveStream opens the output and starts the writer goroutine.
func newLiveStream(cfg EventsConfig, progress io.Writer, probe liveProbe, node string, self bpf.ExeID, podsMode bool, names *targetNames) (*liveStream, error) {
	var out eventsOutput
	if cfg.Sink != nil {
		out = sinkOutput{cfg.Sink.Stream()}
	} else {
		file, err := outfile.Open("--events", cfg.Output, cfg.Stdout)
		if err != nil {
			return nil, err
		}
		out = file
	}
	writer, err := events.NewWriter(cfg.Format, out)
	if err != nil {
		out.Abort()
		return nil, fmt.Errorf("--events-format: %w", err)
	}
	now, err := bpf.MonotonicNow()
	if err != nil {
		out.Abort()
		return nil, err
	}
	hostPIDs := inHostPIDNamespace()
	s := &liveStream{
		cfg: cfg, progress: progress, probe: probe, node: node, self: self, podsMode: podsMode, names: names, writer: writer, out: out,
		bootWall: time.Now().Add(-now), hostNS: hostNamespacesOf(hostPIDs, nsInode), hostPIDs: hostPIDs,
		in: make(chan bpf.Event, liveQueueLen), done: make(chan struct{}),
		procs: newProcessTable(), symbols: symbolCache{},
	}
	go s.run()
	return s, nil
}

// send queues an event without blocking; a full queue drops it.
func (s *liveStream) send(ev bpf.Event) {
	select {
	case s.in <- ev:
	default:
		s.dropped.Add(1)
	}
}

func (s *liveStream) pod(cgroupID uint64) *events.Pod { return s.names.pod(cgroupID) }

// readLive forwards the probe's live check events until it is flushed.
func (s *liveStream) readLive() error {
	return readEvents(s.probe.ReadLiveEvent, &s.undecodable, s.send)
}

func (s *liveStream) run() {
	defer close(s.done)
	tick := time.NewTicker(releasePeriod)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-s.in:
			if !ok {
				s.release(-1)
				s.endAll()
				return
			}
			s.pending.push(ev)
		case <-tick.C:
			if now, err := bpf.MonotonicNow(); err == nil {
				s.release(now - reorderDelay)
			}
		}
	}
}

// release handles the pending events older than before (all when -1), oldest first.
func (s *liveStream) release(before time.Duration) {
	s.resolveStacks(before)
	for ev, ok := s.pending.pop(before); ok; ev, ok = s.pending.pop(before) {
		s.handle(ev)
	}
	if err := s.writer.Flush(); err != nil {
		s.writeFailed(err)
	}
}

// writeFailed notes the first write error: the events stop there, the
// recording goes on. A reader of stdout that went away is said once at
// the end; anything else (a full disk) at once.
func (s *liveStream) writeFailed(err error) {
	if s.writeErr != nil {
		return
	}
	s.writeErr = err
	if !s.readerGone() {
		fmt.Fprintf(s.progress, "capprof: warning: events: writing %s failed after %d events: %v; no more events are written, the recording goes on\n",
			s.out.Name(), s.written, outfile.Cause(err))
	}
}

// readerGone is `capprof record --events - | head`: the reader of stdout
// went away (broken pipe).
func (s *liveStream) readerGone() bool {
	return s.cfg.Output == "-" && errors.Is(s.writeErr, syscall.EPIPE)
}

// close stops the stream once every event sent has been written, and
// reports what was written and lost. The caller has stopped sending.
func (s *liveStream) close(progress io.Writer, kernelDrops uint64) error {
	close(s.in)
	<-s.done
	var err error
	switch {
	case s.runErr != nil:
		s.out.Abort()
		err = fmt.Errorf("--events %q: %w", s.cfg.Output, s.runErr)
	case s.readerGone():
		// The recording went on; the profile is what matters.
		fmt.Fprintf(progress, "capprof: warning: events: stdout was closed by its reader (broken pipe) after %d events; the events stopped there, the recording went on\n", s.written)
		s.out.Abort()
	default:
		// A write error makes this say so, and the file does not appear.
		err = s.out.Commit()
	}
	if err != nil {
		return err
	}
	dropped := s.dropped.Load() + kernelDrops
	fmt.Fprintf(progress, "capprof: events: %d written to %s, %d filtered out, %d checks held back by the rate limit (counted in the lines that followed)",
		s.written, s.out.Name(), s.filtered, s.held)
	if s.unnamed > 0 {
		fmt.Fprintf(progress, ", %d of processes in no selected container (pod sandboxes) left out", s.unnamed)
	}
	if dropped > 0 {
		fmt.Fprintf(progress, "; %d lost (%d in the kernel: ring buffer or rate-limit map full; %d in capprof: the events' reader was too slow)",
			dropped, kernelDrops, s.dropped.Load())
	}
	if n := s.undecodable.Load(); n > 0 {
		fmt.Fprintf(progress, "; %d check events could not be decoded", n)
	}
	fmt.Fprintln(progress)
	return nil
}

// discard stops the stream and removes its file, for a recording that failed.
func (s *liveStream) discard() {
	close(s.in)
	<-s.done
	s.out.Abort()
}

func (s *liveStream) handle(ev bpf.Event) {
	switch e := ev.(type) {
	case *bpf.Exec:
		s.onExec(e)
	case *bpf.Fork:
		s.onFork(e)
	case *bpf.Exit:
		s.onExit(e)
	case *bpf.LiveCheck:
		s.onCheck(e)
	case *bpf.CredChange:
		s.onCredChange(e)
	}
}

func (s *liveStream) write(e *events.Event, at time.Duration) {
	if p := e.Process(); s.podsMode && p != nil && p.Pod == nil {
		// A cgroup below a pod's that no selected container explains: the
		// pod's sandbox, or a container not named (yet) when its events
		// were due.
		s.unnamed++
		return
	}
	e.NodeName, e.Time = s.node, s.wall(at)
	if !s.cfg.Filter.Match(e) {
		s.filtered++
		return
	}
	if s.writeErr != nil {
		return
	}
	if err := s.writer.Write(e); err != nil {
		s.writeFailed(err)
		return
	}
	s.written++
}
