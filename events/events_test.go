package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var (
	xwing = &Pod{Namespace: "default", Name: "xwing", Container: &Container{Name: "app"}}
	sh    = &Process{ExecID: "c2g=", Binary: "/bin/sh", Arguments: "-c whoami", Pod: xwing}
	dmesg = &Process{ExecID: "ZG1lc2c=", Binary: "/bin/dmesg", Pod: xwing}
	su    = &Process{ExecID: "c3U=", Binary: "/bin/su", Arguments: "luke -c id", Pod: xwing}
	cmd   = &Process{ExecID: "Y21k=", Binary: "/app", Pod: &Pod{Container: &Container{Name: "main"}}}
)

func credentials(uid uint32, effective ...string) *Credentials {
	return &Credentials{UID: uid, EUID: uid, SUID: uid, FSUID: uid, Caps: &Capabilities{Effective: effective}}
}

func checkEvent(p *Process, capability int32, ret int32, audit string, suppressed uint64) *Event {
	k := CapabilityCheck(p, nil, capability, ret, &UserNSArg{NS: &Namespace{Inum: 1, IsHost: true}})
	k.Audit, k.Suppressed, k.Checks = audit, suppressed, 1+suppressed
	return &Event{ProcessKprobe: k}
}

func TestCompact(t *testing.T) {
	summary := checkEvent(dmesg, 34, -1, "audited", 0)
	summary.ProcessKprobe.Summary, summary.ProcessKprobe.Suppressed = true, 12
	for _, tc := range []struct {
		event *Event
		want  string
	}{
		{&Event{ProcessExec: &ProcessExec{Process: sh}}, "🚀 process default/xwing /bin/sh -c whoami"},
		{&Event{ProcessExec: &ProcessExec{Process: sh, Privileged: []string{"CAP_SYS_ADMIN", "host_pid_ns"}}},
			"🚀 process default/xwing /bin/sh -c whoami 🛑 CAP_SYS_ADMIN host_pid_ns"},
		{&Event{ProcessExit: &ProcessExit{Process: dmesg, Status: 1}}, "💥 exit    default/xwing /bin/dmesg 1"},
		{&Event{ProcessExit: &ProcessExit{Process: dmesg, Signal: "SIGKILL"}}, "💥 exit    default/xwing /bin/dmesg SIGKILL"},
		{checkEvent(dmesg, 34, -1, "audited", 0), "🔑 cap     default/xwing /bin/dmesg CAP_SYSLOG denied"},
		{checkEvent(cmd, 7, 0, "insetid", 99), "🔑 cap     main /app CAP_SETUID allowed (+99 suppressed)"},
		{summary, "🔑 cap     default/xwing /bin/dmesg CAP_SYSLOG denied (12 more suppressed)"},
		{&Event{ProcessKprobe: CredentialChange(su, nil, &Syscall{Name: "setuid", Args: []int64{1000}},
			credentials(0, "CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"), credentials(1000))},
			"🔐 creds   default/xwing /bin/su luke -c id setuid(1000) uid 0→1000 -CAP_CHOWN,CAP_KILL,CAP_SETGID,…(+1)"},
		{&Event{ProcessKprobe: CredentialChange(su, nil, &Syscall{Name: "setresuid", Args: []int64{-1, 1000, -1}},
			credentials(0), &Credentials{EUID: 1000, Caps: &Capabilities{Effective: []string{"CAP_KILL"}}})},
			"🔐 creds   default/xwing /bin/su luke -c id setresuid(-1, 1000, -1) euid 0→1000 +CAP_KILL"},
		{&Event{ProcessKprobe: CredentialChange(su, nil, &Syscall{Name: "unknown"}, credentials(0), credentials(0))},
			"🔐 creds   default/xwing /bin/su luke -c id unknown() (ids and effective capabilities unchanged)"},
		// A workload's names cannot clear the screen or forge a line.
		{&Event{ProcessExec: &ProcessExec{Process: &Process{Binary: "/tmp/\x1b[2J\x1b[H", Arguments: "x\r\n🔑 cap     default/xwing /bin/ok CAP_KILL allowed\u202e",
			Pod: &Pod{Container: &Container{Name: "c\x07"}}}}},
			`🚀 process c\a /tmp/\x1b[2J\x1b[H x\r\n🔑 cap     default/xwing /bin/ok CAP_KILL allowed\u202e`},
	} {
		if got := Compact(tc.event); got != tc.want {
			t.Errorf("Compact:\n got %q\nwant %q", got, tc.want)
		}
	}
}

