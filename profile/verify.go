package profile

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/capprof/capprof/api/v1alpha1"
)

// RunDenials are the denied checks that make a run of c fail, and those of
// the capability taken away (if any): the workload's denials in the
// initial user namespace whose syscall failed, and every workload denial
// of taken, whatever its outcome. The bool says whether taken was denied.
func RunDenials(c v1alpha1.Container, taken *v1alpha1.Capability) ([]v1alpha1.DeniedChecks, bool) {
	byCap := map[v1alpha1.Capability][]v1alpha1.CapabilityChecks{}
	for _, cc := range c.Capabilities {
		if cc.Verdict != v1alpha1.Denied || cc.UserNamespace != v1alpha1.InitialNamespace {
			continue
		}
		isTaken := taken != nil && *taken == cc.Capability
		kept := cc
		kept.Sources = slices.DeleteFunc(slices.Clone(cc.Sources), func(s v1alpha1.Source) bool {
			return !isWorkloadCheck(s) || !isTaken && s.Outcome() != v1alpha1.SyscallFailed
		})
		if len(kept.Sources) > 0 {
			byCap[cc.Capability] = append(byCap[cc.Capability], kept)
		}
	}
	var out []v1alpha1.DeniedChecks
	for _, capability := range slices.Sorted(maps.Keys(byCap)) {
		// NotNeeded: evidence keeps every source given.
		out = append(out, v1alpha1.DeniedChecks{Capability: capability, Evidence: evidence(NotNeeded, byCap[capability], nil)})
	}
	return out, taken != nil && len(byCap[*taken]) > 0
}

// Failing reports whether the denials make a run fail: one of them failed
// its syscall.
func Failing(denials []v1alpha1.DeniedChecks) bool {
	for _, d := range denials {
		for _, e := range d.Evidence {
			if e.Outcome == v1alpha1.SyscallFailed {
				return true
			}
		}
	}
	return false
}

// verified is the verification's verdict on capability, and the entry;
// nil when it was not verified (not advised then, or no verification).
func verifiedCapability(v *v1alpha1.Verification, capability v1alpha1.Capability) *v1alpha1.VerifiedCapability {
	if v == nil || v.Advised.Passed == 0 {
		return nil
	}
	for i := range v.Capabilities {
		if v.Capabilities[i].Capability == capability {
			return &v.Capabilities[i]
		}
	}
	return nil
}

// validate checks what a hand-edited profile could get wrong.
func validateVerification(v *v1alpha1.Verification, where string) error {
	if v.RunsPerSet < 1 {
		return fmt.Errorf("%s.runsPerSet: %d, want at least 1", where, v.RunsPerSet)
	}
	if v.Advised.Passed < 0 || v.Advised.Failed < 0 {
		return fmt.Errorf("%s.advised: negative run counts", where)
	}
	for i, vc := range v.Capabilities {
		at := fmt.Sprintf("%s.capabilities[%d]", where, i)
		if err := oneOf(at+".verified", string(vc.Verified), v1alpha1.VerifiedNeeded, v1alpha1.VerifiedRemovable, v1alpha1.VerifiedUndecided); err != nil {
			return err
		}
		if !v.Advised.Capabilities.Has(vc.Capability) {
			return fmt.Errorf("%s: %s was not in the advised set", at, vc.Capability)
		}
		if vc.Passed < 0 || vc.Failed < 0 {
			return fmt.Errorf("%s: negative run counts", at)
		}
	}
	return nil
}

// mergeVerifications combines the verifications of entries of one
// container (replicas, or runs of different tests), cautiously: a
// capability any of them found needed is needed, one none could decide is
// undecided, and only one that every verification that tried it found
// removable is removable. Run counts add up; the command and time are the
// latest's. Verifying a profile again replaces its verification instead.
func mergeVerifications(a, b *v1alpha1.Verification) *v1alpha1.Verification {
	if a == nil || b == nil {
		if a == nil {
			return b
		}
		return a
	}
	if b.Time.After(a.Time.Time) {
		a, b = b, a
	}
	m := *a
	m.RunsPerSet = min(a.RunsPerSet, b.RunsPerSet)
	m.Advised = v1alpha1.VerifiedSet{
		Capabilities: a.Advised.Capabilities | b.Advised.Capabilities,
		NoNewPrivs:   a.Advised.NoNewPrivs && b.Advised.NoNewPrivs,
		Passed:       a.Advised.Passed + b.Advised.Passed,
		Failed:       a.Advised.Failed + b.Advised.Failed,
		FailedRun:    cmp.Or(a.Advised.FailedRun, b.Advised.FailedRun),
	}
	byCap := map[v1alpha1.Capability]v1alpha1.VerifiedCapability{}
	var order []v1alpha1.Capability
	for _, vc := range slices.Concat(a.Capabilities, b.Capabilities) {
		have, ok := byCap[vc.Capability]
		if !ok {
			order = append(order, vc.Capability)
			byCap[vc.Capability] = vc
			continue
		}
		if verdictRank[vc.Verified] > verdictRank[have.Verified] {
			have.Verified, have.FailedRun = vc.Verified, vc.FailedRun
		}
		have.Passed += vc.Passed
		have.Failed += vc.Failed
		byCap[vc.Capability] = have
	}
	m.Capabilities = nil
	for _, c := range order {
		m.Capabilities = append(m.Capabilities, byCap[c])
	}
	return &m
}

