package events

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/capprof/capprof/internal/escape"
)

// Formats are the --events-format values.
var Formats = []string{"json", "compact"}

// Writer writes events, one per line.
type Writer interface {
	Write(*Event) error
	// Flush writes what is buffered.
	Flush() error
}

// NewWriter returns a writer of format (one of Formats) to w.
func NewWriter(format string, w io.Writer) (Writer, error) {
	bw := bufio.NewWriter(w)
	switch format {
	case "json", "":
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		return &jsonWriter{bw: bw, enc: enc}, nil
	case "compact":
		return &compactWriter{bw: bw}, nil
	}
	return nil, fmt.Errorf("unknown format %q: use %s", format, strings.Join(Formats, " or "))
}

type jsonWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

func (w *jsonWriter) Write(e *Event) error { return w.enc.Encode(e) }
func (w *jsonWriter) Flush() error         { return w.bw.Flush() }

type compactWriter struct{ bw *bufio.Writer }

func (w *compactWriter) Write(e *Event) error {
	_, err := w.bw.WriteString(Compact(e) + "\n")
	return err
}

func (w *compactWriter) Flush() error { return w.bw.Flush() }

// Compact renders an event as one line in the style of `tetra getevents -o
// compact`:
//
//	🚀 process default/xwing /bin/sh -c whoami
//	💥 exit    default/xwing /bin/whoami  0
//	🔑 cap     default/xwing /bin/dmesg CAP_SYSLOG denied
//	🔐 creds   default/xwing /bin/su setuid(1000) uid 0→1000 -CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,…(+11)
//	🚀 process default/privileged /bin/sleep 1000000 🛑 CAP_SYS_ADMIN
//
// What the workload names (its binaries, arguments, containers) is escaped
// (escape.Text): a line is one line, with no terminal controls in it.
func Compact(e *Event) string { return escape.Text(compact(e)) }

func compact(e *Event) string {
	proc := e.Process()
	head := func(icon, kind string) string {
		return fmt.Sprintf("%s %-7s %s %s", icon, kind, where(proc), command(proc))
	}
	switch {
	case e.ProcessExec != nil:
		if p := e.ProcessExec.Privileged; len(p) > 0 {
			// Tetragon's layout: the 🚀 stays, so a filter on it still
			// matches every exec, and the reasons follow the 🛑.
			return head("🚀", "process") + " 🛑 " + strings.Join(p, " ")
		}
		return head("🚀", "process")
	case e.ProcessExit != nil:
		status := strconv.Itoa(int(e.ProcessExit.Status))
		if e.ProcessExit.Signal != "" {
			status = e.ProcessExit.Signal
		}
		return head("💥", "exit") + " " + status
	case e.ProcessKprobe != nil && e.ProcessKprobe.Capability != nil:
		k := e.ProcessKprobe
		line := fmt.Sprintf("%s %s %s", head("🔑", "cap"), k.Capability.Name, k.Verdict)
		switch {
		case k.Summary:
			line += fmt.Sprintf(" (%d more suppressed)", k.Suppressed)
		case k.Suppressed > 0:
			line += fmt.Sprintf(" (+%d suppressed)", k.Suppressed)
		}
		return line
	case e.ProcessKprobe != nil:
		k := e.ProcessKprobe
		line := head("🔐", "creds")
		if k.Syscall != nil {
			line += " " + k.Syscall.String()
		}
		if len(k.Args) > 0 && k.Args[0].ProcessCredentialsArg != nil && k.Before != nil {
			line += " " + credentialChange(k.Before, k.Args[0].ProcessCredentialsArg)
		}
		return line
	}
	return "? unknown event"
}

// String is "setuid(1000)".
func (s *Syscall) String() string {
	args := make([]string, len(s.Args))
	for i, a := range s.Args {
		args[i] = strconv.FormatInt(a, 10)
	}
	return s.Name + "(" + strings.Join(args, ", ") + ")"
}

// where is "namespace/pod", or the container's name when recording a command.
func where(p *Process) string {
	switch {
	case p == nil || p.Pod == nil:
		return "?"
	case p.Pod.Name != "":
		return p.Pod.Namespace + "/" + p.Pod.Name
	case p.Pod.Container != nil:
		return p.Pod.Container.Name
	}
	return "?"
}

func command(p *Process) string {
	if p == nil {
		return "?"
	}
	if p.Arguments == "" {
		return p.Binary
	}
	return p.Binary + " " + p.Arguments
}

// credentialChange is "uid 0→1000 gid 0→1000 -CAP_CHOWN,…": ids that
// changed, then effective capabilities gained and lost.
func credentialChange(b, a *Credentials) string {
	var parts []string
	parts = append(parts, idChange("uid", "euid", "suid", "fsuid", [4]uint32{b.UID, b.EUID, b.SUID, b.FSUID}, [4]uint32{a.UID, a.EUID, a.SUID, a.FSUID})...)
	parts = append(parts, idChange("gid", "egid", "sgid", "fsgid", [4]uint32{b.GID, b.EGID, b.SGID, b.FSGID}, [4]uint32{a.GID, a.EGID, a.SGID, a.FSGID})...)
	var before, after []string
	if b.Caps != nil {
		before = b.Caps.Effective
	}
	if a.Caps != nil {
		after = a.Caps.Effective
	}
	if gained := without(after, before); len(gained) > 0 {
		parts = append(parts, "+"+abbreviate(gained))
	}
	if lost := without(before, after); len(lost) > 0 {
		parts = append(parts, "-"+abbreviate(lost))
	}
	if len(parts) == 0 {
		return "(ids and effective capabilities unchanged)"
	}
	return strings.Join(parts, " ")
}

// idChange names the ids that changed: "uid 0→1000" when all four moved
// together, else each one, "euid 0→1000".
func idChange(all, e, s, fs string, b, a [4]uint32) []string {
	if b == a {
		return nil
	}
	if b[0] == b[1] && b[1] == b[2] && b[2] == b[3] && a[0] == a[1] && a[1] == a[2] && a[2] == a[3] {
		return []string{fmt.Sprintf("%s %d→%d", all, b[0], a[0])}
	}
	var out []string
	for i, name := range []string{all, e, s, fs} {
		if b[i] != a[i] {
			out = append(out, fmt.Sprintf("%s %d→%d", name, b[i], a[i]))
		}
	}
	return out
}

// without returns the names in set that other lacks.
func without(set, other []string) []string {
	return slices.DeleteFunc(slices.Clone(set), func(c string) bool { return slices.Contains(other, c) })
}

// abbreviate lists up to three names, then how many more.
func abbreviate(names []string) string {
	const shown = 3
	if len(names) <= shown {
		return strings.Join(names, ",")
	}
	return fmt.Sprintf("%s,…(+%d)", strings.Join(names[:shown], ","), len(names)-shown)
}
