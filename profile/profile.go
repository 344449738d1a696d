// Package profile reads, validates, writes, merges and analyzes capprof's
// CapabilityProfiles (capprof.dev/v1alpha1, whose types are package
// v1alpha1's): the decision per capability, the advised securityContext,
// Pod Security, diffs and verification results. It has no eBPF or system
// dependencies.
package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"sigs.k8s.io/yaml"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/internal/escape"
	"github.com/capprof/capprof/internal/outfile"
	"github.com/capprof/capprof/internal/yamlguard"
)

// Load reads a profile from a JSON or (by extension .yaml/.yml) YAML file.
// Every error names the file.
func Load(path string) (*v1alpha1.Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	p, err := Parse(data, isYAML(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func isYAML(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// Parse decodes and validates a profile: a recording's, or a
// CapabilityProfile object as the API holds it (kubectl get
// capabilityprofile NAME -o yaml), alone or as a list of one. Unknown
// fields are errors, so a typo cannot silently drop data.
func Parse(data []byte, isYAML bool) (*v1alpha1.Profile, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty file, not a capprof profile")
	}
	if isYAML {
		if err := yamlguard.Check(data); err != nil {
			return nil, err
		}
		var err error
		if data, err = yaml.YAMLToJSONStrict(data); err != nil {
			return nil, fmt.Errorf("malformed YAML: %s", oneLine(err))
		}
	}
	if !recordingByItsNames(data) {
		// What the document is, from its kind and whether it has a spec; the
		// strict decoding below finds everything else wrong with it.
		var shape struct {
			Kind  string           `json:"kind"`
			Spec  jsontext.Value   `json:"spec"`
			Items []jsontext.Value `json:"items"`
		}
		if err := jsonv2.UnmarshalDecode(jsontext.NewDecoder(bytes.NewReader(data)), &shape); err != nil {
			return nil, decodeError(err, isYAML)
		}
		switch {
		case shape.Kind == "List" || shape.Kind == v1alpha1.Kind+"List":
			if len(shape.Items) != 1 {
				return nil, fmt.Errorf("a %s of %d objects: capprof reads one CapabilityProfile per file (kubectl get capabilityprofile NAME -o yaml)", shape.Kind, len(shape.Items))
			}
			return parseObject(shape.Items[0], isYAML)
		case shape.Spec != nil:
			return parseObject(data, isYAML)
		}
	}
	var p v1alpha1.Profile
	if err := decodeStrict(data, &p, isYAML); err != nil {
		return nil, err
	}
	if err := Validate(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// recordingByItsNames tells a recording's profile by its top-level names
// alone: "containers" before any "spec" or "items" (an object's, a list's).
// It reads only the names and values before that one (apiVersion, kind,
// metadata), so a large recording is not read twice to learn its form.
// Anything else, malformed documents included, goes the longer way, which
// reports their faults.
func recordingByItsNames(data []byte) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return false
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return false
		}
		switch name.String() {
		case "containers":
			return true
		case "spec", "items":
			return false
		}
		if err := dec.SkipValue(); err != nil {
			return false
		}
	}
	return false
}

// parseObject reads a CapabilityProfile object and returns its profile.
func parseObject(data []byte, isYAML bool) (*v1alpha1.Profile, error) {
	var o v1alpha1.CapabilityProfile
	if err := decodeStrict(data, &o, isYAML); err != nil {
		return nil, err
	}
	if o.APIVersion != v1alpha1.APIVersion || o.Kind != v1alpha1.Kind {
		return nil, fmt.Errorf("unsupported object %s of apiVersion %q, want a %s of %q", escape.Name(o.Kind), o.APIVersion, v1alpha1.Kind, v1alpha1.APIVersion)
	}
	p := FromObject(&o)
	if err := Validate(p); err != nil {
		return nil, fmt.Errorf("CapabilityProfile %s/%s: spec.%w", escape.Name(o.Namespace), escape.Name(o.Name), err)
	}
	return p, nil
}

// decodeStrict decodes one JSON document into v, refusing unknown fields
// and trailing data. encoding/json/v2 (the go-json-experiment mirror until
// Go 1.27) decodes a large profile about 2.5 times faster than v1 and, by
// default, refuses what v1 lets through: duplicate names, names differing
// only in case, invalid UTF-8 and trailing data.
func decodeStrict(data []byte, v any, isYAML bool) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	if err := jsonv2.UnmarshalDecode(dec, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return decodeError(err, isYAML)
	}
	if dec.PeekKind() != jsontext.KindInvalid {
		return errors.New("malformed JSON: more than one document")
	}
	return nil
}

// decodeError says what is wrong with a document and where, in one line:
// "malformed JSON: …" for its syntax, "invalid profile: FIELD: …" for
// what it holds.
func decodeError(err error, isYAML bool) error {
	var syntax *jsontext.SyntacticError
	if !isYAML && (errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return fmt.Errorf("malformed JSON: %s", oneLine(err))
	}
	var semantic *jsonv2.SemanticError
	if !errors.As(err, &semantic) {
		return fmt.Errorf("invalid profile: %s", oneLine(err))
	}
	what, where := semantic.Err, semantic.JSONPointer
	switch {
	case errors.Is(what, jsonv2.ErrUnknownName):
		what, where = fmt.Errorf("unknown field %q", where.LastToken()), where.Parent()
	case what == nil:
		what = fmt.Errorf("a JSON %s where %s belongs", semantic.JSONKind, semantic.GoType)
	case errors.Is(what, strconv.ErrSyntax) || errors.Is(what, strconv.ErrRange):
		what = fmt.Errorf("a JSON %s that is no %s (%w)", semantic.JSONKind, semantic.GoType, what)
	}
	if where == "" {
		return fmt.Errorf("invalid profile: %s", oneLine(what))
	}
	return fmt.Errorf("invalid profile: %s: %s", fieldPath(where), oneLine(what))
}

// fieldPath writes a JSON pointer as the field names of Validate's
// errors: /containers/0/capabilities/1/verdict is
// containers[0].capabilities[1].verdict.
func fieldPath(pointer jsontext.Pointer) string {
	var b strings.Builder
	for token := range pointer.Tokens() {
		if _, err := strconv.ParseUint(token, 10, 64); err == nil {
			fmt.Fprintf(&b, "[%s]", token)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(escape.Name(token))
	}
	return b.String()
}

func oneLine(err error) string {
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "json: "), "jsontext: ")
	return strings.Join(strings.Fields(msg), " ")
}

