package render

import (
	"bytes"
	"fmt"
	"io"
)

// ProbeStatus is one probe backend on this kernel, as `capprof probes` shows it.
type ProbeStatus struct {
	Backend string
	Hooks   string // what it attaches to
	// Reason says why it does not work here; empty when it does.
	Reason string
}

// Probes prints a table of the backends, then the one auto picks.
func Probes(w io.Writer, kernel string, statuses []ProbeStatus) error {
	var table bytes.Buffer
	t := plainTable(&table)
	t.Header("PROBE", "WORKS", "HOOKS", "WHY NOT")
	auto := ""
	for _, s := range statuses {
		works := "yes"
		if s.Reason != "" {
			works = "no"
		} else if auto == "" {
			auto = s.Backend
		}
		if err := t.Append(s.Backend, works, s.Hooks, s.Reason); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if err := writeTrimmed(w, table.String()); err != nil {
		return err
	}
	if auto == "" {
		auto = "none: capprof cannot record on this kernel"
	}
	_, err := fmt.Fprintf(w, "kernel %s: --probe auto uses %s\n", kernel, auto)
	return err
}