// TestJSONFieldNames: the lines carry Tetragon's field names, so that
// its users' jq filters apply.
func TestJSONFieldNames(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter("json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Event{{ProcessExec: &ProcessExec{Process: sh}, NodeName: "n1"}, checkEvent(dmesg, 34, -1, "audited", 3)} {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		`{"process_exec":{"process":{"exec_id":"c2g=","pid":0,"uid":0,"binary":"/bin/sh","arguments":"-c whoami","flags":"","start_time":"0001-01-01T00:00:00Z","auid":0,"pod":{"namespace":"default","name":"xwing","container":{"name":"app"}},"tid":0}},"node_name":"n1","time":"0001-01-01T00:00:00Z"}`,
		`"function_name":"cap_capable","args":[{"user_ns_arg":{"level":0,"owner":0,"group":0,"ns":{"inum":1,"is_host":true}}},{"capability_arg":{"value":34,"name":"CAP_SYSLOG"}}],"return":{"int_arg":-1},"action":"KPROBE_ACTION_POST","capability":{"value":34,"name":"CAP_SYSLOG"},"verdict":"denied","audit":"audited","suppressed":3,"checks":4}`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d:\n%s\nlacks\n%s", i, lines[i], want)
		}
		var back Event
		if err := json.Unmarshal([]byte(lines[i]), &back); err != nil {
			t.Errorf("line %d does not read back: %v", i, err)
		}
	}
	if _, err := NewWriter("yaml", &buf); err == nil || !strings.Contains(err.Error(), `unknown format "yaml": use json or compact`) {
		t.Errorf("NewWriter(yaml) = %v", err)
	}
}

func TestParseFilter(t *testing.T) {
	for _, tc := range []struct {
		terms []string
		err   string
	}{
		{[]string{"type=exec", "type=cap", "pod=default/xwing", "container=app", "cap=sys_admin", "verdict=denied", "audit=noaudit"}, ""},
		{[]string{"type"}, `"type": want KEY=VALUE with KEY one of type, pod, container, cap, verdict, audit`},
		{[]string{"type="}, `"type=": want KEY=VALUE`},
		{[]string{"type=fork"}, `"type=fork": unknown type "fork": use exec, exit, cap or creds`},
		{[]string{"cap=CAP_FLY"}, `"cap=CAP_FLY": unknown capability "CAP_FLY"`},
		{[]string{"verdict=maybe"}, `"verdict=maybe": unknown verdict "maybe": use allowed or denied`},
		{[]string{"audit=loud"}, `"audit=loud": unknown audit class "loud": use audited, noaudit, insetid, unknown`},
		{[]string{"node=n1"}, `"node=n1": unknown key "node"`},
	} {
		_, err := ParseFilter(tc.terms)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseFilter(%q) = %v, want %q", tc.terms, err, tc.err)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	exec := &Event{ProcessExec: &ProcessExec{Process: sh}}
	denied := checkEvent(dmesg, 34, -1, "audited", 0)
	noise := checkEvent(sh, 21, 0, "noaudit", 0)
	creds := &Event{ProcessKprobe: CredentialChange(su, nil, &Syscall{Name: "setuid"}, credentials(0), credentials(1000))}
	command := checkEvent(cmd, 7, 0, "insetid", 0)
	for _, tc := range []struct {
		terms []string
		pass  []*Event
	}{
		{nil, []*Event{exec, denied, creds, command}}, // noaudit checks are noise unless asked for
		{[]string{"audit=noaudit"}, []*Event{exec, noise, creds}},
		{[]string{"type=exec", "type=creds"}, []*Event{exec, creds}},
		{[]string{"verdict=denied"}, []*Event{denied}},
		{[]string{"cap=SYSLOG", "cap=SETUID"}, []*Event{denied, command}},
		{[]string{"pod=xwing"}, []*Event{exec, denied, creds}},
		{[]string{"pod=default/xwing", "type=cap"}, []*Event{denied}},
		{[]string{"pod=other/xwing"}, nil},
		{[]string{"container=main"}, []*Event{command}},
	} {
		f, err := ParseFilter(tc.terms)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []*Event{exec, denied, noise, creds, command} {
			want := false
			for _, p := range tc.pass {
				want = want || p == e
			}
			if got := f.Match(e); got != want {
				t.Errorf("filter %q on %q: %v, want %v", tc.terms, Compact(e), got, want)
			}
		}
	}
}
