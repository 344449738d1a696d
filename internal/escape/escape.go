// Package escape makes text that workloads and profiles name safe to print.
//
// A workload chooses its executables' paths and arguments, and a profile
// can come from anyone's pull request: printed raw, a name could carry
// terminal escape sequences that clear the screen and draw a fake row, a
// carriage return or newline that forges a line, bidirectional controls that
// reorder what a reviewer reads, or markdown that turns a pull-request
// comment into links and images.
package escape

import (
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text escapes s for a terminal or a line-oriented file: every rune that is
// not printable (C0 and C1 controls, DEL, bidirectional and other format
// characters, line and paragraph separators) becomes a Go escape (\n, \x1b,
// \u202e) and a byte that is not UTF-8 becomes \xNN. Printable text, spaces
// and non-ASCII letters included, is unchanged, and so are backslashes:
// names recorded by capprof are already Name's, and escaping their
// backslashes again would double them.
func Text(s string) string { return escapeString(s, mode{}) }

// Name is the form capprof records a name the kernel hands over as bytes
// in (an executable's path, its arguments): Text, with backslashes escaped
// too (\\), so that it is valid UTF-8 for JSON and YAML, printable, and two
// different names never become one (JSON would turn every byte that is not
// UTF-8 into U+FFFD).
func Name(s string) string { return escapeString(s, mode{backslash: true}) }

// mode says what escapeString leaves alone or escapes beyond Text.
type mode struct {
	layout    bool // tabs and newlines pass (capprof's own messages)
	backslash bool // backslashes are escaped (Name)
}

func escapeString(s string, m mode) string {
	var b strings.Builder
	from := 0 // s[from:i] passes as it is and is not in b yet
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		invalid := r == utf8.RuneError && size == 1
		if !invalid && !(r == '\\' && m.backslash) && (unicode.IsPrint(r) || m.layout && (r == '\n' || r == '\t')) {
			i += size
			continue
		}
		b.WriteString(s[from:i])
		switch {
		case invalid:
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			writeRuneEscape(&b, r)
		}
		i += size
		from = i
	}
	if from == 0 {
		return s // nothing escaped
	}
	b.WriteString(s[from:])
	return b.String()
}

const hex = "0123456789abcdef"

// writeRuneEscape writes the escape Go gives a rune that is not printable
// (\a, \x1b, \u202e, \U000e0041), as strconv quotes it.
func writeRuneEscape(b *strings.Builder, r rune) {
	q := strconv.QuoteRune(r)
	b.WriteString(q[1 : len(q)-1])
}

// MarkdownCode renders s as an inline code span that markdown (CommonMark,
// GitHub) shows verbatim: no emphasis, link, image, heading, autolink or
// HTML inside it has any effect. s is first escaped with Text, so it is one
// line; its backticks are fenced by a longer run of them.
func MarkdownCode(s string) string {
	s = Text(s)
	switch {
	case s == "":
		return `""`
	case strings.Trim(s, " ") == "":
		// A span of spaces only would lose them.
		s = strings.ReplaceAll(s, " ", `\x20`)
	}
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") {
		// One space at each end is stripped when both are there.
		s = " " + s + " "
	}
	return fence + s + fence
}

// MarkdownCell is MarkdownCode for a cell of a GitHub table, whose cells
// are split at pipes before anything else: its pipes are escaped.
func MarkdownCell(s string) string {
	return strings.ReplaceAll(MarkdownCode(s), "|", `\|`)
}

// Writer escapes what is written through it as a message: tabs and
// newlines pass, every other control, format character and byte
// that is not UTF-8 is escaped as Text does. capprof's stderr goes through
// one, so that no name in a warning or an error reaches the terminal raw.
// Each Write is escaped on its own: write whole lines.
type Writer struct{ w io.Writer }

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it; it reports len(p) when all of it was written.
func (w *Writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.w, escapeString(string(p), mode{layout: true})); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Raw is the writer underneath: for a workload's own output, which is not
// capprof's to change.
func (w *Writer) Raw() io.Writer { return w.w }
