// Package render prints an analysis as a table, as securityContext YAML or
// as JSON. It writes only to the io.Writer it is given.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
)

// Formats are the values of analyze -o.
var Formats = []string{"table", "yaml", "json"}

// Analysis writes a in the named format.
func Analysis(w io.Writer, a profile.Analysis, format string) error {
	switch format {
	case "table":
		return Table(w, a)
	case "yaml":
		return YAML(w, a)
	case "json":
		return JSON(w, a)
	}
	return fmt.Errorf("unknown output format %q (valid: %s)", format, strings.Join(Formats, ", "))
}

// Table writes one kubectl-style table per container, then its advice.
func Table(w io.Writer, a profile.Analysis) error {
	line := escapedLines(w)
	for i, c := range a.Containers {
		if i > 0 {
			fmt.Fprintln(w)
		}
		line("CONTAINER %s", containerHeading(c))
		if len(c.Capabilities) == 0 {
			line("no capability checks observed")
		} else {
			var table bytes.Buffer
			t := plainTable(&table)
			t.Header("CAPABILITY", "GRANTED", "DENIED", "DECISION", "VERIFIED", "MADE BY (EXECUTABLE: SYSCALL → KERNEL CALL SITE)", "WHY")
			for _, d := range c.Capabilities {
				if err := t.Append(d.Capability.String(), strconv.FormatInt(d.Granted, 10), strconv.FormatInt(d.Denied, 10),
					string(d.Decision), verifiedCell(d), escape.Text(evidenceCell(d.Evidence)), escape.Text(d.Reason)); err != nil {
					return err
				}
			}
			if err := t.Render(); err != nil {
				return err
			}
			if err := writeTrimmed(w, table.String()); err != nil {
				return err
			}
		}
		line("securityContext: %s", oneLineAdvice(c.SecurityContext))
		line("pod security level: %s", podSecurityLine(c.PodSecurity))
		if c.Coverage != nil {
			line("coverage: %s", coverageLine(c.Coverage))
		}
		if v := c.Verification; v != nil {
			line("verified: %s", verificationLine(v))
		}
		for _, g := range c.PrivilegeGains {
			line("privilege gained at exec by %s: allowPrivilegeEscalation stays true", g)
		}
		for _, warning := range c.Warnings {
			line("warning: %s", warning)
		}
	}
	return nil
}

// verifiedCell says whether a decision was verified: "needed",
// "removable", "undecided"; "no" for a required capability that was only
// observed ("no: likely removable" when its checks are ones whose denial
// returns no error); "-" for the others.
func verifiedCell(d profile.CapabilityDecision) string {
	switch {
	case d.Verified != "":
		return string(d.Verified)
	case d.LikelyRemovable != "":
		return "no: likely removable"
	case d.Decision == profile.Required:
		return "no"
	}
	return "-"
}

// verificationLine summarizes a verification: "./test.sh, 3 runs per set,
// on 2026-12-01 05:00 UTC: the advised set (FSETID,NET_BIND_SERVICE) passed
// 3 of 3; without FSETID passed 3 of 3: removable; …".
func verificationLine(v *v1alpha1.Verification) string {
	var b strings.Builder
	what := profile.CommandLine(v.Command)
	if v.Canaries != "" {
		what = fmt.Sprintf("%s for %s", v.Canaries, time.Duration(v.Window))
	}
	fmt.Fprintf(&b, "%s, %s per set, on %s: the advised set (%s) passed %d of %d",
		what, plural(v.RunsPerSet, "run"), v.Time.UTC().Format("2006-01-02 15:04 MST"),
		v.Advised.Capabilities.KubernetesList(), v.Advised.Passed, v.Advised.Passed+v.Advised.Failed)
	for _, vc := range v.Capabilities {
		fmt.Fprintf(&b, "; without %s passed %d of %d: %s", vc.Capability.KubernetesName(), vc.Passed, vc.Passed+vc.Failed, vc.Verified)
	}
	return b.String()
}

// escapedLines returns a printf that writes one line to w, escaped
// (escape.Text): what it prints names executables, containers and
// workloads, which anyone who can run a workload or write a profile chooses.
func escapedLines(w io.Writer) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintln(w, escape.Text(fmt.Sprintf(format, args...)))
	}
}

// coverageLine is "3 of 3 instances recorded from the first instruction"
// or "1 of 3 instances recorded from the first instruction, 2 joined late".
func coverageLine(cov *v1alpha1.Coverage) string {
	line := fmt.Sprintf("%d of %s recorded from the first instruction", cov.FromStart, plural(cov.Instances, "instance"))
	if n := len(cov.Late); n > 0 {
		line += fmt.Sprintf(", %d joined late", n)
	}
	return line
}

// plainTable is a borderless, left-aligned table with three spaces between
// columns, as kubectl prints them.
func plainTable(w io.Writer) *tablewriter.Table {
	return tablewriter.NewTable(w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders: tw.BorderNone,
			Symbols: tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenColumns: tw.Off, BetweenRows: tw.Off},
				Lines:      tw.Lines{ShowHeaderLine: tw.Off},
			},
		})),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithPadding(tw.Padding{Left: "", Right: "   ", Overwrite: true}),
	)
}

// containerHeading is "main (1 recording)" in command mode and
// "nginx in shop/Deployment/web (regular, image nginx:1.27; 2 pods, 3 recordings)"
// for a pod's container.
func containerHeading(c profile.ContainerAnalysis) string {
	counts := plural(c.Recordings, "recording")
	if c.Owner == nil {
		return fmt.Sprintf("%s (%s)", c.Name, counts)
	}
	var about []string
	if c.Kind != "" {
		about = append(about, string(c.Kind))
	}
	if len(c.Images) > 0 {
		about = append(about, "image "+strings.Join(c.Images, ", "))
	}
	counts = plural(len(c.Pods), "pod") + ", " + counts
	if len(about) > 0 {
		counts = strings.Join(about, ", ") + "; " + counts
	}
	return fmt.Sprintf("%s in %s/%s/%s (%s)", c.Name, c.Namespace, c.Owner.Kind, c.Owner.Name, counts)
}

