package events

import (
	"strings"
	"testing"
)

// FuzzFilter parses any --events-filter terms (one per line) and matches
// the parsed filter against every kind of event: an error or a verdict,
// never a panic.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{"type=cap\nverdict=denied", "pod=default/xwing", "cap=CAP_SYS_ADMIN\naudit=noaudit", "container=app\ntype=exec,type=exit", "=", "type="} {
		f.Add(s)
	}
	evs := []*Event{
		{ProcessExec: &ProcessExec{Process: sh}},
		{ProcessExit: &ProcessExit{Process: dmesg, Status: 1}},
		checkEvent(dmesg, 34, -1, "audited", 0),
		checkEvent(cmd, 7, 0, "insetid", 3),
		{ProcessKprobe: CredentialChange(su, nil, &Syscall{Name: "setuid", Args: []int64{1000}}, credentials(0), credentials(1000))},
	}
	f.Fuzz(func(t *testing.T, terms string) {
		filter, err := ParseFilter(strings.Split(terms, "\n"))
		if err != nil {
			return
		}
		for _, e := range evs {
			filter.Match(e)
		}
	})
}