// Validate checks the identity and the enumerated fields.
func Validate(p *v1alpha1.Profile) error {
	if p.APIVersion != v1alpha1.APIVersion {
		return fmt.Errorf("unsupported apiVersion %q, want %q", p.APIVersion, v1alpha1.APIVersion)
	}
	if p.Kind != v1alpha1.Kind {
		return fmt.Errorf("unsupported kind %q, want %q", p.Kind, v1alpha1.Kind)
	}
	if p.Containers == nil {
		return errors.New("containers: missing or null: a profile lists its containers (an empty list when it recorded none)")
	}
	if err := validateDrops(p.Metadata.Drops); err != nil {
		return err
	}
	for i, g := range p.Metadata.Gaps {
		if g.Node == "" || g.To.Before(g.From.Time) {
			return fmt.Errorf("metadata.gaps[%d]: a gap needs a node and must not end before it begins", i)
		}
	}
	seen := map[v1alpha1.Key]bool{}
	for i, c := range p.Containers {
		if c.Name == "" {
			return fmt.Errorf("containers[%d]: name is empty", i)
		}
		if c.Owner != nil && (c.Owner.Kind == "" || c.Owner.Name == "") {
			return fmt.Errorf("containers[%d] (%s): owner needs both kind and name", i, c.Name)
		}
		if c.Kind != "" {
			if err := oneOf(fmt.Sprintf("containers[%d] (%s).kind", i, c.Name), string(c.Kind), v1alpha1.InitContainer, v1alpha1.RegularContainer, v1alpha1.EphemeralContainer); err != nil {
				return err
			}
		}
		if seen[c.Key()] {
			return fmt.Errorf("containers[%d]: duplicate container %q", i, c.Key())
		}
		seen[c.Key()] = true
		if err := validateCounts(i, c); err != nil {
			return err
		}
		for j, cc := range c.Capabilities {
			where := fmt.Sprintf("containers[%d] (%s) capabilities[%d]", i, c.Name, j)
			if err := oneOf(where+".verdict", string(cc.Verdict), v1alpha1.Granted, v1alpha1.Denied); err != nil {
				return err
			}
			if err := oneOf(where+".userNamespace", string(cc.UserNamespace), v1alpha1.InitialNamespace, v1alpha1.NestedNamespace); err != nil {
				return err
			}
			for k, s := range cc.Sources {
				if err := validateSource(s, cc.Verdict); err != nil {
					return fmt.Errorf("%s.sources[%d]%w", where, k, err)
				}
			}
		}
		for j, ch := range c.CredentialChanges {
			where := fmt.Sprintf("containers[%d] (%s) credentialChanges[%d]", i, c.Name, j)
			if err := oneOf(where+".source", string(ch.Source), "", v1alpha1.FromCommitCreds, v1alpha1.FromSyscall); err != nil {
				return err
			}
			if err := oneOf(where+".phase", string(ch.Phase), "", v1alpha1.RuntimeInitPhase); err != nil {
				return err
			}
		}
		if v := c.Verification; v != nil {
			if err := validateVerification(v, fmt.Sprintf("containers[%d] (%s) verification", i, c.Name)); err != nil {
				return err
			}
		}
		if cov := c.Coverage; cov != nil && (cov.Instances < 0 || cov.FromStart < 0 || cov.FromStart+len(cov.Late) != cov.Instances) {
			return fmt.Errorf("containers[%d] (%s) coverage: %d instances, but %d from their start and %d late", i, c.Name, cov.Instances, cov.FromStart, len(cov.Late))
		}
	}
	return nil
}

