package profile

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capprof/capprof/api/v1alpha1"
)

// verifiedContainer needs NET_BIND_SERVICE (bind) and FSETID (chmod, whose
// denial only clears the set-group-ID bit) as observed.
func verifiedContainer(v *v1alpha1.Verification) v1alpha1.Container {
	granted := func(c v1alpha1.Capability, exe, syscall string, sites ...string) v1alpha1.CapabilityChecks {
		return v1alpha1.CapabilityChecks{Capability: c, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 1, Sources: []v1alpha1.Source{
			{Executable: exe, Syscall: syscall, CallSites: sites, Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.StartupPhase, Count: 1}}}
	}
	return v1alpha1.Container{Identity: v1alpha1.Identity{Name: "web"},
		Capabilities: []v1alpha1.CapabilityChecks{
			granted(capFsetid, "/app/setgid", "chmod", "setattr_copy", "setattr_prepare"),
			granted(10, "/app/bind", "bind", "__inet_bind"),
		},
		Execs: []v1alpha1.Exec{}, CredentialChanges: []v1alpha1.CredentialChange{}, UIDs: []uint32{0}, Verification: v}
}

func verification(at time.Time, fsetid, bind v1alpha1.VerifiedVerdict) *v1alpha1.Verification {
	v := &v1alpha1.Verification{Command: []string{"./test.sh"}, Time: v1alpha1.Time{Time: at}, RunsPerSet: 2,
		Advised: v1alpha1.VerifiedSet{Capabilities: 1<<capFsetid | 1<<10, NoNewPrivs: true, Passed: 2}}
	for _, vc := range []v1alpha1.VerifiedCapability{{Capability: capFsetid, Verified: fsetid}, {Capability: 10, Verified: bind}} {
		if vc.Verified == "" {
			continue
		}
		vc.Passed, vc.Failed = 2, 0
		if vc.Verified != v1alpha1.VerifiedRemovable {
			vc.Passed, vc.Failed = 0, 2
			vc.FailedRun = &v1alpha1.FailedRun{ExitStatus: 1, Denials: []v1alpha1.DeniedChecks{{Capability: vc.Capability, Evidence: []v1alpha1.Evidence{
				{Executable: "/app/x", Syscall: "bind", CallSites: []string{"__inet_bind"}, Phase: v1alpha1.StartupPhase, Count: 1, Outcome: v1alpha1.SyscallFailed}}}}}
		}
		v.Capabilities = append(v.Capabilities, vc)
	}
	return v
}

