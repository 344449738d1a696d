package recorder

import (
	"github.com/capprof/capprof/bpf"
)

// dispatcher fans the events of the probe's main ring buffer out, at the
// reader, to what consumes them: the collector, which builds the profile,
// and the live stream (record --events), which gets execs, forks, exits and
// credential changes; its check events come through their own ring buffer
// (liveStream.readLive).
type dispatcher struct {
	col  *collector
	live *liveStream // nil without --events
}

func (d dispatcher) handle(ev bpf.Event) {
	exec, isExec := ev.(*bpf.Exec)
	if isExec && exec.RuntimeInit {
		return // the container runtime executing itself: not the workload's program
	}
	if d.live != nil {
		switch ev.(type) {
		case *bpf.Exec, *bpf.Exit, *bpf.Fork, *bpf.CredChange:
			d.live.send(ev)
		}
	}
	if isExec && exec.Existing {
		return // listed for live events (Probe.ListProcesses), not an exec
	}
	d.col.handle(ev)
}

// consume hands out the events read (a probe's ReadEvent) until the probe
// is flushed; the profile's drops count the ones that could not be decoded.
func (d dispatcher) consume(read func() (bpf.Event, error)) error {
	return readEvents(read, &d.col.undecodable, d.handle)
}