// validateSource checks a source's values; its error starts with the field
// (".audit: …") for the caller to put the source's place before it. A
// profile has a source per executable and call: nothing is formatted
// unless it is wrong.
func validateSource(s v1alpha1.Source, verdict v1alpha1.Verdict) error {
	if err := oneOf(".audit", string(s.Audit), v1alpha1.Audited, v1alpha1.NoAudit, v1alpha1.InSetID, v1alpha1.UnknownAudit); err != nil {
		return err
	}
	if err := oneOf(".credentials", string(s.Credentials), v1alpha1.OwnCredentials, v1alpha1.OverriddenCredentials, v1alpha1.OtherTaskCredentials); err != nil {
		return err
	}
	if err := oneOf(".auditFrom", string(s.AuditFrom), "", v1alpha1.AuditFromOptions, v1alpha1.AuditFromStack); err != nil {
		return err
	}
	if err := oneOf(".phase", string(s.Phase), v1alpha1.RuntimeInitPhase, v1alpha1.StartupPhase, v1alpha1.SteadyPhase); err != nil {
		return err
	}
	if verdict == v1alpha1.Granted && s.SyscallFailed+s.SyscallSucceeded > 0 {
		return errors.New(": syscall outcomes are only kept for denied checks")
	}
	return nil
}

// MaxCount bounds every count in a profile: 2^53, the largest integer JSON
// readers keep exactly. Merging a thousand profiles stays far from
// overflowing int64; merging saturates beyond.
const MaxCount = int64(1) << 53

// countError says what is wrong with a count: negative, or over MaxCount;
// nil when nothing is. Callers name the field only then, so that a valid
// profile's many counts cost no formatting.
func countError(n int64) error {
	switch {
	case n < 0:
		return fmt.Errorf("%d is negative", n)
	case n > MaxCount:
		return fmt.Errorf("%d is more than 2^53", n)
	}
	return nil
}

// namedCount is a count and its field's name, for countError.
type namedCount struct {
	field string
	n     int64
}

// validateDrops refuses a negative or oversized drop count.
func validateDrops(d v1alpha1.Drops) error {
	for _, c := range [...]namedCount{
		{"events", d.Events}, {"uncountedChecks", d.UncountedChecks}, {"unfollowedCredentialCalls", d.UnfollowedCredentialCalls},
		{"unfollowedDenials", d.UnfollowedDenials}, {"untrackedCgroups", d.UntrackedCgroups},
		{"undecodableEvents", d.UndecodableEvents}, {"execsNotKept", d.ExecsNotKept},
		{"skippedProbeRuns", d.SkippedProbeRuns},
	} {
		if err := countError(c.n); err != nil {
			return fmt.Errorf("metadata.drops.%s: %w", c.field, err)
		}
	}
	return nil
}

