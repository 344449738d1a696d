package profile

import (
	"cmp"
	"math"
	"slices"

	"github.com/capprof/capprof/api/v1alpha1"
)

// MergeContainers combines entries of the same container (same Key: replicas,
// nodes, runs): counts add up, sets are united, and the result is sorted by
// Key. Merging a single container normalizes it, so the recorder uses it too.
func MergeContainers(containers ...v1alpha1.Container) []v1alpha1.Container {
	byKey := map[v1alpha1.Key][]v1alpha1.Container{}
	var order []v1alpha1.Key
	for _, c := range containers {
		if _, ok := byKey[c.Key()]; !ok {
			order = append(order, c.Key())
		}
		byKey[c.Key()] = append(byKey[c.Key()], c)
	}
	slices.SortFunc(order, compareKeys)
	out := make([]v1alpha1.Container, 0, len(order))
	for _, k := range order {
		entries := byKey[k]
		if len(entries) == 1 && normalized(entries[0]) {
			out = append(out, entries[0])
			continue
		}
		m := newContainerMerger()
		for _, c := range entries {
			m.add(c)
		}
		out = append(out, m.result())
	}
	return out
}

func compareKeys(a, b v1alpha1.Key) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.OwnerKind, b.OwnerKind),
		cmp.Compare(a.OwnerName, b.OwnerName), cmp.Compare(a.Name, b.Name))
}

type checksKey struct {
	Capability    v1alpha1.Capability
	Verdict       v1alpha1.Verdict
	UserNamespace v1alpha1.UserNamespace
}

type sourceKey struct {
	Executable, Syscall string
	Audit               v1alpha1.AuditClass
	AuditFrom           v1alpha1.AuditSource
	Credentials         v1alpha1.CredentialsUsed
	Phase               v1alpha1.Phase
}

type sourceTally struct {
	count, failed, succeeded int64
	callSites                []string // sorted and deduplicated by result
}

type execKey struct {
	Executable, Script   string
	UID, EUID, GID, EGID uint32
	Effective, Permitted v1alpha1.CapSet
	PrivilegeGain        bool
}

type containerMerger struct {
	identity v1alpha1.Identity // Name, Namespace, Owner, Kind of the first entry
	images   map[string]bool
	pods     map[string]bool
	checks   map[checksKey]map[sourceKey]*sourceTally
	execs    map[execKey]*execTally
	changes  map[v1alpha1.CredentialChange]int64 // by the change, its count left zero
	uids     map[uint32]bool
	coverage *v1alpha1.Coverage // nil until an entry has one
	// verification combines the entries' (mergeVerifications).
	verification *v1alpha1.Verification
}

type execTally struct {
	count    int64
	statuses []string // sorted and deduplicated by result
}

func newContainerMerger() *containerMerger {
	return &containerMerger{
		images:  map[string]bool{},
		pods:    map[string]bool{},
		checks:  map[checksKey]map[sourceKey]*sourceTally{},
		execs:   map[execKey]*execTally{},
		changes: map[v1alpha1.CredentialChange]int64{},
		uids:    map[uint32]bool{},
	}
}

