package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	profileJSON := func(capability string) string {
		return `{"apiVersion":"capprof.dev/v1alpha1","kind":"CapabilityProfile","metadata":{"startTime":"2026-11-22T10:00:00Z","endTime":"2026-11-22T10:00:01Z","node":"n","kernelRelease":"6.18","probe":"tracepoint","capprofVersion":"t","drops":{"events":0,"uncountedChecks":0,"unfollowedCredentialCalls":0}},` +
			`"containers":[{"name":"main","capabilities":[{"capability":"` + capability + `","verdict":"granted","userNamespace":"initial","count":1,"sources":[]}],"execs":[],"credentialChanges":[],"uids":[]}]}`
	}
	missing := filepath.Join(dir, "missing.json")
	malformedJSON := write("malformed.json", `{"apiVersion": "capprof.dev/v1alpha1",`)
	malformedYAML := write("malformed.yaml", "apiVersion: capprof.dev/v1alpha1\n  kind: [\n")
	wrongVersion := write("v2.yaml", "apiVersion: capprof.dev/v2\nkind: CapabilityProfile\n")
	wrongKind := write("pod.yaml", "apiVersion: capprof.dev/v1alpha1\nkind: Pod\n")
	unknownCap := write("unknown.json", profileJSON("CAP_SUPERPOWER"))
	const shop, shopManifest = "../../manifest/testdata/shop.json", "../../manifest/testdata/deployment.yaml"
	good := write("good.json", profileJSON("CAP_CHOWN"))
	// One long string referenced by 20,000 aliases: gigabytes once expanded.
	laughs := "s: &s " + strings.Repeat("a", 20000) + "\nlist:\n" + strings.Repeat("- *s\n", 20000)
	laughsProfile := write("laughs.yaml", "apiVersion: capprof.dev/v1alpha1\nkind: CapabilityProfile\n"+laughs)
	laughsManifest := write("laughs-manifest.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: main}]}\n"+laughs)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"analyze", missing}, missing + ": no such file or directory"},
		{"malformed JSON", []string{"analyze", malformedJSON}, malformedJSON + ": malformed JSON: unexpected EOF"},
		{"malformed YAML", []string{"analyze", malformedYAML}, malformedYAML + ": malformed YAML"},
		{"wrong apiVersion", []string{"analyze", wrongVersion}, wrongVersion + `: unsupported apiVersion "capprof.dev/v2", want "capprof.dev/v1alpha1"`},
		{"wrong kind", []string{"analyze", wrongKind}, wrongKind + `: unsupported kind "Pod"`},
		{"unknown capability", []string{"analyze", good, unknownCap}, unknownCap + `: invalid profile: containers[0].capabilities[0].capability: unknown capability "CAP_SUPERPOWER" (valid, with or without CAP_: CHOWN,`},
		{"no profile", []string{"analyze"}, "no profile given"},
		{"alias bomb profile", []string{"analyze", laughsProfile}, laughsProfile + ": YAML aliases expand the document to more than 16 MiB (20000 aliases): refused"},
		{"alias bomb manifest", []string{"analyze", "--manifest", laughsManifest, good}, laughsManifest + ": document 1: YAML aliases expand the document to more than 16 MiB (20000 aliases): refused"},
		{"bad format", []string{"analyze", "-o", "xml", good}, `--output "xml": must be one of table, yaml, json`},
		{"fail-on without manifest", []string{"analyze", "--fail-on", "missing", good}, "--fail-on compares with a manifest: give --manifest too"},
		{"bad fail-on", []string{"analyze", "--manifest", shopManifest, "--fail-on", "some", shop}, `--fail-on "some": must be one of missing, excess, any`},
		{"bad runtime", []string{"analyze", "--manifest", shopManifest, "--runtime-defaults", "podman", shop}, `--runtime-defaults "podman": must be one of containerd, crio, docker`},
		{"missing manifest", []string{"analyze", "--manifest", missing, shop}, "--manifest: read manifest: open " + missing},
		{"manifest lacks container", []string{"analyze", "--manifest", shopManifest, good}, `has no container for the profile's "main"`},
		{"patch without manifest", []string{"patch", shop}, `Required flag "manifest" not set`},
		{"export a command's recording", []string{"export", good}, good + `: container "main" belongs to no Kubernetes workload (a command's recording)`},
		{"export two profiles", []string{"export", shop, good}, "want one profile, got 2 arguments"},
		{"export bad format", []string{"export", "-o", "table", shop}, `--output "table": must be one of yaml, json`},
		{"record a command's flags before --", []string{"record", "-o", filepath.Join(dir, "p.json"), "ls", "-la"},
			"flag provided but not defined: -la: a command with flags of its own goes after --: capprof record [FLAGS] -- COMMAND [ARGS...]"},
		{"empty stdin", []string{"analyze", "-"}, "stdin: empty file, not a capprof profile"},
		{"patch bad format", []string{"patch", "--manifest", shopManifest, "-o", "helm", shop}, `--output "helm": must be one of manifest, strategic, json6902, json6902-yaml, kustomize`},
		{"patch not kubernetes", []string{"patch", "--manifest", good, shop}, "--manifest: " + good + ": no workload (Pod, Deployment"},
		{"unknown flag", []string{"analyze", "--frobnicate", good}, "flag provided but not defined: -frobnicate (see capprof analyze --help)"},
		{"record without -o", []string{"record", "--", "/bin/true"}, `Required flag "output" not set`},
		{"record bad duration", []string{"record", "-o", filepath.Join(dir, "p.json"), "--duration", "soon", "--", "/bin/true"}, `invalid value "soon" for flag -duration`},
		{"record negative duration", []string{"record", "-o", filepath.Join(dir, "p.json"), "--duration", "-1s", "--", "/bin/true"}, "--duration -1s: must not be negative"},
		{"record without command", []string{"record", "-o", filepath.Join(dir, "p.json")}, "nothing to record: give --pods"},
		{"pods and command", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--", "/bin/true"}, `both pods and a command ("/bin/true") given`},
		{"namespace without pods", []string{"record", "-o", filepath.Join(dir, "p.json"), "-n", "shop", "--", "/bin/true"}, "--namespace selects pods: give --pods or -l too"},
		{"name with pods", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--name", "x"}, "--name applies to recording a command, not pods"},
		{"-n and -A", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "-n", "shop", "-A"}, `-n "shop" and -A exclude each other`},
		{"bad selector", []string{"record", "-o", filepath.Join(dir, "p.json"), "-l", "app in (web"}, `-l "app in (web": `},
		{"empty pod name", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "a,,b"}, `--pods "": not a pod name`},
		{"missing kubeconfig", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--kubeconfig", missing}, `--kubeconfig "` + missing + `": stat ` + missing + ": no such file or directory"},
		{"restart without pods", []string{"record", "-o", filepath.Join(dir, "p.json"), "--restart", "--", "/bin/true"}, "--restart selects pods: give --pods or -l too"},
		{"restart through the runtime", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--restart", "--runtime-endpoint", "unix:///x"}, "--restart and --runtime-endpoint exclude each other"},
		{"kubeconfig and runtime", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--kubeconfig", good, "--runtime-endpoint", "unix:///x"}, "--kubeconfig and --runtime-endpoint exclude each other"},
		{"tcp runtime endpoint", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--runtime-endpoint", "localhost:1234"}, `--runtime-endpoint "localhost:1234": want a unix socket`},
		{"events flag without events", []string{"record", "-o", filepath.Join(dir, "p.json"), "--events-format", "compact", "--", "/bin/true"}, "--events-format shapes live events: give --events FILE (or - for stdout) too"},
		{"bad events format", []string{"record", "-o", filepath.Join(dir, "p.json"), "--events", "-", "--events-format", "yaml", "--", "/bin/true"}, `--events-format "yaml": must be one of json, compact`},
		{"bad events filter", []string{"record", "-o", filepath.Join(dir, "p.json"), "--events", "-", "--events-filter", "verdict=maybe", "--", "/bin/true"}, `--events-filter "verdict=maybe": unknown verdict "maybe": use allowed or denied`},
		{"negative rate limit", []string{"record", "-o", filepath.Join(dir, "p.json"), "--events", "-", "--events-rate-limit", "-1s", "--", "/bin/true"}, "--events-rate-limit -1s: must not be negative"},
		{"events to a directory", []string{"record", "-o", filepath.Join(dir, "p.json"), "--events", dir, "--", "/bin/true"}, "--events \"" + dir + "\" is a directory, not a file"},
		{"redact without a group", []string{"record", "-o", filepath.Join(dir, "p.json"), "--redact", `--key=\S+`, "--", "/bin/true"}, `--redact "--key=\\S+": the pattern has no capture group`},
		{"redact not a regex", []string{"record", "-o", filepath.Join(dir, "p.json"), "--redact", `(`, "--", "/bin/true"}, `--redact "(": error parsing regexp: missing closing )`},
		{"profile and events both stdout", []string{"record", "-o", "-", "--events", "-", "--", "/bin/true"}, `--events "-" is the profile's file (-o): give each its own file`},
		{"cluster with -o", []string{"record", "--cluster", "-o", filepath.Join(dir, "p.json"), "deploy/web"}, "--output does not apply to --cluster"},
		{"cluster without workload", []string{"record", "--cluster"}, "--cluster records a workload (KIND/NAME, like deploy/web) or the pods -l SELECTOR matches: give one"},
		{"cluster workload and selector", []string{"record", "--cluster", "-l", "app=web", "deploy/web"}, `both -l and a workload ("deploy/web") given`},
		{"cluster bad workload", []string{"record", "--cluster", "web"}, `workload "web": want KIND/NAME`},
		{"cluster bad selector", []string{"record", "--cluster", "-l", "app in (web"}, `-l "app in (web": `},
		{"cluster wait without duration", []string{"record", "--cluster", "--wait", "deploy/web"}, "--wait needs --duration"},
		{"cluster restart by selector", []string{"record", "--cluster", "--restart", "-l", "app=web"}, "--restart with --cluster restarts a workload: give it as KIND/NAME, not -l"},
		{"cluster containers both ways", []string{"record", "--cluster", "--containers", "a", "--exclude-containers", "b", "deploy/web"}, "--containers and --exclude-containers exclude each other"},
		{"wait without cluster", []string{"record", "-o", filepath.Join(dir, "p.json"), "--wait", "--", "/bin/true"}, "--wait applies to a cluster recording: give --cluster too"},
		{"cluster missing kubeconfig", []string{"record", "--cluster", "--kubeconfig", missing, "deploy/web"}, `--kubeconfig "` + missing + `": stat`},
		{"agent without flush", []string{"agent", "--flush", "0s"}, "--flush 0s: must be positive"},
		{"agent argument", []string{"agent", "extra"}, `agent takes no arguments, got "extra"`},
		{"agent events flag without events", []string{"agent", "--events-max-backups", "3"}, "--events-max-backups shapes live events: give --events FILE (or - for stdout) too"},
		{"agent events format without events", []string{"agent", "--events-format", "compact"}, "--events-format shapes live events: give --events FILE (or - for stdout) too"},
		{"agent rotating stdout", []string{"agent", "--events", "-", "--events-max-size-mb", "5"}, "--events-max-size-mb rotates an events file: stdout is the container runtime's to rotate"},
		{"agent events size", []string{"agent", "--events", filepath.Join(dir, "e.log"), "--events-max-size-mb", "0"}, "--events-max-size-mb 0: must be at least 1"},
		{"agent events backups", []string{"agent", "--events", filepath.Join(dir, "e.log"), "--events-max-backups", "-1"}, "--events-max-backups -1: must not be negative"},
		{"agent events to a directory", []string{"agent", "--events", dir}, `--events "` + dir + `": it is a directory: the events file is rotated by renaming it`},
		{"agent events to a device", []string{"agent", "--events", "/dev/null"}, `--events "/dev/null": it is a device`},
		{"agent bad events filter", []string{"agent", "--events", "-", "--events-filter", "type=open"}, `--events-filter "type=open": `},
		{"controller lease without election", []string{"controller", "--lease-namespace", "x"}, "--lease-namespace places the leader-election Lease: give --leader-elect too"},
		{"record event buffer not a power of two", []string{"record", "-o", filepath.Join(dir, "p.json"), "--event-buffer-mb", "3", "--", "/bin/true"}, "--event-buffer-mb 3: must be a power of two from 1 to 1024"},
		{"agent event buffer of 0", []string{"agent", "--event-buffer-mb", "0"}, "--event-buffer-mb 0: must be a power of two from 1 to 1024"},
		{"agent event buffer too large", []string{"agent", "--event-buffer-mb", "2048"}, "--event-buffer-mb 2048: must be a power of two from 1 to 1024"},
		{"agent bad pprof address", []string{"agent", "--pprof-address", "nope"}, `--pprof-address "nope": listen tcp: address nope: missing port in address`},
		{"controller bad pprof address", []string{"controller", "--pprof-address", "127.0.0.1:99999"}, `--pprof-address "127.0.0.1:99999": listen tcp: address 99999: invalid port`},
		{"controller negative grace", []string{"controller", "--final-grace", "-1s"}, "--final-grace -1s: must not be negative"},
		{"runtime not running", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--runtime-endpoint", "unix://" + missing}, `--runtime-endpoint "unix://` + missing + `": the container runtime does not answer`},
	}
	// A block device, where capprof may make one (root).
	if blk := filepath.Join(dir, "blk"); unix.Mknod(blk, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))) == nil {
		tests = append(tests, struct {
			name string
			args []string
			want string
		}{"block device output", []string{"record", "-o", blk, "--", "/bin/true"},
			`-o "` + blk + `" is a block device: capprof writes into regular files, character devices and pipes`})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"capprof"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero; stdout %q", stdout.String())
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "capprof: ") || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tt.want) {
				t.Fatalf("stderr %q: want one line \"capprof: ...%s...\"", msg, tt.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q, want nothing on an error", stdout.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "p.json")); !os.IsNotExist(err) {
		t.Fatalf("a failed record left a profile behind: %v", err)
	}
}

func TestAnalyzeFormats(t *testing.T) {
	const web = "../../render/testdata/web.json"
	for format, want := range map[string]string{
		"table": "CAP_NET_BIND_SERVICE",
		"yaml":  "      - NET_BIND_SERVICE\n",
		"json":  `"decision": "required"`,
	} {
		// Flags may come before or after the profiles.
		for _, args := range [][]string{{"-o", format, web}, {web, "-o", format}, {web, "--output=" + format}} {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"capprof", "analyze"}, args...), strings.NewReader(""), &stdout, &stderr)
			if code != 0 || !strings.Contains(stdout.String(), want) || stderr.Len() != 0 {
				t.Errorf("analyze %v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
			}
		}
	}
}