// validateCounts refuses what would count a check twice or wrongly: a
// second entry for one capability, verdict and user namespace, a source
// listed twice, a count unlike the sum of its sources', a negative count
// or one over MaxCount.
func validateCounts(i int, c v1alpha1.Container) error {
	entries := map[checksKey]int{}
	for j, cc := range c.Capabilities {
		where := fmt.Sprintf("containers[%d] (%s) capabilities[%d]", i, c.Name, j)
		k := checksKey{cc.Capability, cc.Verdict, cc.UserNamespace}
		if first, dup := entries[k]; dup {
			return fmt.Errorf("%s: a second %s %s entry in the %s user namespace (the first is capabilities[%d]): one entry per capability, verdict and namespace", where, cc.Capability, cc.Verdict, cc.UserNamespace, first)
		}
		entries[k] = j
		if err := countError(cc.Count); err != nil {
			return fmt.Errorf("%s.count: %w", where, err)
		}
		sources := make(map[sourceKey]int, len(cc.Sources))
		var sum int64
		for k, s := range cc.Sources {
			sk := sourceKey{s.Executable, s.Syscall, s.Audit, s.AuditFrom, s.Credentials, s.Phase}
			if first, dup := sources[sk]; dup {
				return fmt.Errorf("%s.sources[%d]: the same source as sources[%d] (%s: %s)", where, k, first, s.Executable, s.Syscall)
			}
			sources[sk] = k
			for _, c := range [...]namedCount{{"count", s.Count}, {"syscallFailed", s.SyscallFailed}, {"syscallSucceeded", s.SyscallSucceeded}} {
				if err := countError(c.n); err != nil {
					return fmt.Errorf("%s.sources[%d].%s: %w", where, k, c.field, err)
				}
			}
			if sum += s.Count; sum > cc.Count {
				break // more than the count already (and, each at most 2^53, no wrap)
			}
		}
		switch {
		case len(cc.Sources) > 0 && sum > cc.Count:
			return fmt.Errorf("%s.count: %d, but its sources count more", where, cc.Count)
		case len(cc.Sources) > 0 && sum != cc.Count:
			return fmt.Errorf("%s.count: %d, but its sources count %d", where, cc.Count, sum)
		}
	}
	for j, e := range c.Execs {
		if err := countError(e.Count); err != nil {
			return fmt.Errorf("containers[%d] (%s) execs[%d].count: %w", i, c.Name, j, err)
		}
	}
	for j, ch := range c.CredentialChanges {
		if err := countError(ch.Count); err != nil {
			return fmt.Errorf("containers[%d] (%s) credentialChanges[%d].count: %w", i, c.Name, j, err)
		}
	}
	return nil
}

func oneOf[T ~string](field, got string, valid ...T) error {
	names := make([]string, len(valid))
	for i, v := range valid {
		if string(v) == got {
			return nil
		}
		names[i] = string(v)
	}
	return fmt.Errorf("%s: invalid value %q (valid: %s)", field, got, strings.Join(names, ", "))
}

// Encode writes the profile as indented JSON, or YAML.
func Encode(w io.Writer, p *v1alpha1.Profile, asYAML bool) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if asYAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
	} else {
		data = append(data, '\n')
	}
	_, err = w.Write(data)
	return err
}

// Save writes the profile to path atomically (outfile): JSON, or YAML when
// path ends in .yaml/.yml.
func Save(p *v1alpha1.Profile, path string) error { return Write(p, "", path, nil) }

// Write is Save for the file a flag names, "-" being stdout.
func Write(p *v1alpha1.Profile, flag, path string, stdout io.Writer) error {
	return outfile.Write(flag, path, stdout, func(w io.Writer) error { return Encode(w, p, isYAML(path)) })
}

// Read decodes and validates a profile from r (standard input): YAML unless
// it starts with "{".
func Read(r io.Reader) (*v1alpha1.Profile, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return Parse(data, !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")))
}