func (m *containerMerger) add(c v1alpha1.Container) {
	if m.identity.Name == "" {
		m.identity = v1alpha1.Identity{Name: c.Name, Namespace: c.Namespace, Owner: c.Owner}
	}
	if m.identity.Kind == "" {
		m.identity.Kind = c.Kind
	}
	for _, i := range c.Images {
		m.images[i] = true
	}
	for _, p := range c.Pods {
		m.pods[p] = true
	}
	for _, cc := range c.Capabilities {
		k := checksKey{cc.Capability, cc.Verdict, cc.UserNamespace}
		sources := m.checks[k]
		if sources == nil {
			sources = map[sourceKey]*sourceTally{}
			m.checks[k] = sources
		}
		for _, s := range cc.Sources {
			sk := sourceKey{s.Executable, s.Syscall, s.Audit, s.AuditFrom, s.Credentials, s.Phase}
			t := sources[sk]
			if t == nil {
				t = &sourceTally{}
				sources[sk] = t
			}
			t.count = addCounts(t.count, s.Count)
			t.failed = addCounts(t.failed, s.SyscallFailed)
			t.succeeded = addCounts(t.succeeded, s.SyscallSucceeded)
			t.callSites = append(t.callSites, s.CallSites...)
		}
	}
	for _, e := range c.Execs {
		k := execKey{e.Executable, e.Script, e.UID, e.EUID, e.GID, e.EGID, e.Effective, e.Permitted, e.PrivilegeGain}
		t := m.execs[k]
		if t == nil {
			t = &execTally{}
			m.execs[k] = t
		}
		t.count = addCounts(t.count, e.Count)
		t.statuses = append(t.statuses, e.ExitStatuses...)
	}
	for _, ch := range c.CredentialChanges {
		n := ch.Count
		ch.Count = 0
		m.changes[ch] = addCounts(m.changes[ch], n)
	}
	for _, u := range c.UIDs {
		m.uids[u] = true
	}
	m.verification = mergeVerifications(m.verification, c.Verification)
	if cov := c.Coverage; cov != nil {
		if m.coverage == nil {
			m.coverage = &v1alpha1.Coverage{}
		}
		m.coverage.Instances += cov.Instances
		m.coverage.FromStart += cov.FromStart
		m.coverage.Late = append(m.coverage.Late, cov.Late...)
	}
}

func (m *containerMerger) result() v1alpha1.Container {
	identity := m.identity
	identity.Images, identity.Pods = sortedKeys(m.images), sortedKeys(m.pods)
	c := v1alpha1.Container{
		Identity:          identity,
		Capabilities:      []v1alpha1.CapabilityChecks{},
		Execs:             []v1alpha1.Exec{},
		CredentialChanges: []v1alpha1.CredentialChange{},
		UIDs:              []uint32{},
	}
	for k, sources := range m.checks {
		cc := v1alpha1.CapabilityChecks{Capability: k.Capability, Verdict: k.Verdict, UserNamespace: k.UserNamespace, Sources: []v1alpha1.Source{}}
		for sk, t := range sources {
			cc.Count = addCounts(cc.Count, t.count)
			cc.Sources = append(cc.Sources, v1alpha1.Source{
				Executable: sk.Executable, Syscall: sk.Syscall, CallSites: sortedSet(t.callSites),
				Audit: sk.Audit, AuditFrom: sk.AuditFrom, Credentials: sk.Credentials, Phase: sk.Phase, Count: t.count,
				SyscallFailed: t.failed, SyscallSucceeded: t.succeeded,
			})
		}
		slices.SortFunc(cc.Sources, compareSources)
		c.Capabilities = append(c.Capabilities, cc)
	}
	slices.SortFunc(c.Capabilities, compareChecks)
	for k, t := range m.execs {
		e := v1alpha1.Exec{Executable: k.Executable, Script: k.Script, UID: k.UID, EUID: k.EUID, GID: k.GID, EGID: k.EGID,
			Effective: k.Effective, Permitted: k.Permitted, PrivilegeGain: k.PrivilegeGain, Count: t.count}
		e.ExitStatuses = sortedSet(t.statuses)
		c.Execs = append(c.Execs, e)
	}
	slices.SortFunc(c.Execs, compareExecs)
	for ch, n := range m.changes {
		ch.Count = n
		c.CredentialChanges = append(c.CredentialChanges, ch)
	}
	slices.SortFunc(c.CredentialChanges, compareChanges)
	if m.coverage != nil {
		cov := *m.coverage
		cov.Late = slices.Clone(cov.Late)
		slices.SortFunc(cov.Late, compareLate)
		c.Coverage = &cov
	}
	c.Verification = m.verification
	for u := range m.uids {
		c.UIDs = append(c.UIDs, u)
	}
	slices.Sort(c.UIDs)
	return c
}

