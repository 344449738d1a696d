package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/capprof/capprof/manifest"
	"github.com/capprof/capprof/profile"
)

// Comparison writes, per manifest container, what it is granted today,
// what it can drop, what it misses and how the advice changes it.
func Comparison(w io.Writer, c *manifest.Comparison) error {
	fmt.Fprintf(w, "MANIFEST %s (runtime defaults: %s)\n", c.Manifest, c.RuntimeDefaults)
	for _, wc := range c.Workloads {
		where := wc.Workload
		if wc.Namespace != "" {
			where = wc.Namespace + "/" + where
		}
		fmt.Fprintf(w, "%s: pod security level %s today, %s with the advice\n", where, wc.PodSecurityToday.Level, podSecurityLine(wc.PodSecurityAdvised))
		for _, cc := range wc.Containers {
			fmt.Fprintf(w, "  %s container %s\n", cc.Kind, cc.Container)
			granted, canDrop := listOrNone(cc.GrantedToday), listOrNone(cc.CanDrop)
			if len(cc.GrantedToday) == int(profile.LastCapability)+1 {
				granted = fmt.Sprintf("all %d capabilities", len(cc.GrantedToday))
				canDrop = "all but the required"
			}
			fmt.Fprintf(w, "    granted today:  %s\n", granted)
			fmt.Fprintf(w, "    required:       %s\n", listOrNone(cc.Required))
			fmt.Fprintf(w, "    can drop:       %s\n", canDrop)
			fmt.Fprintf(w, "    missing:        %s\n", listOrNone(cc.Missing))
			for i, ch := range cc.Changes {
				label := ""
				if i == 0 {
					label = "changes:"
				}
				fmt.Fprintf(w, "    %-15s %s: %s -> %s\n", label, ch.Field, ch.Today, ch.Advised)
			}
		}
	}
	for _, u := range c.Unprofiled {
		fmt.Fprintf(w, "%s: no profile, left alone\n", u)
	}
	if len(c.Elsewhere) > 0 {
		fmt.Fprintf(w, "profiled containers of other workloads: %s\n", strings.Join(c.Elsewhere, ", "))
	}
	return nil
}

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