// verdictRank orders verdicts by caution: the more cautious wins a merge.
var verdictRank = map[v1alpha1.VerifiedVerdict]int{v1alpha1.VerifiedRemovable: 0, v1alpha1.VerifiedUndecided: 1, v1alpha1.VerifiedNeeded: 2}

// verificationWarnings says what a reviewer must know of a verification:
// the advice failed, the command was flaky, a capability could not be
// decided, or required capabilities came after it and were not verified.
func verificationWarnings(v *v1alpha1.Verification, decisions []CapabilityDecision) []string {
	if v == nil {
		return nil
	}
	runs := v.Advised.Passed + v.Advised.Failed
	if v.Advised.Passed == 0 {
		msg := fmt.Sprintf("verify: the advised capabilities (%s) failed all %d runs, so nothing was verified", v.Advised.Capabilities.KubernetesList(), runs)
		if f := v.Advised.FailedRun; f != nil {
			msg += ": " + f.String()
		}
		return []string{msg}
	}
	var out []string
	if v.Advised.Failed > 0 {
		out = append(out, fmt.Sprintf("verify: the advised capabilities failed %d of %d runs (a flaky command?): %s", v.Advised.Failed, runs, v.Advised.FailedRun))
	}
	for _, vc := range v.Capabilities {
		if vc.Verified == v1alpha1.VerifiedUndecided {
			out = append(out, fmt.Sprintf("verify: %s undecided: all %d runs without it failed, but it was never denied in them; it is kept", vc.Capability, vc.Failed))
		}
	}
	var unverified []string
	for _, d := range decisions {
		if d.Decision == Required && !v.Advised.Capabilities.Has(d.Capability) {
			unverified = append(unverified, d.Capability.String())
		}
	}
	if len(unverified) > 0 {
		out = append(out, fmt.Sprintf("verify: %s required by recordings the verification did not see: not verified; run capprof verify again", strings.Join(unverified, ", ")))
	}
	return out
}

// silentDenials are kernel call sites whose capability check, denied, only
// changes what the syscall does, with no error to the caller: a workload
// may well work without the capability, but only running it can tell.
// Checked against Linux 6.1-6.18 (in_group_or_capable since 6.2; before,
// the same test inline).
var silentDenials = map[v1alpha1.Capability]map[string]string{
	capFsetid: {
		"setattr_prepare":          "fs/attr.c setattr_prepare(): chmod by a caller outside the file's group clears the set-group-ID bit (attr->ia_mode &= ~S_ISGID) and succeeds",
		"setattr_copy":             "fs/attr.c setattr_copy(): the mode is stored without the set-group-ID bit (mode &= ~S_ISGID), no error",
		"setattr_should_drop_sgid": "fs/attr.c setattr_should_drop_sgid(): a write or chown clears the set-group-ID bit (ATTR_KILL_SGID) and succeeds",
		"mode_strip_sgid":          "fs/inode.c mode_strip_sgid(): a file created in a set-group-ID directory is created without the set-group-ID bit",
		"inode_init_owner":         "fs/inode.c inode_init_owner(): a file created in a set-group-ID directory is created without the set-group-ID bit",
		"posix_acl_update_mode":    "fs/posix_acl.c posix_acl_update_mode(): setting an ACL clears the set-group-ID bit and succeeds",
	},
}

// capFsetid is CAP_FSETID.
const capFsetid v1alpha1.Capability = 4

// silentDenial is why a required capability is likely removable: every
// granted workload check of it came from a call site in silentDenials.
// Empty when any did not, or a check's call stack was lost.
func silentDenial(capability v1alpha1.Capability, checks []v1alpha1.CapabilityChecks) string {
	known := silentDenials[capability]
	if known == nil {
		return ""
	}
	var why []string
	for _, cc := range checks {
		for _, s := range cc.Sources {
			if cc.Verdict != v1alpha1.Granted || cc.UserNamespace != v1alpha1.InitialNamespace || !isWorkloadCheck(s) {
				continue
			}
			if len(s.CallSites) == 0 {
				return ""
			}
			for _, site := range s.CallSites {
				note, ok := known[site]
				if !ok {
					return ""
				}
				if !slices.Contains(why, note) {
					why = append(why, note)
				}
			}
		}
	}
	slices.Sort(why)
	return strings.Join(why, "; ")
}

// CommandLine writes a command's arguments as a shell would read them back:
// arguments with spaces or shell syntax in single quotes.
func CommandLine(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			quoted[i] = a
			continue
		}
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

// VerificationSummary says which of the container's capability decisions
// were verified and which rest on observation only: "verified needed:
// NET_BIND_SERVICE; verified removable, left out: FSETID; observed only:
// CHOWN". Empty when no capability is required or was verified.
func (ca ContainerAnalysis) VerificationSummary() string {
	var needed, removable, undecided, observed []string
	for _, d := range ca.Capabilities {
		name := d.Capability.KubernetesName()
		switch {
		case d.Verified == v1alpha1.VerifiedNeeded:
			needed = append(needed, name)
		case d.Verified == v1alpha1.VerifiedRemovable:
			removable = append(removable, name)
		case d.Verified == v1alpha1.VerifiedUndecided:
			undecided = append(undecided, name)
		case d.Decision == Required:
			observed = append(observed, name)
		}
	}
	var parts []string
	for _, p := range []struct {
		label string
		names []string
	}{{"verified needed", needed}, {"verified removable, left out", removable}, {"undecided by verify, kept", undecided}, {"observed only, not verified", observed}} {
		if len(p.names) > 0 {
			parts = append(parts, p.label+": "+strings.Join(p.names, ","))
		}
	}
	return strings.Join(parts, "; ")
}
