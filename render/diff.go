package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/profile"
)

// DiffFormats are the values of diff -o.
var DiffFormats = []string{"text", "markdown", "json"}

// Diff writes a diff in the named format.
func Diff(w io.Writer, d profile.Diff, format string) error {
	switch format {
	case "text":
		return diffText(w, d)
	case "markdown":
		return diffMarkdown(w, d)
	case "json":
		return writeJSON(w, DiffKind, d)
	}
	return fmt.Errorf("unknown output format %q (valid: %s)", format, strings.Join(DiffFormats, ", "))
}

// diffLines are the changes of one container, as label and value.
func diffLines(c profile.ContainerDiff) [][2]string {
	var lines [][2]string
	add := func(label string, items []string) {
		if len(items) > 0 {
			lines = append(lines, [2]string{label, strings.Join(items, ", ")})
		}
	}
	add("newly required", c.NewlyRequired)
	add("no longer required", c.NoLongerRequired)
	add("new denials", c.NewDenials)
	add("new privilege gains", c.NewPrivilegeGains)
	add("new privileged executables", c.NewPrivilegedExecutables)
	if c.PodSecurity != "" {
		lines = append(lines, [2]string{"pod security level", c.PodSecurity})
	}
	if c.Verification != "" {
		lines = append(lines, [2]string{"verification", c.Verification})
	}
	return lines
}

func diffSummary(d profile.Diff) string {
	if !d.Changed() {
		return fmt.Sprintf("no changes (%s unchanged)", plural(d.Unchanged, "container"))
	}
	s := fmt.Sprintf("%s changed, %d unchanged", plural(len(d.Containers), "container"), d.Unchanged)
	if d.NewCapabilities() {
		s += "; new capabilities required"
	}
	return s
}

func diffText(w io.Writer, d profile.Diff) error {
	line := escapedLines(w)
	line("%s -> %s: %s", d.Base, d.Head, diffSummary(d))
	for _, c := range d.Containers {
		line("%s: %s", c.Container, c.Status)
		for _, l := range diffLines(c) {
			line("  %-27s %s", l[0]+":", l[1])
		}
	}
	return nil
}

// diffMarkdown fits a pull-request comment: a summary line and one table
// row per change. What a profile names (containers, executables, the files'
// names) is shown in code spans, inert: a profile from a pull request
// cannot put links, images or headings into the comment.
func diffMarkdown(w io.Writer, d profile.Diff) error {
	fmt.Fprintf(w, "### capprof: capability changes\n\n%s → %s: **%s**\n", escape.MarkdownCode(d.Base), escape.MarkdownCode(d.Head), diffSummary(d))
	if !d.Changed() {
		return nil
	}
	fmt.Fprintf(w, "\n| Container | Status | Change | Details |\n|---|---|---|---|\n")
	for _, c := range d.Containers {
		lines := diffLines(c)
		if len(lines) == 0 {
			lines = [][2]string{{"", ""}}
		}
		for _, l := range lines {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", escape.MarkdownCell(c.Container), c.Status, l[0], markdownDetails(l[1]))
		}
	}
	return nil
}

// markdownDetails shows a change's details inert, or nothing.
func markdownDetails(s string) string {
	if s == "" {
		return ""
	}
	return escape.MarkdownCell(s)
}
