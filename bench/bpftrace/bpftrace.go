// Package bpftrace runs bpftrace beside the benchmarks: the programs capprof
// is compared with, and a start that returns once bpftrace has attached.
package bpftrace

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// Aggregation is the simplest equivalent of capprof's aggregation: a count
// per cgroup, capability and result.
const Aggregation = `tracepoint:capability:cap_capable { @[cgroup, args->cap, args->ret] = count(); }`

// attachWait is how long bpftrace may take to compile and attach.
const attachWait = time.Minute

// Start starts cmd, a bpftrace command line (perhaps behind taskset), and
// returns once bpftrace says it is attaching its probes. Its stdout (the maps
// it prints when stopped) is discarded; stopping and waiting for it are the
// caller's.
func Start(cmd *exec.Cmd) error {
	w := &attachWatch{attached: make(chan struct{})}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bpftrace: %w", err)
	}
	select {
	case <-w.attached:
		return nil
	case <-time.After(attachWait):
		return fmt.Errorf("bpftrace did not attach within %s; it printed %q", attachWait, w.head())
	}
}

// attachWatch takes bpftrace's stdout and closes attached at its
// "Attaching N probes..." line, keeping the first KiB for errors.
type attachWatch struct {
	mu       sync.Mutex
	first    []byte
	done     bool
	attached chan struct{}
}

func (w *attachWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.first = append(w.first, p[:min(len(p), 1024-len(w.first))]...)
		if bytes.Contains(w.first, []byte("Attaching ")) {
			w.done = true
			close(w.attached)
		}
	}
	return len(p), nil
}

func (w *attachWatch) head() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.first)
}