func TestFlagsFirst(t *testing.T) {
	app := newApp(nil, nil, nil)
	for in, want := range map[string]string{
		"capprof analyze a.json -o yaml b.json":         "capprof analyze -o yaml a.json b.json",
		"capprof record -o p.json -- cmd -o x --name y": "capprof record -o p.json -- cmd -o x --name y",
		"capprof record -- cmd -o x":                    "capprof record -- cmd -o x",
		"capprof record --duration=5s -o p.json -- cmd": "capprof record --duration=5s -o p.json -- cmd",
		"capprof unknown a -o b":                        "capprof unknown a -o b",
		"capprof analyze - -o json":                     "capprof analyze -o json -",
	} {
		if got := strings.Join(flagsFirst(app, strings.Fields(in)), " "); got != want {
			t.Errorf("flagsFirst(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExitStatus: diff exits 1 when its --fail-on condition holds, 0
// otherwise, 2 on bad input; analyze --fail-on exits 1 on its findings.
func TestExitStatus(t *testing.T) {
	const base, head = "../../manifest/testdata/shop.json", "../../manifest/testdata/shop-head.json"
	const deployment, statefulset = "../../manifest/testdata/deployment.yaml", "../../manifest/testdata/statefulset.yaml"
	tests := []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"diff", base, head}, 0, ""},
		{[]string{"diff", base, head, "--fail-on", "new-capabilities"}, 1, "capprof: --fail-on new-capabilities: a container newly requires capabilities\n"},
		{[]string{"diff", base, base, "--fail-on", "new-capabilities"}, 0, ""},
		{[]string{"diff", head, base, "--fail-on", "any-change"}, 1, "capprof: --fail-on any-change: the profiles differ\n"},
		{[]string{"diff", base, base, "--fail-on", "any-change", "-o", "markdown"}, 0, ""},
		{[]string{"diff", base}, 2, "capprof: want two profiles, got 1: capprof diff BASE HEAD, or capprof diff BASE --from-cluster KIND/NAME\n"},
		{[]string{"diff", base, "missing.json"}, 2, "capprof: read profile: open missing.json: no such file or directory\n"},
		{[]string{"diff", "-o", "html", base, head}, 2, "capprof: --output \"html\": must be one of text, markdown, json\n"},
		{[]string{"diff", "--fail-on", "new", base, head}, 2, "capprof: --fail-on \"new\": must be one of new-capabilities, any-change\n"},
		{[]string{"diff", "--frobnicate", base, head}, 2, "capprof: flag provided but not defined: -frobnicate (see capprof diff --help)\n"},
		{[]string{"analyze", "--manifest", deployment, "--fail-on", "excess", base}, 1, "capprof: --fail-on excess: a container of the manifest is granted capabilities it never needed\n"},
		{[]string{"analyze", "--manifest", deployment, "--fail-on", "missing", base}, 0, ""},
		{[]string{"analyze", "--manifest", statefulset, "--fail-on", "any", base}, 1, "capprof: --fail-on any: a container of the manifest is granted capabilities it never needed\n"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		status := run(append([]string{"capprof"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
		if status != tt.status || stderr.String() != tt.stderr {
			t.Errorf("capprof %s: exit %d, stderr %q; want exit %d, stderr %q", strings.Join(tt.args, " "), status, stderr.String(), tt.status, tt.stderr)
		}
		if tt.status != 2 && stdout.Len() == 0 {
			t.Errorf("capprof %s: nothing on stdout", strings.Join(tt.args, " "))
		}
	}
}

// TestMissingCapability: a manifest that grants less than the profile
// needs fails --fail-on missing.
func TestMissingCapability(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "job.yaml")
	job := "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate, namespace: shop}\n" +
		"spec: {template: {spec: {containers: [{name: migrate, securityContext: {capabilities: {drop: [ALL]}}}]}}}\n"
	if err := os.WriteFile(path, []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	status := run([]string{"capprof", "analyze", "--manifest", path, "--fail-on", "missing", "../../manifest/testdata/shop.json"}, strings.NewReader(""), &stdout, &stderr)
	if status != 1 || !strings.Contains(stdout.String(), "missing:        NET_BIND_SERVICE") ||
		stderr.String() != "capprof: --fail-on missing: a container of the manifest lacks a capability it needs\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", status, stdout.String(), stderr.String())
	}
}

// TestNothingRaw: what a profile or a file name holds reaches neither
// stdout nor stderr as terminal controls, whatever the verb or the path.
func TestNothingRaw(t *testing.T) {
	const hostile = "../../render/testdata/hostile.json"
	dir := t.TempDir()
	missing := filepath.Join(dir, "\x1b[2J\x1b[Hgone\u202e.json")
	for _, args := range [][]string{
		{"analyze", hostile},
		{"analyze", "-o", "yaml", hostile},
		{"diff", "../../render/testdata/web.json", hostile},
		{"diff", "-o", "markdown", "../../render/testdata/web.json", hostile},
		{"analyze", missing},
		{"diff", hostile, missing},
	} {
		var stdout, stderr bytes.Buffer
		run(append([]string{"capprof"}, args...), strings.NewReader(""), &stdout, &stderr)
		for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
			if i := strings.IndexFunc(out, func(r rune) bool {
				return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r == '\u202e'
			}); i >= 0 {
				t.Errorf("%v: %s has %q raw:\n%s", args, name, out[i:i+1], out)
			}
		}
	}
}

// TestStandardInput: "-" reads a profile or a manifest from standard input,
// once per invocation.
func TestStandardInput(t *testing.T) {
	web, err := os.ReadFile("../../render/testdata/web.json")
	if err != nil {
		t.Fatal(err)
	}
	replica, err := os.ReadFile("../../render/testdata/web-replica.yaml")
	if err != nil {
		t.Fatal(err)
	}
	deployment, err := os.ReadFile("../../manifest/testdata/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		args         []string
		stdin        []byte
		wantCode     int
		want, stderr string
	}{
		{"JSON profile", []string{"analyze", "-"}, web, 0, "CONTAINER main (1 recording)", ""},
		{"YAML profile beside a file", []string{"analyze", "-", "../../render/testdata/web.json"}, replica, 0, "CONTAINER main (2 recordings)", ""},
		{"manifest", []string{"analyze", "--manifest", "-", "../../manifest/testdata/shop.json"}, deployment, 0, "MANIFEST stdin", ""},
		{"diff against stdin", []string{"diff", "-", "../../render/testdata/web.json"}, web, 0, "stdin -> ../../render/testdata/web.json: no changes", ""},
		{"twice", []string{"analyze", "-", "-"}, web, 2, "", "the profile from -: standard input was read already, for the profile; only one input can come from it"},
		{"manifest and profile", []string{"analyze", "--manifest", "-", "-"}, deployment, 2, "", "--manifest - and a profile -: only one input can come from standard input"},
		{"patch: manifest and profile", []string{"patch", "--manifest", "-", "-"}, deployment, 2, "", "--manifest - and a profile -: only one input can come from standard input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"capprof"}, tc.args...), bytes.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stdout.String(), tc.want) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, %q, %q", code, stdout.String(), stderr.String(), tc.wantCode, tc.want, tc.stderr)
			}
		})
	}
}