// writeTrimmed drops the padding tablewriter leaves at the end of lines.
func writeTrimmed(w io.Writer, s string) error {
	for _, line := range strings.SplitAfter(s, "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// evidenceCell lists the two most frequent sources as
// "executable: syscall → call site"; -o json has them all.
func evidenceCell(evidence []v1alpha1.Evidence) string {
	const shown = 2
	var parts []string
	for _, e := range evidence[:min(shown, len(evidence))] {
		part := e.Executable + ": " + e.Syscall
		if len(e.CallSites) > 0 {
			part += " → " + strings.Join(e.CallSites, ",")
		}
		parts = append(parts, part)
	}
	cell := strings.Join(parts, "; ")
	if len(evidence) > shown {
		cell += fmt.Sprintf(" (+%d more)", len(evidence)-shown)
	}
	return cell
}

// oneLineAdvice writes the fields of a securityContext that capprof
// advises on, in one line.
func oneLineAdvice(sc *corev1.SecurityContext) string {
	var parts []string
	if caps := sc.Capabilities; caps != nil {
		parts = append(parts, "drop ["+capList(caps.Drop)+"]", "add ["+capList(caps.Add)+"]")
	}
	if sc.Privileged != nil {
		parts = append(parts, fmt.Sprintf("privileged: %t", *sc.Privileged))
	}
	if sc.AllowPrivilegeEscalation != nil {
		parts = append(parts, fmt.Sprintf("allowPrivilegeEscalation: %t", *sc.AllowPrivilegeEscalation))
	}
	if sc.RunAsNonRoot != nil {
		parts = append(parts, fmt.Sprintf("runAsNonRoot: %t", *sc.RunAsNonRoot))
	}
	if sc.RunAsUser != nil {
		parts = append(parts, fmt.Sprintf("runAsUser: %d", *sc.RunAsUser))
	}
	if sc.SeccompProfile != nil {
		parts = append(parts, "seccompProfile: "+string(sc.SeccompProfile.Type))
	}
	return strings.Join(parts, ", ")
}

func capList(caps []corev1.Capability) string {
	names := make([]string, len(caps))
	for i, c := range caps {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

// podSecurityLine is "restricted", or "baseline (not restricted: ...)".
func podSecurityLine(ps profile.PodSecurity) string {
	if len(ps.Reasons) == 0 {
		return ps.Level
	}
	return ps.Level + " (not restricted: " + strings.Join(ps.Reasons, "; ") + ")"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

type containerContext struct {
	Name            string                  `json:"name"`
	Namespace       string                  `json:"namespace,omitempty"`
	Owner           *v1alpha1.Owner         `json:"owner,omitempty"`
	Kind            v1alpha1.ContainerKind  `json:"kind,omitempty"`
	SecurityContext *corev1.SecurityContext `json:"securityContext"`
}

// YAML writes the advised securityContext of every container, shaped like a
// pod spec's containers list so it can be merged by container name; pods'
// containers also say which namespace and workload they belong to.
func YAML(w io.Writer, a profile.Analysis) error {
	doc := struct {
		Containers []containerContext `json:"containers"`
	}{Containers: []containerContext{}}
	for _, c := range a.Containers {
		// YAML cannot hold control characters: a profile that names a
		// container with one (no Kubernetes name has any) gets it escaped.
		cc := containerContext{escape.Text(c.Name), escape.Text(c.Namespace), c.Owner, c.Kind, c.SecurityContext}
		if c.Owner != nil {
			cc.Owner = &v1alpha1.Owner{Kind: escape.Text(c.Owner.Kind), Name: escape.Text(c.Owner.Name)}
		}
		doc.Containers = append(doc.Containers, cc)
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// The kinds of capprof's machine-readable outputs; their apiVersion is the
// profile's.
const (
	AnalysisKind = "CapabilityAnalysis"
	DiffKind     = "CapabilityDiff"
)

// JSON writes the whole analysis: per container its securityContext and
// every capability's decision.
func JSON(w io.Writer, a profile.Analysis) error { return writeJSON(w, AnalysisKind, a) }

// writeJSON writes v, a struct, as an indented JSON object headed by
// apiVersion and kind, so a reader can tell what it holds and in which
// version.
func writeJSON(w io.Writer, kind string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	head, err := json.Marshal(struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}{v1alpha1.APIVersion, kind})
	if err != nil {
		return err
	}
	doc := head
	if len(body) > 2 { // body is {…}: its members follow the head's
		doc = append(append(head[:len(head)-1], ','), body[1:]...)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, doc, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// Report writes an analysis and, when there is one, its comparison with a
// manifest: after the tables, or inside the JSON document. -o yaml writes
// the advice alone.
func Report(w io.Writer, a profile.Analysis, c *manifest.Comparison, format string) error {
	if c == nil {
		return Analysis(w, a, format)
	}
	switch format {
	case "table":
		if err := Table(w, a); err != nil {
			return err
		}
		fmt.Fprintln(w)
		return Comparison(w, c)
	case "json":
		return writeJSON(w, AnalysisKind, struct {
			profile.Analysis
			Manifest *manifest.Comparison `json:"manifest"`
		}{a, c})
	}
	return Analysis(w, a, format)
}
