package profile

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// verifiedContainer needs NET_BIND_SERVICE (bind) and FSETID (chmod, whose
// denial only clears the set-group-ID bit) as observed.
func verifiedContainer(v *Verification) Container {
	granted := func(c Capability, exe, syscall string, sites ...string) CapabilityChecks {
		return CapabilityChecks{Capability: c, Verdict: Granted, UserNamespace: InitialNamespace, Count: 1, Sources: []Source{
			{Executable: exe, Syscall: syscall, CallSites: sites, Audit: Audited, Credentials: OwnCredentials, Phase: StartupPhase, Count: 1}}}
	}
	return Container{Identity: Identity{Name: "web"},
		Capabilities: []CapabilityChecks{
			granted(capFsetid, "/app/setgid", "chmod", "setattr_copy", "setattr_prepare"),
			granted(10, "/app/bind", "bind", "__inet_bind"),
		},
		Execs: []Exec{}, CredentialChanges: []CredentialChange{}, UIDs: []uint32{0}, Verification: v}
}

func verification(at time.Time, fsetid, bind VerifiedVerdict) *Verification {
	v := &Verification{Command: []string{"./test.sh"}, Time: at, RunsPerSet: 2,
		Advised: VerifiedSet{Capabilities: 1<<capFsetid | 1<<10, NoNewPrivs: true, Passed: 2}}
	for _, vc := range []VerifiedCapability{{Capability: capFsetid, Verified: fsetid}, {Capability: 10, Verified: bind}} {
		if vc.Verified == "" {
			continue
		}
		vc.Passed, vc.Failed = 2, 0
		if vc.Verified != VerifiedRemovable {
			vc.Passed, vc.Failed = 0, 2
			vc.FailedRun = &FailedRun{ExitStatus: 1, Denials: []DeniedChecks{{Capability: vc.Capability, Evidence: []Evidence{
				{Executable: "/app/x", Syscall: "bind", CallSites: []string{"__inet_bind"}, Phase: StartupPhase, Count: 1, Outcome: SyscallFailed}}}}}
		}
		v.Capabilities = append(v.Capabilities, vc)
	}
	return v
}