// sortedSet sorts names and drops repeats, in place; nil when empty.
func sortedSet(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func compareSources(a, b v1alpha1.Source) int {
	return cmp.Or(cmp.Compare(a.Executable, b.Executable), cmp.Compare(a.Syscall, b.Syscall),
		cmp.Compare(a.Audit, b.Audit), cmp.Compare(a.AuditFrom, b.AuditFrom), cmp.Compare(a.Credentials, b.Credentials), cmp.Compare(a.Phase, b.Phase))
}

func compareChecks(a, b v1alpha1.CapabilityChecks) int {
	return cmp.Or(cmp.Compare(a.Capability, b.Capability), cmp.Compare(a.Verdict, b.Verdict), cmp.Compare(a.UserNamespace, b.UserNamespace))
}

func compareExecs(a, b v1alpha1.Exec) int {
	return cmp.Or(cmp.Compare(a.Executable, b.Executable), cmp.Compare(a.Script, b.Script),
		cmp.Compare(a.UID, b.UID), cmp.Compare(a.EUID, b.EUID), cmp.Compare(a.GID, b.GID), cmp.Compare(a.EGID, b.EGID),
		cmp.Compare(a.Effective, b.Effective), cmp.Compare(a.Permitted, b.Permitted), compareBool(a.PrivilegeGain, b.PrivilegeGain))
}

func compareChanges(a, b v1alpha1.CredentialChange) int {
	return cmp.Or(cmp.Compare(a.Executable, b.Executable), cmp.Compare(a.Syscall, b.Syscall), cmp.Compare(a.Source, b.Source),
		cmp.Compare(a.Phase, b.Phase), compareCredentials(a.Before, b.Before), compareCredentials(a.After, b.After))
}

func compareLate(a, b v1alpha1.LateInstance) int {
	return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.ContainerID, b.ContainerID))
}

// strictlySorted reports whether s is sorted by compare with no two equal:
// what result would make of it.
func strictlySorted[T any](s []T, compare func(a, b T) int) bool {
	for i := 1; i < len(s); i++ {
		if compare(s[i-1], s[i]) >= 0 {
			return false
		}
	}
	return true
}

// normalized reports whether c is already what merging it alone makes
// (a profile capprof saved, read back): every list sorted without repeats,
// every count the sum of its sources'. MergeContainers then keeps it as it
// is, which for a large profile saves most of the merge.
func normalized(c v1alpha1.Container) bool {
	if c.Capabilities == nil || c.Execs == nil || c.CredentialChanges == nil || c.UIDs == nil ||
		!strictlySorted(c.Images, cmp.Compare[string]) || !strictlySorted(c.Pods, cmp.Compare[string]) ||
		!strictlySorted(c.Capabilities, compareChecks) || !strictlySorted(c.Execs, compareExecs) ||
		!strictlySorted(c.CredentialChanges, compareChanges) || !strictlySorted(c.UIDs, cmp.Compare[uint32]) ||
		c.Coverage != nil && !slices.IsSortedFunc(c.Coverage.Late, compareLate) {
		return false
	}
	for _, cc := range c.Capabilities {
		if cc.Sources == nil || !strictlySorted(cc.Sources, compareSources) {
			return false
		}
		var sum int64
		for _, s := range cc.Sources {
			if !strictlySorted(s.CallSites, cmp.Compare[string]) || s.CallSites != nil && len(s.CallSites) == 0 {
				return false
			}
			sum = addCounts(sum, s.Count)
		}
		if sum != cc.Count {
			return false
		}
	}
	for _, e := range c.Execs {
		if !strictlySorted(e.ExitStatuses, cmp.Compare[string]) || e.ExitStatuses != nil && len(e.ExitStatuses) == 0 {
			return false
		}
	}
	return true
}

// addCounts adds two counts (never negative: Validate refuses those),
// saturating: however many profiles are merged, a count never wraps around
// to a small or negative number.
func addCounts(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

func sortedKeys(set map[string]bool) []string {
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

func compareCredentials(a, b v1alpha1.Credentials) int {
	return cmp.Or(cmp.Compare(a.UID, b.UID), cmp.Compare(a.EUID, b.EUID), cmp.Compare(a.SUID, b.SUID), cmp.Compare(a.FSUID, b.FSUID),
		cmp.Compare(a.GID, b.GID), cmp.Compare(a.EGID, b.EGID), cmp.Compare(a.SGID, b.SGID), cmp.Compare(a.FSGID, b.FSGID),
		cmp.Compare(a.Effective, b.Effective), cmp.Compare(a.Permitted, b.Permitted), cmp.Compare(a.Inheritable, b.Inheritable),
		cmp.Compare(a.Bounding, b.Bounding), cmp.Compare(a.Ambient, b.Ambient), cmp.Compare(a.UserNamespaceLevel, b.UserNamespaceLevel))
}