func TestVerifiedAdvice(t *testing.T) {
	now := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	failed := verification(now, v1alpha1.VerifiedRemovable, v1alpha1.VerifiedNeeded)
	failed.Advised.Passed, failed.Advised.Failed = 0, 2
	failed.Advised.FailedRun = &v1alpha1.FailedRun{ExitStatus: 3}
	failed.Capabilities = nil
	flaky := verification(now, v1alpha1.VerifiedRemovable, v1alpha1.VerifiedNeeded)
	flaky.Advised.Failed, flaky.Advised.FailedRun = 1, &v1alpha1.FailedRun{ExitStatus: 1}
	tests := []struct {
		name         string
		v            *v1alpha1.Verification
		wantAdd      []string
		wantVerified map[v1alpha1.Capability]v1alpha1.VerifiedVerdict
		wantLikely   bool // FSETID marked likely removable
		wantWarning  string
	}{
		{"observed only", nil, []string{"FSETID", "NET_BIND_SERVICE"}, map[v1alpha1.Capability]v1alpha1.VerifiedVerdict{}, true, ""},
		{"removable dropped", verification(now, v1alpha1.VerifiedRemovable, v1alpha1.VerifiedNeeded), []string{"NET_BIND_SERVICE"},
			map[v1alpha1.Capability]v1alpha1.VerifiedVerdict{capFsetid: v1alpha1.VerifiedRemovable, 10: v1alpha1.VerifiedNeeded}, false, ""},
		{"both needed", verification(now, v1alpha1.VerifiedNeeded, v1alpha1.VerifiedNeeded), []string{"FSETID", "NET_BIND_SERVICE"},
			map[v1alpha1.Capability]v1alpha1.VerifiedVerdict{capFsetid: v1alpha1.VerifiedNeeded, 10: v1alpha1.VerifiedNeeded}, false, ""},
		{"undecided kept", verification(now, v1alpha1.VerifiedUndecided, v1alpha1.VerifiedNeeded), []string{"FSETID", "NET_BIND_SERVICE"},
			map[v1alpha1.Capability]v1alpha1.VerifiedVerdict{capFsetid: v1alpha1.VerifiedUndecided, 10: v1alpha1.VerifiedNeeded}, false, "CAP_FSETID undecided"},
		{"advice failed: nothing verified", failed, []string{"FSETID", "NET_BIND_SERVICE"}, map[v1alpha1.Capability]v1alpha1.VerifiedVerdict{}, true,
			"the advised capabilities (FSETID,NET_BIND_SERVICE) failed all 2 runs, so nothing was verified: exit 3"},
		{"flaky command", flaky, []string{"NET_BIND_SERVICE"}, map[v1alpha1.Capability]v1alpha1.VerifiedVerdict{capFsetid: v1alpha1.VerifiedRemovable, 10: v1alpha1.VerifiedNeeded}, false,
			"failed 1 of 3 runs (a flaky command?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := Analyze([]Input{{Source: "p", Profile: &v1alpha1.Profile{Containers: []v1alpha1.Container{verifiedContainer(tc.v)}}}})
			ca := a.Containers[0]
			var add []string
			for _, c := range ca.SecurityContext.Capabilities.Add {
				add = append(add, string(c))
			}
			if !slices.Equal(add, tc.wantAdd) {
				t.Errorf("add %v, want %v", add, tc.wantAdd)
			}
			for _, d := range ca.Capabilities {
				if d.Verified != tc.wantVerified[d.Capability] {
					t.Errorf("%s verified %q, want %q", d.Capability, d.Verified, tc.wantVerified[d.Capability])
				}
				if likely := d.LikelyRemovable != ""; d.Capability == capFsetid && likely != tc.wantLikely {
					t.Errorf("FSETID likely removable %v (%q), want %v", likely, d.LikelyRemovable, tc.wantLikely)
				}
				if d.Capability == 10 && d.LikelyRemovable != "" {
					t.Errorf("NET_BIND_SERVICE marked likely removable: %q", d.LikelyRemovable)
				}
			}
			warnings := strings.Join(ca.Warnings, "\n")
			if tc.wantWarning == "" && strings.Contains(warnings, "verify:") || !strings.Contains(warnings, tc.wantWarning) {
				t.Errorf("warnings %q, want %q", warnings, tc.wantWarning)
			}
		})
	}
}

func TestLikelyRemovableNeedsEveryCallSiteKnown(t *testing.T) {
	c := verifiedContainer(nil)
	c.Capabilities[0].Sources[0].CallSites = []string{"setattr_prepare", "chown_common"}
	a := Analyze([]Input{{Source: "p", Profile: &v1alpha1.Profile{Containers: []v1alpha1.Container{c}}}})
	if d := a.Containers[0].Capabilities[0]; d.LikelyRemovable != "" {
		t.Errorf("FSETID from an unknown call site marked likely removable: %q", d.LikelyRemovable)
	}
}

func TestMergeVerificationsCautiously(t *testing.T) {
	early, late := time.Unix(100, 0).UTC(), time.Unix(200, 0).UTC()
	a := verifiedContainer(verification(early, v1alpha1.VerifiedNeeded, v1alpha1.VerifiedNeeded))
	b := verifiedContainer(verification(late, v1alpha1.VerifiedRemovable, v1alpha1.VerifiedNeeded))
	b.Pods = []string{"web-2"}
	for _, order := range [][]v1alpha1.Container{{a, b}, {b, a}} {
		merged := MergeContainers(order...)
		v := merged[0].Verification
		if v == nil || len(v.Capabilities) != 2 || v.Capabilities[0].Verified != v1alpha1.VerifiedNeeded {
			t.Fatalf("merged verification %+v: want FSETID needed (one replica needed it)", v)
		}
		if !v.Time.Equal(late) || v.Advised.Passed != 4 || v.Capabilities[0].Passed != 2 {
			t.Errorf("merged verification %+v: want the latest time and summed runs", v)
		}
	}
}

