package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	good := write("good.json", profileJSON("CAP_CHOWN"))

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
		{"unknown capability", []string{"analyze", good, unknownCap}, unknownCap + `: invalid profile: unknown capability "CAP_SUPERPOWER" (valid, with or without CAP_: CHOWN,`},
		{"no profile", []string{"analyze"}, "no profile given"},
		{"bad format", []string{"analyze", "-o", "xml", good}, `-o "xml": unknown output format (valid: table, yaml, json)`},
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
		{"kubeconfig and runtime", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--kubeconfig", good, "--runtime-endpoint", "unix:///x"}, "--kubeconfig and --runtime-endpoint exclude each other"},
		{"tcp runtime endpoint", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--runtime-endpoint", "localhost:1234"}, `--runtime-endpoint "localhost:1234": want a unix socket`},
		{"runtime not running", []string{"record", "-o", filepath.Join(dir, "p.json"), "--pods", "web", "--runtime-endpoint", "unix://" + missing}, `--runtime-endpoint "unix://` + missing + `": the container runtime does not answer`},
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
