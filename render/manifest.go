package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/manifest"
)

// Comparison writes, per manifest container, what it is granted today,
// what it can drop, what it misses and how the advice changes it.
func Comparison(w io.Writer, c *manifest.Comparison) error {
	line := escapedLines(w)
	line("MANIFEST %s (runtime defaults: %s)", c.Manifest, c.RuntimeDefaults)
	for _, wc := range c.Workloads {
		where := wc.Workload
		if wc.Namespace != "" {
			where = wc.Namespace + "/" + where
		}
		line("%s: pod security level %s today, %s with the advice", where, wc.PodSecurityToday.Level, podSecurityLine(wc.PodSecurityAdvised))
		for _, cc := range wc.Containers {
			line("  %s container %s", cc.Kind, cc.Container)
			granted, canDrop := listOrNone(cc.GrantedToday), listOrNone(cc.CanDrop)
			if len(cc.GrantedToday) == int(v1alpha1.LastCapability)+1 {
				granted = fmt.Sprintf("all %d capabilities", len(cc.GrantedToday))
				canDrop = "all but the required"
			}
			line("    granted today:  %s", granted)
			line("    required:       %s", listOrNone(cc.Required))
			line("    can drop:       %s", canDrop)
			line("    missing:        %s", listOrNone(cc.Missing))
			for i, ch := range cc.Changes {
				label := ""
				if i == 0 {
					label = "changes:"
				}
				line("    %-15s %s: %s -> %s", label, ch.Field, ch.Today, ch.Advised)
			}
		}
	}
	for _, u := range c.Unprofiled {
		line("%s: no profile, left alone", u)
	}
	if len(c.Elsewhere) > 0 {
		line("profiled containers of other workloads: %s", strings.Join(c.Elsewhere, ", "))
	}
	return nil
}

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
