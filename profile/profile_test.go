package profile

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/capprof/capprof/api/v1alpha1"
)

func sampleProfile() *v1alpha1.Profile {
	return &v1alpha1.Profile{
		APIVersion: v1alpha1.APIVersion,
		Kind:       v1alpha1.Kind,
		Metadata: v1alpha1.Metadata{
			StartTime:      v1alpha1.Time{Time: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)},
			EndTime:        v1alpha1.Time{Time: time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)},
			Node:           "node-1",
			KernelRelease:  "6.18.0",
			Probe:          "tracepoint",
			CapprofVersion: "test",
			Command:        []string{"./server", "--port", "80"},
			Drops:          v1alpha1.Drops{Events: 1},
		},
		Containers: []v1alpha1.Container{{
			Identity: v1alpha1.Identity{Name: "main"},
			Capabilities: []v1alpha1.CapabilityChecks{
				{Capability: 10, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 1, Sources: []v1alpha1.Source{
					{Executable: "/srv/server", Syscall: "bind", CallSites: []string{"__inet_bind"}, Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.StartupPhase, Count: 1},
				}},
				{Capability: 21, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 40, Sources: []v1alpha1.Source{
					{Executable: "/srv/server", Syscall: "mmap", CallSites: []string{"security_vm_enough_memory_mm"}, Audit: v1alpha1.NoAudit, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.StartupPhase, Count: 40},
				}},
				{Capability: 40, Verdict: v1alpha1.Denied, UserNamespace: v1alpha1.NestedNamespace, Count: 2, Sources: []v1alpha1.Source{
					{Executable: "/srv/server", Syscall: "none", Audit: v1alpha1.UnknownAudit, Credentials: v1alpha1.OtherTaskCredentials, Phase: v1alpha1.StartupPhase, Count: 2},
				}},
			},
			Execs: []v1alpha1.Exec{{
				Executable: "/srv/server", UID: 0, EUID: 0, Effective: v1alpha1.AllCapabilities, Permitted: v1alpha1.AllCapabilities,
				Count: 1, ExitStatuses: []string{"0", "SIGTERM"},
			}},
			CredentialChanges: []v1alpha1.CredentialChange{{
				Executable: "/srv/server", Syscall: "setuid",
				Before: v1alpha1.Credentials{Effective: v1alpha1.AllCapabilities, Permitted: v1alpha1.AllCapabilities, Bounding: v1alpha1.AllCapabilities},
				After:  v1alpha1.Credentials{UID: 65534, EUID: 65534, SUID: 65534, FSUID: 65534, Bounding: v1alpha1.AllCapabilities},
				Count:  1,
			}},
			UIDs: []uint32{0, 65534},
		}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"p.json", "p.yaml", "p.yml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			want := sampleProfile()
			if err := Save(want, path); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip through %s changed the profile:\ngot  %+v\nwant %+v", name, got, want)
			}
			data, _ := os.ReadFile(path)
			isJSON := bytes.HasPrefix(data, []byte("{"))
			if isJSON != (name == "p.json") {
				t.Fatalf("%s written in the wrong format:\n%s", name, data)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Fatalf("Save left temporary files: %v", entries)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	valid := func(edit func(string) string) string {
		var buf bytes.Buffer
		if err := Encode(&buf, sampleProfile(), false); err != nil {
			t.Fatal(err)
		}
		return edit(buf.String())
	}
	tests := []struct {
		name, file, content, want string
	}{
		{"empty", "p.json", "  \n", "empty file"},
		{"malformed JSON", "p.json", `{"apiVersion": `, "malformed JSON: unexpected EOF"},
		{"malformed YAML", "p.yaml", "apiVersion: [\n", "malformed YAML"},
		{"two documents", "p.json", `{"apiVersion":"capprof.dev/v1alpha1","kind":"CapabilityProfile"} {}`, "more than one document"},
		{"wrong apiVersion", "p.json", valid(func(s string) string { return strings.Replace(s, v1alpha1.APIVersion, "capprof.dev/v2", 1) }), `unsupported apiVersion "capprof.dev/v2"`},
		{"wrong kind", "p.yaml", "apiVersion: capprof.dev/v1alpha1\nkind: Pod\n", `unsupported kind "Pod"`},
		{"unknown capability", "p.json", valid(func(s string) string { return strings.Replace(s, "CAP_NET_BIND_SERVICE", "CAP_NET_BIND", 1) }), `unknown capability "CAP_NET_BIND" (valid, with or without CAP_: CHOWN, DAC_OVERRIDE`},
		{"unknown field", "p.json", valid(func(s string) string { return strings.Replace(s, `"node"`, `"nodeName"`, 1) }), `unknown field "nodeName"`},
		{"bad audit class", "p.json", valid(func(s string) string { return strings.Replace(s, `"audit": "audited"`, `"audit": "loud"`, 1) }),
			`containers[0] (main) capabilities[0].sources[0].audit: invalid value "loud"`},
		{"field in another case", "p.json", valid(func(s string) string { return strings.Replace(s, `"node"`, `"Node"`, 1) }), `invalid profile: metadata: unknown field "Node"`},
		{"a field twice", "p.json", valid(func(s string) string { return strings.Replace(s, `"node":`, `"node": "a", "node":`, 1) }), `duplicate object member name "node"`},
		{"invalid UTF-8", "p.json", valid(func(s string) string { return strings.Replace(s, `"main"`, "\"ma\xffin\"", 1) }), `invalid UTF-8 within "/containers/0/name"`},
		{"negative count", "p.json", valid(func(s string) string { return strings.Replace(s, `"count": 40`, `"count": -40`, 1) }),
			`containers[0] (main) capabilities[1].count: -40 is negative`},
		{"fractional count", "p.json", valid(func(s string) string { return strings.Replace(s, `"count": 40`, `"count": 4.5`, 1) }),
			`invalid profile: containers[0].capabilities[1].count: a JSON number that is no int64 (invalid syntax)`},
		{"count a string", "p.json", valid(func(s string) string { return strings.Replace(s, `"count": 40`, `"count": "40"`, 1) }),
			`invalid profile: containers[0].capabilities[1].count: a JSON string where int64 belongs`},
		{"bad verdict", "p.json", valid(func(s string) string { return strings.Replace(s, `"granted"`, `"allowed"`, 1) }), `capabilities[0].verdict: invalid value "allowed" (valid: granted, denied)`},
		{"capability not a string", "p.json", valid(func(s string) string { return strings.Replace(s, `"CAP_NET_BIND_SERVICE"`, `10`, 1) }), `capability must be a string`},
		{"coverage that does not add up", "p.json", valid(func(s string) string {
			return strings.Replace(s, `"uids": [`, `"coverage": {"instances": 2, "fromStart": 1}, "uids": [`, 1)
		}), `(main) coverage: 2 instances, but 1 from their start and 0 late`},
		{"capability with a sign", "p.json", valid(func(s string) string { return strings.Replace(s, "CAP_NET_BIND_SERVICE", "CAP_+10", 1) }), `unknown capability "CAP_+10"`},
		{"capability beyond the kernel's", "p.json", valid(func(s string) string { return strings.Replace(s, "CAP_NET_BIND_SERVICE", "CAP_41", 1) }), `unknown capability "CAP_41": the kernel's last is CAP_40 (CAP_CHECKPOINT_RESTORE, Linux 5.9)`},
		{"count unlike its sources'", "p.json", valid(func(s string) string { return strings.Replace(s, `"count": 40`, `"count": 41`, 1) }), `capabilities[1].count: 41, but its sources count 40`},
		{"a capability twice", "p.json", valid(func(s string) string { return strings.Replace(s, "CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE", 1) }),
			`capabilities[1]: a second CAP_NET_BIND_SERVICE granted entry in the initial user namespace (the first is capabilities[0])`},
		{"count beyond 2^53", "p.json", valid(func(s string) string { return strings.ReplaceAll(s, `"count": 40`, `"count": 9007199254740993`) }), `capabilities[1].count: 9007199254740993 is more than 2^53`},
		{"no containers", "p.yaml", "apiVersion: capprof.dev/v1alpha1\nkind: CapabilityProfile\ncontainers: null\n", "containers: missing or null"},
		{"bad change phase", "p.json", valid(func(s string) string {
			return strings.Replace(s, `"syscall": "setuid",`, `"syscall": "setuid", "phase": "steady",`, 1)
		}),
			`credentialChanges[0].phase: invalid value "steady" (valid: , runtime-init)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+": ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line starting with the path and containing %q", msg, tt.want)
			}
		})
	}
}

func TestDuplicateSourceRejected(t *testing.T) {
	p := sampleProfile()
	cc := &p.Containers[0].Capabilities[0]
	cc.Sources = append(cc.Sources, cc.Sources[0])
	cc.Count *= 2
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), "capabilities[0].sources[1]: the same source as sources[0] (/srv/server: bind)") {
		t.Fatalf("Validate = %v", err)
	}
}

// TestMergeSaturates: counts merged from many profiles never wrap around.
func TestMergeSaturates(t *testing.T) {
	a, b := sampleProfile().Containers[0], sampleProfile().Containers[0]
	a.Capabilities[0].Count, a.Capabilities[0].Sources[0].Count = math.MaxInt64-1, math.MaxInt64-1
	merged := MergeContainers(a, b)
	if got := merged[0].Capabilities[0].Count; got != math.MaxInt64 {
		t.Fatalf("merged count %d, want saturated at MaxInt64", got)
	}
}

// TestNegativeCountsRejected: counts are int64, as Kubernetes objects have
// them, and none may be negative.
func TestNegativeCountsRejected(t *testing.T) {
	for _, tc := range []struct {
		set  func(p *v1alpha1.Profile)
		want string
	}{
		{func(p *v1alpha1.Profile) { p.Containers[0].Capabilities[0].Count = -1 }, "containers[0] (main) capabilities[0].count: -1 is negative"},
		{func(p *v1alpha1.Profile) { p.Containers[0].Capabilities[0].Sources[0].SyscallSucceeded = -2 },
			"containers[0] (main) capabilities[0].sources[0].syscallSucceeded: -2 is negative"},
		{func(p *v1alpha1.Profile) { p.Containers[0].Execs[0].Count = -3 }, "containers[0] (main) execs[0].count: -3 is negative"},
		{func(p *v1alpha1.Profile) { p.Metadata.Drops.UntrackedCgroups = -4 }, "metadata.drops.untrackedCgroups: -4 is negative"},
		{func(p *v1alpha1.Profile) { p.Metadata.Drops.Events = MaxCount + 1 }, "metadata.drops.events: 9007199254740993 is more than 2^53"},
	} {
		p := sampleProfile()
		tc.set(p)
		if err := Validate(p); err == nil || err.Error() != tc.want {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
}

func TestDuplicateContainerRejected(t *testing.T) {
	p := sampleProfile()
	p.Containers = append(p.Containers, p.Containers[0])
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), `duplicate container "main"`) {
		t.Fatalf("Validate = %v, want a duplicate container error", err)
	}
	// The same container name in two namespaces is two containers.
	p = sampleProfile()
	shop, web := p.Containers[0], p.Containers[0]
	shop.Namespace, shop.Owner = "shop", &v1alpha1.Owner{Kind: "Deployment", Name: "web"}
	web.Namespace, web.Owner = "default", &v1alpha1.Owner{Kind: "Deployment", Name: "web"}
	p.Containers = []v1alpha1.Container{shop, web}
	if err := Validate(p); err != nil {
		t.Fatalf("Validate of one container name in two namespaces = %v", err)
	}
	p.Containers = append(p.Containers, shop)
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), `duplicate container "shop/Deployment/web/main"`) {
		t.Fatalf("Validate = %v, want a duplicate container error", err)
	}
	p.Containers = []v1alpha1.Container{shop}
	p.Containers[0].Kind = "sidecar"
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), `kind: invalid value "sidecar" (valid: init, regular, ephemeral)`) {
		t.Fatalf("Validate = %v, want an invalid kind error", err)
	}
}

func TestMergeContainers(t *testing.T) {
	a := sampleProfile().Containers[0]
	b := sampleProfile().Containers[0]
	b.Execs[0].ExitStatuses = []string{"1"}
	b.UIDs = []uint32{1000}
	b.Capabilities = append(b.Capabilities, v1alpha1.CapabilityChecks{Capability: 0, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 3,
		Sources: []v1alpha1.Source{{Executable: "/bin/chown", Syscall: "fchownat", Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.StartupPhase, Count: 3}}})
	other := v1alpha1.Container{Identity: v1alpha1.Identity{Name: "sidecar"}}

	got := MergeContainers(other, a, b)
	if len(got) != 2 || got[0].Name != "main" || got[1].Name != "sidecar" {
		t.Fatalf("merged containers %v, want main and sidecar, sorted", got)
	}
	m := got[0]
	if m.Capabilities[0].Capability != 0 || m.Capabilities[0].Count != 3 {
		t.Fatalf("first capability %+v, want CAP_CHOWN with 3 checks (sorted by number)", m.Capabilities[0])
	}
	if m.Capabilities[1].Count != 2 || m.Capabilities[1].Sources[0].Count != 2 {
		t.Fatalf("CAP_NET_BIND_SERVICE %+v, want counts summed to 2", m.Capabilities[1])
	}
	if len(m.Execs) != 1 || m.Execs[0].Count != 2 || !reflect.DeepEqual(m.Execs[0].ExitStatuses, []string{"0", "1", "SIGTERM"}) {
		t.Fatalf("execs %+v, want one exec, count 2, statuses 0,1,SIGTERM", m.Execs)
	}
	if m.CredentialChanges[0].Count != 2 {
		t.Fatalf("credential changes %+v, want count 2", m.CredentialChanges)
	}
	if !reflect.DeepEqual(m.UIDs, []uint32{0, 1000, 65534}) {
		t.Fatalf("uids %v, want [0 1000 65534]", m.UIDs)
	}
	// Merging is order-independent.
	if again := MergeContainers(b, a, other); !reflect.DeepEqual(again, got) {
		t.Fatalf("merge depends on order:\n%+v\n%+v", again, got)
	}
}

func TestMergeByIdentity(t *testing.T) {
	web := func(ns, pod, image string, kind v1alpha1.ContainerKind) v1alpha1.Container {
		c := sampleProfile().Containers[0]
		c.Name, c.Namespace, c.Owner, c.Kind = "nginx", ns, &v1alpha1.Owner{Kind: "Deployment", Name: "web"}, kind
		c.Pods, c.Images = []string{pod}, []string{image}
		return c
	}
	got := MergeContainers(
		web("shop", "web-1", "nginx:1.27", v1alpha1.RegularContainer),
		web("shop", "web-2", "nginx:1.28", ""),
		web("default", "web-3", "nginx:1.27", v1alpha1.RegularContainer),
	)
	if len(got) != 2 {
		t.Fatalf("%d containers, want 2: one per namespace", len(got))
	}
	if k := got[0].Key(); k != (v1alpha1.Key{Namespace: "default", OwnerKind: "Deployment", OwnerName: "web", Name: "nginx"}) {
		t.Fatalf("first key %v, want default's (sorted by namespace)", k)
	}
	shop := got[1]
	if !reflect.DeepEqual(shop.Pods, []string{"web-1", "web-2"}) || !reflect.DeepEqual(shop.Images, []string{"nginx:1.27", "nginx:1.28"}) {
		t.Fatalf("shop's pods %v images %v, want both replicas' united", shop.Pods, shop.Images)
	}
	if shop.Kind != v1alpha1.RegularContainer || shop.Capabilities[0].Count != 2 {
		t.Fatalf("shop kind %q, first count %d; want regular and the replicas' counts summed", shop.Kind, shop.Capabilities[0].Count)
	}
	a := Analyze([]Input{{"n1.json", &v1alpha1.Profile{Containers: got[:1]}}, {"n2.json", &v1alpha1.Profile{Containers: got[1:]}}, {"n3.json", &v1alpha1.Profile{Containers: got[1:]}}})
	if a.Containers[1].Recordings != 2 || a.Containers[0].Recordings != 1 || len(a.Containers[1].Pods) != 2 {
		t.Fatalf("analysis %+v, want shop from 2 recordings with 2 pods and default from 1", a.Containers)
	}
}

func TestDecide(t *testing.T) {
	src := func(audit v1alpha1.AuditClass, creds v1alpha1.CredentialsUsed) []v1alpha1.Source {
		return []v1alpha1.Source{{Executable: "/x", Syscall: "s", Audit: audit, Credentials: creds, Phase: v1alpha1.StartupPhase, Count: 1}}
	}
	outcome := func(failed, succeeded int64) []v1alpha1.Source {
		s := src(v1alpha1.Audited, v1alpha1.OwnCredentials)
		s[0].SyscallFailed, s[0].SyscallSucceeded = failed, succeeded
		return s
	}
	phase := func(p v1alpha1.Phase) []v1alpha1.Source {
		s := src(v1alpha1.Audited, v1alpha1.OwnCredentials)
		s[0].Phase = p
		return s
	}
	checks := func(v v1alpha1.Verdict, ns v1alpha1.UserNamespace, s []v1alpha1.Source) v1alpha1.CapabilityChecks {
		return v1alpha1.CapabilityChecks{Capability: 1, Verdict: v, UserNamespace: ns, Count: 1, Sources: s}
	}
	// setpcap is a granted SETPCAP check from these kernel call sites.
	setpcap := func(sites ...string) v1alpha1.CapabilityChecks {
		s := src(v1alpha1.Audited, v1alpha1.OwnCredentials)
		s[0].CallSites = sites
		return v1alpha1.CapabilityChecks{Capability: capSetpcap, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 1, Sources: s}
	}
	tests := []struct {
		name    string
		checks  []v1alpha1.CapabilityChecks
		changes []v1alpha1.CredentialChange
		want    Decision
		reason  string
	}{
		{"audited grant", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, src(v1alpha1.Audited, v1alpha1.OwnCredentials))}, nil, Required, "granted in the initial user namespace"},
		{"setid grant", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, src(v1alpha1.InSetID, v1alpha1.OwnCredentials))}, nil, Required, "granted in the initial user namespace"},
		{"stack lost", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, src(v1alpha1.UnknownAudit, v1alpha1.OwnCredentials))}, nil, Required, "call stack lost"},
		{"noaudit only", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, src(v1alpha1.NoAudit, v1alpha1.OwnCredentials))}, nil, NotNeeded, "only noaudit kernel probes"},
		{"nested namespace", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.NestedNamespace, src(v1alpha1.Audited, v1alpha1.OwnCredentials))}, nil, NotNeeded, "nested user namespace"},
		{"kernel override", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, src(v1alpha1.Audited, v1alpha1.OverriddenCredentials))}, nil, NotNeeded, "kernel-overridden"},
		{"other task", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, src(v1alpha1.Audited, v1alpha1.OtherTaskCredentials))}, nil, NotNeeded, "another task's"},
		{"denied, outcome unknown", []v1alpha1.CapabilityChecks{checks(v1alpha1.Denied, v1alpha1.InitialNamespace, src(v1alpha1.Audited, v1alpha1.OwnCredentials))}, nil, DeniedDecision, "outcome not seen"},
		{"denied, syscall failed", []v1alpha1.CapabilityChecks{checks(v1alpha1.Denied, v1alpha1.InitialNamespace, outcome(1, 3))}, nil, DeniedDecision, "syscall failed"},
		{"denied, tolerated", []v1alpha1.CapabilityChecks{checks(v1alpha1.Denied, v1alpha1.InitialNamespace, outcome(0, 3))}, nil, NotNeeded, "only denials the workload tolerated"},
		{"tolerated and failed", []v1alpha1.CapabilityChecks{checks(v1alpha1.Denied, v1alpha1.InitialNamespace, append(outcome(0, 3), outcome(2, 0)...))}, nil, DeniedDecision, "syscall failed"},
		{"runtime init", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, phase(v1alpha1.RuntimeInitPhase))}, nil, NotNeeded, "container runtime"},
		{"startup only", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, phase(v1alpha1.StartupPhase))}, nil, Required, "only during startup"},
		{"steady", []v1alpha1.CapabilityChecks{checks(v1alpha1.Granted, v1alpha1.InitialNamespace, append(phase(v1alpha1.StartupPhase), phase(v1alpha1.SteadyPhase)...))}, nil, Required, "namespace"},
		{"denied noaudit", []v1alpha1.CapabilityChecks{checks(v1alpha1.Denied, v1alpha1.InitialNamespace, src(v1alpha1.NoAudit, v1alpha1.OwnCredentials))}, nil, NotNeeded, "noaudit"},
		{"denied then granted", []v1alpha1.CapabilityChecks{
			checks(v1alpha1.Denied, v1alpha1.InitialNamespace, src(v1alpha1.Audited, v1alpha1.OwnCredentials)),
			checks(v1alpha1.Granted, v1alpha1.InitialNamespace, src(v1alpha1.Audited, v1alpha1.OwnCredentials)),
		}, nil, Required, "granted"},
		{"capset shortcut", []v1alpha1.CapabilityChecks{setpcap("cap_capset")}, nil, NotNeeded, "capset's shortcut"},
		{"capset raising inheritable", []v1alpha1.CapabilityChecks{setpcap("cap_capset")},
			[]v1alpha1.CredentialChange{{Syscall: "capset", Before: v1alpha1.Credentials{Permitted: 1}, After: v1alpha1.Credentials{Permitted: 1, Inheritable: 3}}}, Required, "granted"},
		{"capset dropping", []v1alpha1.CapabilityChecks{setpcap("cap_capset")},
			[]v1alpha1.CredentialChange{{Syscall: "capset", Before: v1alpha1.Credentials{Permitted: 3}, After: v1alpha1.Credentials{Permitted: 1}}}, NotNeeded, "capset's shortcut"},
		{"SETPCAP from prctl", []v1alpha1.CapabilityChecks{setpcap("cap_capset", "cap_prctl_drop")}, nil, Required, "granted"},
		{"noaudit and nested", []v1alpha1.CapabilityChecks{
			checks(v1alpha1.Granted, v1alpha1.InitialNamespace, src(v1alpha1.NoAudit, v1alpha1.OwnCredentials)),
			checks(v1alpha1.Granted, v1alpha1.NestedNamespace, src(v1alpha1.Audited, v1alpha1.OwnCredentials)),
		}, nil, NotNeeded, "only noaudit kernel probes and checks in a nested user namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := Decide(tt.checks, tt.changes)
			if tt.reason == "namespace" && strings.Contains(reason, "startup") {
				t.Fatalf("Decide reason %q: a steady-state grant is not startup-only", reason)
			}
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Fatalf("Decide = %q (%s), want %q (…%s…)", got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestAnalyze(t *testing.T) {
	gain := sampleProfile()
	gain.Metadata.Drops = v1alpha1.Drops{}
	gain.Containers[0].Execs = append(gain.Containers[0].Execs, v1alpha1.Exec{Executable: "/usr/bin/su", UID: 1000, EUID: 0, PrivilegeGain: true, Count: 1})
	a := Analyze([]Input{{"one.json", sampleProfile()}, {"two.json", gain}})

	if len(a.Warnings) != 1 || !strings.HasPrefix(a.Warnings[0], "one.json: the kernel dropped 1 events") {
		t.Fatalf("warnings %q, want one about one.json's drops", a.Warnings)
	}
	if len(a.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(a.Containers))
	}
	c := a.Containers[0]
	if c.Recordings != 2 {
		t.Fatalf("recordings %d, want 2", c.Recordings)
	}
	sc := c.SecurityContext
	if !reflect.DeepEqual(sc.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE"}) || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Fatalf("capabilities %+v, want add NET_BIND_SERVICE, drop ALL", sc.Capabilities)
	}
	if !*sc.AllowPrivilegeEscalation || !reflect.DeepEqual(c.PrivilegeGains, []string{"/usr/bin/su"}) {
		t.Fatalf("allowPrivilegeEscalation %v, gains %v; want true because of /usr/bin/su", *sc.AllowPrivilegeEscalation, c.PrivilegeGains)
	}
	rows := map[v1alpha1.Capability]CapabilityDecision{}
	for _, r := range c.Capabilities {
		rows[r.Capability] = r
	}
	if r := rows[21]; r.Decision != NotNeeded || r.Granted != 80 {
		t.Fatalf("CAP_SYS_ADMIN row %+v, want not needed with 80 granted checks", r)
	}
	if r := rows[40]; r.Decision != NotNeeded || r.Denied != 4 {
		t.Fatalf("CAP_CHECKPOINT_RESTORE row %+v, want not needed with 4 denied checks", r)
	}

	none := Analyze([]Input{{"one.json", gain}})
	if *none.Containers[0].SecurityContext.AllowPrivilegeEscalation != true {
		t.Fatal("privilege gain must keep allowPrivilegeEscalation")
	}
	plain := Analyze([]Input{{"one.json", sampleProfile()}})
	if *plain.Containers[0].SecurityContext.AllowPrivilegeEscalation {
		t.Fatal("allowPrivilegeEscalation must be false without a privilege gain")
	}
}

// TestAdvice covers the securityContext fields beyond capabilities and the
// reviewer's warnings, one container shape per case.
func TestAdvice(t *testing.T) {
	bind := v1alpha1.CapabilityChecks{Capability: 10, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace, Count: 1, Sources: []v1alpha1.Source{
		{Executable: "/app/server", Syscall: "bind", Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.StartupPhase, Count: 1}}}
	nonRootExec := v1alpha1.Exec{Executable: "/app/server", UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, Count: 1}
	manyBind := v1alpha1.CapabilityChecks{Capability: 10, Verdict: v1alpha1.Granted, UserNamespace: v1alpha1.InitialNamespace}
	var manyExecs []v1alpha1.Exec
	for i := range 5 {
		exe := fmt.Sprintf("/app/w%d", i)
		manyBind.Sources = append(manyBind.Sources, v1alpha1.Source{Executable: exe, Syscall: "bind", Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.SteadyPhase, Count: 1})
		manyBind.Count++
		manyExecs = append(manyExecs, v1alpha1.Exec{Executable: exe, UID: 1000, EUID: 1000, Count: 1})
	}
	fileCapChange := v1alpha1.CredentialChange{Executable: "/usr/bin/ping", Syscall: "execve", Count: 1,
		Before: v1alpha1.Credentials{UID: 1000, EUID: 1000},
		After:  v1alpha1.Credentials{UID: 1000, EUID: 1000, Permitted: 1 << 13, Effective: 1 << 13}}
	tests := []struct {
		name       string
		container  v1alpha1.Container
		command    []string
		duration   time.Duration
		nonRoot    bool
		runAsUser  *int64
		add        []corev1.Capability
		level      string
		warnings   []string
		noWarnings bool
	}{
		{name: "root", container: v1alpha1.Container{UIDs: []uint32{0, 33}, Capabilities: []v1alpha1.CapabilityChecks{bind}}, command: []string{"x"},
			add: []corev1.Capability{"NET_BIND_SERVICE"}, level: Baseline, noWarnings: true},
		{name: "one non-root uid", container: v1alpha1.Container{UIDs: []uint32{1000}, Execs: []v1alpha1.Exec{{Executable: "/app/server", EUID: 1000, Permitted: 1 << 10}}, Capabilities: []v1alpha1.CapabilityChecks{bind}},
			command: []string{"x"}, nonRoot: true, runAsUser: new(int64(1000)), add: []corev1.Capability{"NET_BIND_SERVICE"}, level: Restricted, noWarnings: true},
		{name: "two non-root uids", container: v1alpha1.Container{UIDs: []uint32{1000, 1001}}, command: []string{"x"}, nonRoot: true, level: Restricted, noWarnings: true},
		{name: "never observed", command: []string{"x"}, level: Baseline, warnings: []string{"no process of this container was observed"}},
		{name: "non-root needs a capability", container: v1alpha1.Container{UIDs: []uint32{1000}, Execs: []v1alpha1.Exec{nonRootExec}, Capabilities: []v1alpha1.CapabilityChecks{bind}},
			command: []string{"x"}, nonRoot: true, runAsUser: new(int64(1000)), add: []corev1.Capability{"NET_BIND_SERVICE"}, level: Restricted,
			warnings: []string{"/app/server ran as uid 1000 when it asked for CAP_NET_BIND_SERVICE, but Kubernetes gives non-root processes no ambient capabilities", "setcap cap_net_bind_service+ep /app/server"}},
		{name: "many non-root executables need a capability: one warning", container: v1alpha1.Container{UIDs: []uint32{1000}, Execs: manyExecs, Capabilities: []v1alpha1.CapabilityChecks{manyBind}},
			command: []string{"x"}, nonRoot: true, runAsUser: new(int64(1000)), add: []corev1.Capability{"NET_BIND_SERVICE"}, level: Restricted,
			warnings: []string{"5 executables ran as non-root uids when they asked for CAP_NET_BIND_SERVICE (/app/w0 as uid 1000, /app/w1 as uid 1000, /app/w2 as uid 1000 and 2 more)", "set it on each file (setcap cap_net_bind_service+ep FILE)"}},
		{name: "file capabilities", container: v1alpha1.Container{UIDs: []uint32{1000}, CredentialChanges: []v1alpha1.CredentialChange{fileCapChange},
			Execs: []v1alpha1.Exec{{Executable: "/usr/bin/ping", UID: 1000, EUID: 1000, Permitted: 1 << 13, Effective: 1 << 13, PrivilegeGain: true}}},
			command: []string{"x"}, nonRoot: true, runAsUser: new(int64(1000)), add: []corev1.Capability{"NET_RAW"}, level: Privileged,
			warnings: []string{"/usr/bin/ping gains NET_RAW from its file capabilities at exec; they stay in add, because the kernel refuses the exec (EPERM)"}},
		{name: "short pod recording", container: v1alpha1.Container{UIDs: []uint32{1000}, Execs: []v1alpha1.Exec{nonRootExec}}, duration: 3 * time.Second,
			nonRoot: true, runAsUser: new(int64(1000)), level: Restricted,
			warnings: []string{"p.json recorded for 3s, less than its 10s startup window: steady-state behaviour was not seen; record longer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.container.Name = "c"
			start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
			p := &v1alpha1.Profile{Metadata: v1alpha1.Metadata{Command: tt.command, StartTime: v1alpha1.Time{Time: start}, EndTime: v1alpha1.Time{Time: start.Add(tt.duration)}, StartupWindow: v1alpha1.Duration(10 * time.Second)},
				Containers: []v1alpha1.Container{tt.container}}
			c := Analyze([]Input{{"p.json", p}}).Containers[0]
			sc := c.SecurityContext
			if *sc.Privileged || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("securityContext %+v: want privileged false, RuntimeDefault seccomp, drop ALL", sc)
			}
			if (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) != tt.nonRoot || !reflect.DeepEqual(sc.RunAsUser, tt.runAsUser) {
				t.Errorf("runAsNonRoot %v, runAsUser %v; want %v, %v", sc.RunAsNonRoot, sc.RunAsUser, tt.nonRoot, tt.runAsUser)
			}
			if !reflect.DeepEqual(sc.Capabilities.Add, tt.add) {
				t.Errorf("add %v, want %v", sc.Capabilities.Add, tt.add)
			}
			if c.PodSecurity.Level != tt.level {
				t.Errorf("pod security %+v, want %s", c.PodSecurity, tt.level)
			}
			all := strings.Join(c.Warnings, "\n")
			if tt.noWarnings && len(c.Warnings) > 0 {
				t.Errorf("warnings %q, want none", c.Warnings)
			}
			for _, w := range tt.warnings {
				if !strings.Contains(all, w) {
					t.Errorf("warnings %q lack %q", c.Warnings, w)
				}
			}
		})
	}
}

// TestCoverage: instances add up over merges, late ones are kept with their
// pods; analysis warns about them, and about nothing for profiles of
// versions that did not record coverage.
func TestCoverage(t *testing.T) {
	after := func(d time.Duration) *v1alpha1.Duration { v := v1alpha1.Duration(d); return &v }
	tests := []struct {
		name     string
		coverage []*v1alpha1.Coverage
		want     *v1alpha1.Coverage
		warning  string
	}{
		{"all from their start", []*v1alpha1.Coverage{{Instances: 1, FromStart: 1}, {Instances: 2, FromStart: 2}}, &v1alpha1.Coverage{Instances: 3, FromStart: 3}, ""},
		{"one late", []*v1alpha1.Coverage{{Instances: 1, FromStart: 1}, {Instances: 1, Late: []v1alpha1.LateInstance{{Pod: "web-2", ContainerID: "abc", JoinedAfter: after(90 * time.Second)}}}},
			&v1alpha1.Coverage{Instances: 2, FromStart: 1, Late: []v1alpha1.LateInstance{{Pod: "web-2", ContainerID: "abc", JoinedAfter: after(90 * time.Second)}}},
			"startup not observed for 1 of 2 instances (pod web-2 joined 1m30s after its start)"},
		{"late, start unknown, no pod", []*v1alpha1.Coverage{{Instances: 1, Late: []v1alpha1.LateInstance{{ContainerID: "0123456789abcdef"}}}},
			&v1alpha1.Coverage{Instances: 1, Late: []v1alpha1.LateInstance{{ContainerID: "0123456789abcdef"}}},
			"startup not observed for 1 of 1 instance (container 0123456789ab)"},
		{"many late", []*v1alpha1.Coverage{{Instances: 4, Late: []v1alpha1.LateInstance{{Pod: "d"}, {Pod: "b"}, {Pod: "a"}, {Pod: "c"}}}},
			&v1alpha1.Coverage{Instances: 4, Late: []v1alpha1.LateInstance{{Pod: "a"}, {Pod: "b"}, {Pod: "c"}, {Pod: "d"}}},
			"startup not observed for 4 of 4 instances (pod a, pod b, pod c, 1 more)"},
		{"not recorded by this version", []*v1alpha1.Coverage{nil}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var parts []v1alpha1.Container
			for _, cov := range tt.coverage {
				c := sampleProfile().Containers[0]
				c.Coverage = cov
				parts = append(parts, c)
			}
			got := MergeContainers(parts...)[0]
			if !reflect.DeepEqual(got.Coverage, tt.want) {
				t.Fatalf("coverage %+v, want %+v", got.Coverage, tt.want)
			}
			a := Analyze([]Input{{"p.json", &v1alpha1.Profile{Containers: []v1alpha1.Container{got}}}})
			warned := ""
			for _, w := range a.Containers[0].Warnings {
				if strings.HasPrefix(w, "startup not observed") {
					warned = w
				}
			}
			if (tt.warning == "") != (warned == "") || !strings.Contains(warned, tt.warning) {
				t.Fatalf("warning %q, want %q", warned, tt.warning)
			}
		})
	}
}

// TestRuntimeCredentialChangesLeftOut: the container runtime's own
// credential changes (phase runtime-init) are kept in the profile but the
// analysis ignores them: a file-capability exec of the runtime's says
// nothing of the workload.
func TestRuntimeCredentialChangesLeftOut(t *testing.T) {
	c := sampleProfile().Containers[0]
	gain := v1alpha1.CredentialChange{Executable: "/usr/bin/ping", Syscall: "execve",
		Before: v1alpha1.Credentials{}, After: v1alpha1.Credentials{Permitted: v1alpha1.CapSet(1) << 13, Effective: v1alpha1.CapSet(1) << 13}, Count: 1}
	runtime := gain
	runtime.Phase = v1alpha1.RuntimeInitPhase
	for _, tt := range []struct {
		change v1alpha1.CredentialChange
		want   bool
	}{{gain, true}, {runtime, false}} {
		c.CredentialChanges = []v1alpha1.CredentialChange{tt.change}
		a := Analyze([]Input{{"p.json", &v1alpha1.Profile{Containers: []v1alpha1.Container{c}}}})
		kept := false
		for _, d := range a.Containers[0].Capabilities {
			kept = kept || d.Capability == 13 && d.Decision == Required
		}
		if kept != tt.want {
			t.Errorf("phase %q: NET_RAW required %v, want %v", tt.change.Phase, kept, tt.want)
		}
	}
}

// TestMergeKeepsNormalized: a container that is already what merging makes
// (a saved profile, read back) is kept as it is, and that is exactly what
// merging it would make; anything else is merged.
func TestMergeKeepsNormalized(t *testing.T) {
	paths, _ := filepath.Glob("../render/testdata/*.json")
	more, _ := filepath.Glob("../manifest/testdata/*.json")
	kept := 0
	for _, path := range append(paths, more...) {
		p, err := Load(path)
		if err != nil {
			continue // golden outputs, not profiles
		}
		for _, c := range p.Containers {
			m := newContainerMerger()
			m.add(c)
			want := m.result()
			if normalized(c) {
				kept++
			}
			if got := MergeContainers(c); !reflect.DeepEqual(got[0], want) {
				t.Errorf("%s %s: merged alone\n got %+v\nwant %+v", path, c.Name, got[0], want)
			}
		}
	}
	if kept == 0 {
		t.Error("no saved container was kept as it is")
	}
	c := sampleProfile().Containers[0]
	c.Execs = append(c.Execs, c.Execs[0]) // a repeat: merged, not kept
	if got := MergeContainers(c); len(got[0].Execs) != 1 || got[0].Execs[0].Count != 2 {
		t.Errorf("a repeated exec: %+v, want one entry counted twice", got[0].Execs)
	}
}

// TestSourceCountsDoNotWrap: 2048 sources of 2^53 checks each add up to
// 2^64, which a 64-bit sum wraps to 0; a capability counted 0 times is not
// explained by them.
func TestSourceCountsDoNotWrap(t *testing.T) {
	p := sampleProfile()
	cc := &p.Containers[0].Capabilities[0]
	cc.Count, cc.Sources = 0, nil
	for i := range 2048 {
		s := v1alpha1.Source{Executable: fmt.Sprintf("/bin/x%d", i), Syscall: "bind", Audit: v1alpha1.Audited, Credentials: v1alpha1.OwnCredentials, Phase: v1alpha1.StartupPhase, Count: MaxCount}
		cc.Sources = append(cc.Sources, s)
	}
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), "count: 0, but its sources count more") {
		t.Fatalf("Validate = %v, want the sources' counts refused", err)
	}
}