// TestExitStatuses: one convention for every verb. 2 for usage and bad
// input, 1 for a condition asked for; record and verify, which pass a
// command's status through, 125 for their own failures.
func TestExitStatuses(t *testing.T) {
	const shop, shopManifest = "../../manifest/testdata/shop.json", "../../manifest/testdata/deployment.yaml"
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"analyze", "missing.json"}, 2},
		{[]string{"analyze", "-o", "xml", shop}, 2},
		{[]string{"patch", shop}, 2},
		{[]string{"diff", shop}, 2},
		{[]string{"probes", "--bogus"}, 2},
		{[]string{"analyze", "--manifest", shopManifest, "--fail-on", "excess", shop}, 1},
		{[]string{"record", "-o", "x.json", "ls", "-la"}, 125},
		{[]string{"record", "-o", "x.json", "--duration", "-1s", "--", "true"}, 125},
		{[]string{"verify", "-o", "x.json"}, 125},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"capprof"}, tc.args...), strings.NewReader(""), &stdout, &stderr); code != tc.want {
			t.Errorf("capprof %s: exit %d, want %d (%s)", strings.Join(tc.args, " "), code, tc.want, strings.TrimSpace(stderr.String()))
		}
	}
}

// TestKubectlPlugin: named kubectl-capprof, capprof calls itself kubectl
// capprof and reads the cluster's profiles by default; named otherwise, it
// reads files.
func TestKubectlPlugin(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.kubeconfig")
	for _, tc := range []struct {
		argv0, want string
		args        []string
	}{
		{"/root/.krew/bin/kubectl-capprof", "(see kubectl capprof analyze --help)", []string{"analyze", "--bogus"}},
		{"capprof", "(see capprof analyze --help)", []string{"analyze", "--bogus"}},
		{"kubectl-capprof", "--from-cluster: --kubeconfig", []string{"analyze", "--kubeconfig", missing, "deploy/web"}},
		{"kubectl-capprof.exe", "--from-cluster: --kubeconfig", []string{"diff", "--kubeconfig", missing, "../../manifest/testdata/shop.json", "deploy/web"}},
		{"kubectl-capprof", "open deploy/web", []string{"analyze", "--from-cluster=false", "deploy/web"}},
		{"capprof", "open deploy/web", []string{"analyze", "deploy/web"}},
		{"kubectl-capprof", "--kubeconfig \"" + missing + "\"", []string{"record", "--kubeconfig", missing, "deploy/web"}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{tc.argv0}, tc.args...), strings.NewReader(""), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want %q", tc.argv0, strings.Join(tc.args, " "), code, stderr.String(), tc.want)
		}
	}
}