func TestVerificationValidated(t *testing.T) {
	tests := []struct {
		name string
		edit func(*v1alpha1.Verification)
		want string
	}{
		{"no runs", func(v *v1alpha1.Verification) { v.RunsPerSet = 0 }, "verification.runsPerSet: 0, want at least 1"},
		{"bad verdict", func(v *v1alpha1.Verification) { v.Capabilities[0].Verified = "maybe" }, `verification.capabilities[0].verified: invalid value "maybe"`},
		{"not advised", func(v *v1alpha1.Verification) { v.Advised.Capabilities = 1 << 10 }, "verification.capabilities[0]: CAP_FSETID was not in the advised set"},
		{"negative", func(v *v1alpha1.Verification) { v.Capabilities[1].Failed = -1 }, "verification.capabilities[1]: negative run counts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := verification(time.Unix(0, 0), v1alpha1.VerifiedRemovable, v1alpha1.VerifiedNeeded)
			tc.edit(v)
			p := sampleProfile()
			p.Containers = []v1alpha1.Container{verifiedContainer(v)}
			if err := Validate(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRunDenials(t *testing.T) {
	denied := func(c v1alpha1.Capability, failed, succeeded int64, audit v1alpha1.AuditClass) v1alpha1.CapabilityChecks {
		return v1alpha1.CapabilityChecks{Capability: c, Verdict: v1alpha1.Denied, UserNamespace: v1alpha1.InitialNamespace, Count: 1, Sources: []v1alpha1.Source{
			{Executable: "/app/x", Syscall: "chmod", CallSites: []string{"setattr_prepare"}, Audit: audit, Credentials: v1alpha1.OwnCredentials,
				Phase: v1alpha1.SteadyPhase, Count: 1, SyscallFailed: failed, SyscallSucceeded: succeeded}}}
	}
	c := v1alpha1.Container{Capabilities: []v1alpha1.CapabilityChecks{
		denied(capFsetid, 0, 1, v1alpha1.Audited),  // tolerated: counts only when FSETID was taken away
		denied(10, 1, 0, v1alpha1.Audited),         // failed: always counts
		denied(21, 1, 0, v1alpha1.NoAudit),         // a kernel probe: never counts
		denied(capSetpcap, 0, 0, v1alpha1.Audited), // outcome unknown: does not decide
	}}
	fsetid := capFsetid
	tests := []struct {
		name      string
		taken     *v1alpha1.Capability
		wantCaps  []v1alpha1.Capability
		wantTaken bool
	}{
		{"advised run", nil, []v1alpha1.Capability{10}, false},
		{"without FSETID", &fsetid, []v1alpha1.Capability{capFsetid, 10}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			denials, taken := RunDenials(c, tc.taken)
			var caps []v1alpha1.Capability
			for _, d := range denials {
				caps = append(caps, d.Capability)
			}
			if !slices.Equal(caps, tc.wantCaps) || taken != tc.wantTaken {
				t.Errorf("RunDenials: %v, taken denied %v; want %v, %v", caps, taken, tc.wantCaps, tc.wantTaken)
			}
			if !Failing(denials) {
				t.Error("a denial whose syscall failed does not fail the run")
			}
		})
	}
	if Failing([]v1alpha1.DeniedChecks{{Capability: capFsetid, Evidence: []v1alpha1.Evidence{{Outcome: v1alpha1.SyscallSucceeded}}}}) {
		t.Error("a tolerated denial fails the run")
	}
}

func TestCommandLine(t *testing.T) {
	got := CommandLine([]string{"sh", "-c", "./a && ./b", "it's", "", "--port=80"})
	want := `sh -c './a && ./b' 'it'\''s' '' --port=80`
	if got != want {
		t.Errorf("CommandLine: %s, want %s", got, want)
	}
}
