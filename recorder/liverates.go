package recorder

import (
	"errors"
	"time"

	"github.com/capprof/capprof/bpf"
	"github.com/capprof/capprof/events"
)

// The kernel's rate limit of live check events (record --events-rate-limit)
// holds checks back per exec, capability and verdict; what it held is read
// when the exec ends and written as a summary line like the last event.

type rateKey struct {
	cap    uint8
	denied bool
}

// end closes an exec: the checks its rate limit still holds back are
// written as summary lines, and the process table forgets it later.
func (s *liveStream) end(key bpf.ExecKey, at time.Duration) {
	p, ok := s.procs.get(key)
	if !ok {
		return
	}
	for r, last := range p.rates {
		s.summarize(p, key, r, last, at)
	}
	s.procs.end(key)
}

// endAll ends every exec still running when the recording stops.
func (s *liveStream) endAll() {
	now, _ := bpf.MonotonicNow()
	for key := range s.procs.unended() {
		s.end(key, now)
	}
	if err := s.writer.Flush(); err != nil {
		s.writeFailed(err)
	}
}

// summarize writes what the rate limit still holds back of an ended exec's
// checks of one capability and verdict, as a summary line like the last
// event of theirs.
func (s *liveStream) summarize(p *liveProcess, key bpf.ExecKey, r rateKey, last *events.ProcessKprobe, at time.Duration) {
	n, err := s.probe.TakeSuppressed(key, r.cap, r.denied)
	if err != nil {
		s.runErr = errors.Join(s.runErr, err)
		return
	}
	if n == 0 {
		return
	}
	s.held += n
	k := *last
	k.Process = p.proc
	k.Summary, k.Suppressed, k.Checks = true, n, n
	s.write(&events.Event{ProcessKprobe: &k}, at)
}