func TestVerifiedAdvice(t *testing.T) {
	now := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	failed := verification(now, VerifiedRemovable, VerifiedNeeded)
	failed.Advised.Passed, failed.Advised.Failed = 0, 2
	failed.Advised.FailedRun = &FailedRun{ExitStatus: 3}
	failed.Capabilities = nil
	flaky := verification(now, VerifiedRemovable, VerifiedNeeded)
	flaky.Advised.Failed, flaky.Advised.FailedRun = 1, &FailedRun{ExitStatus: 1}
	tests := []struct {
		name         string
		v            *Verification
		wantAdd      []string
		wantVerified map[Capability]VerifiedVerdict
		wantLikely   bool // FSETID marked likely removable
		wantWarning  string
	}{
		{"observed only", nil, []string{"FSETID", "NET_BIND_SERVICE"}, map[Capability]VerifiedVerdict{}, true, ""},
		{"removable dropped", verification(now, VerifiedRemovable, VerifiedNeeded), []string{"NET_BIND_SERVICE"},
			map[Capability]VerifiedVerdict{capFsetid: VerifiedRemovable, 10: VerifiedNeeded}, false, ""},
		{"both needed", verification(now, VerifiedNeeded, VerifiedNeeded), []string{"FSETID", "NET_BIND_SERVICE"},
			map[Capability]VerifiedVerdict{capFsetid: VerifiedNeeded, 10: VerifiedNeeded}, false, ""},
		{"undecided kept", verification(now, VerifiedUndecided, VerifiedNeeded), []string{"FSETID", "NET_BIND_SERVICE"},
			map[Capability]VerifiedVerdict{capFsetid: VerifiedUndecided, 10: VerifiedNeeded}, false, "CAP_FSETID undecided"},
		{"advice failed: nothing verified", failed, []string{"FSETID", "NET_BIND_SERVICE"}, map[Capability]VerifiedVerdict{}, true,
			"the advised capabilities (FSETID,NET_BIND_SERVICE) failed all 2 runs, so nothing was verified: exit 3"},
		{"flaky command", flaky, []string{"NET_BIND_SERVICE"}, map[Capability]VerifiedVerdict{capFsetid: VerifiedRemovable, 10: VerifiedNeeded}, false,
			"failed 1 of 3 runs (a flaky command?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := Analyze([]Input{{Source: "p", Profile: &Profile{Containers: []Container{verifiedContainer(tc.v)}}}})
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
	a := Analyze([]Input{{Source: "p", Profile: &Profile{Containers: []Container{c}}}})
	if d := a.Containers[0].Capabilities[0]; d.LikelyRemovable != "" {
		t.Errorf("FSETID from an unknown call site marked likely removable: %q", d.LikelyRemovable)
	}
}

func TestMergeVerificationsCautiously(t *testing.T) {
	early, late := time.Unix(100, 0).UTC(), time.Unix(200, 0).UTC()
	a := verifiedContainer(verification(early, VerifiedNeeded, VerifiedNeeded))
	b := verifiedContainer(verification(late, VerifiedRemovable, VerifiedNeeded))
	b.Pods = []string{"web-2"}
	for _, order := range [][]Container{{a, b}, {b, a}} {
		merged := MergeContainers(order...)
		v := merged[0].Verification
		if v == nil || len(v.Capabilities) != 2 || v.Capabilities[0].Verified != VerifiedNeeded {
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
		edit func(*Verification)
		want string
	}{
		{"no runs", func(v *Verification) { v.RunsPerSet = 0 }, "verification.runsPerSet: 0, want at least 1"},
		{"bad verdict", func(v *Verification) { v.Capabilities[0].Verified = "maybe" }, `verification.capabilities[0].verified: invalid value "maybe"`},
		{"not advised", func(v *Verification) { v.Advised.Capabilities = 1 << 10 }, "verification.capabilities[0]: CAP_FSETID was not in the advised set"},
		{"negative", func(v *Verification) { v.Capabilities[1].Failed = -1 }, "verification.capabilities[1]: negative run counts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := verification(time.Unix(0, 0), VerifiedRemovable, VerifiedNeeded)
			tc.edit(v)
			p := sampleProfile()
			p.Containers = []Container{verifiedContainer(v)}
			if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRunDenials(t *testing.T) {
	denied := func(c Capability, failed, succeeded uint64, audit AuditClass) CapabilityChecks {
		return CapabilityChecks{Capability: c, Verdict: Denied, UserNamespace: InitialNamespace, Count: 1, Sources: []Source{
			{Executable: "/app/x", Syscall: "chmod", CallSites: []string{"setattr_prepare"}, Audit: audit, Credentials: OwnCredentials,
				Phase: SteadyPhase, Count: 1, SyscallFailed: failed, SyscallSucceeded: succeeded}}}
	}
	c := Container{Capabilities: []CapabilityChecks{
		denied(capFsetid, 0, 1, Audited),  // tolerated: counts only when FSETID was taken away
		denied(10, 1, 0, Audited),         // failed: always counts
		denied(21, 1, 0, NoAudit),         // a kernel probe: never counts
		denied(capSetpcap, 0, 0, Audited), // outcome unknown: does not decide
	}}
	fsetid := capFsetid
	tests := []struct {
		name      string
		taken     *Capability
		wantCaps  []Capability
		wantTaken bool
	}{
		{"advised run", nil, []Capability{10}, false},
		{"without FSETID", &fsetid, []Capability{capFsetid, 10}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			denials, taken := RunDenials(c, tc.taken)
			var caps []Capability
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
	if Failing([]DeniedChecks{{Capability: capFsetid, Evidence: []Evidence{{Outcome: SyscallSucceeded}}}}) {
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
