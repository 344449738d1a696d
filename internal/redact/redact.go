// Package redact hides secrets in the command lines capprof records: the
// command of a profile, the arguments of every process in live events.
// A command line often carries one (--db-password=..., a token in a URL),
// and profiles are shared, committed and attached to pull requests.
//
// As in Tetragon's redaction filters, a pattern is an RE2 regular
// expression whose capture groups are replaced by "*****" wherever it
// matches an argument. By default capprof also redacts what obviously is a
// secret: the value of an argument named like one (--password=X,
// --api-key X, DB_TOKEN=X), the password of a URL (scheme://user:X@host)
// and an Authorization header.
package redact

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces what is redacted.
const Mask = "*****"

// secretName is a part of a flag or variable name that says its value is
// a secret.
const secretName = `(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)`

var (
	// defaults are the patterns applied to each argument by default.
	defaults = []*regexp.Regexp{
		// --password=X, -Dapp.db.password=X, DB_TOKEN=X, token:X
		regexp.MustCompile(`(?i)^-{0,2}[\w.-]*` + secretName + `[\w.-]*[=:](.+)$`),
		// scheme://user:X@host
		regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@`),
		// curl -H "Authorization: Bearer X"
		regexp.MustCompile(`(?i)\bauthorization:\s*(.+)$`),
	}
	// secretFlag is a flag whose value is the next argument: --password X.
	secretFlag = regexp.MustCompile(`(?i)^--?[\w.-]*` + secretName + `[\w.-]*$`)
)

// Redactor redacts arguments. The zero value redacts nothing.
type Redactor struct {
	patterns []*regexp.Regexp
	defaults bool
}

// New returns a redactor with the user's patterns (each with at least one
// capture group) and, when defaults is set, capprof's.
func New(patterns []string, withDefaults bool) (*Redactor, error) {
	r := &Redactor{defaults: withDefaults}
	for _, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("--redact %q: %w", p, err)
		}
		if re.NumSubexp() == 0 {
			return nil, fmt.Errorf("--redact %q: the pattern has no capture group: put what to hide in parentheses, e.g. '--key=(\\S+)'", p)
		}
		r.patterns = append(r.patterns, re)
	}
	if withDefaults {
		r.patterns = append(r.patterns, defaults...)
	}
	return r, nil
}

// Args returns args with their secrets masked; args itself is not changed.
func (r *Redactor) Args(args []string) []string {
	if r == nil || len(r.patterns) == 0 {
		return args
	}
	out := slices.Clone(args)
	for i, a := range out {
		if r.defaults && i > 0 && secretFlag.MatchString(args[i-1]) && !strings.HasPrefix(a, "-") {
			out[i] = Mask
			continue
		}
		for _, re := range r.patterns {
			a = mask(re, a)
		}
		out[i] = a
	}
	return out
}

// mask replaces every capture group of every match of re in s.
func mask(re *regexp.Regexp, s string) string {
	matches := re.FindAllStringSubmatchIndex(s, -1)
	if matches == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range matches {
		for g := 2; g+1 < len(m); g += 2 {
			start, end := m[g], m[g+1]
			if start < last || start < 0 {
				continue // an unmatched group, or nested in one already masked
			}
			b.WriteString(s[last:start])
			b.WriteString(Mask)
			last = end
		}
	}
	b.WriteString(s[last:])
	return b.String()
}
