package v1alpha1

import (
	"strings"
	"testing"
)

func TestCapabilityNames(t *testing.T) {
	for in, want := range map[string]Capability{
		"CAP_CHOWN": 0, "chown": 0, "NET_BIND_SERVICE": 10, "cap_sys_admin": 21,
		"CAP_CHECKPOINT_RESTORE": 40, "CAP_10": 10, "CAP_40": 40, "cap_0": 0,
	} {
		got, err := ParseCapability(in)
		if err != nil || got != want {
			t.Errorf("ParseCapability(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"CAP_FOO", "41", "CAP_41", "CAP_63", "CAP_64", "", "CAP_-1", "CAP_+10", "CAP_ 10", "CAP_010", "CAP_1e1", "CAP_99999999999999999999"} {
		if _, err := ParseCapability(bad); err == nil {
			t.Errorf("ParseCapability(%q) succeeded, want an error", bad)
		}
	}
	if len(capabilityNames) != 41 {
		t.Fatalf("%d capability names, want 41 (0..40)", len(capabilityNames))
	}
	for c := Capability(0); c <= LastCapability; c++ {
		back, err := ParseCapability(c.String())
		if err != nil || back != c {
			t.Errorf("%d -> %s -> %d, %v", c, c, back, err)
		}
	}
	if got := Capability(41).String(); got != "CAP_41" {
		t.Errorf("Capability(41) = %s, want CAP_41", got)
	}
	if got := Capability(24).KubernetesName(); got != "SYS_RESOURCE" {
		t.Errorf("KubernetesName = %s, want SYS_RESOURCE", got)
	}
}

func TestCapSetJSON(t *testing.T) {
	for _, tt := range []struct {
		set  CapSet
		json string
	}{
		{0, `[]`},
		{AllCapabilities, `["ALL"]`},
		{1<<0 | 1<<21, `["CAP_CHOWN","CAP_SYS_ADMIN"]`},
		{AllCapabilities &^ (1 << 24), `["ALL","-CAP_SYS_RESOURCE"]`},
		{1<<20 - 1, `["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_DAC_READ_SEARCH","CAP_FOWNER","CAP_FSETID","CAP_KILL","CAP_SETGID","CAP_SETUID","CAP_SETPCAP","CAP_LINUX_IMMUTABLE","CAP_NET_BIND_SERVICE","CAP_NET_BROADCAST","CAP_NET_ADMIN","CAP_NET_RAW","CAP_IPC_LOCK","CAP_IPC_OWNER","CAP_SYS_MODULE","CAP_SYS_RAWIO","CAP_SYS_CHROOT","CAP_SYS_PTRACE"]`},                                // 20 of 41: listed
		{1<<21 - 1, `["ALL","-CAP_SYS_ADMIN","-CAP_SYS_BOOT","-CAP_SYS_NICE","-CAP_SYS_RESOURCE","-CAP_SYS_TIME","-CAP_SYS_TTY_CONFIG","-CAP_MKNOD","-CAP_LEASE","-CAP_AUDIT_WRITE","-CAP_AUDIT_CONTROL","-CAP_SETFCAP","-CAP_MAC_OVERRIDE","-CAP_MAC_ADMIN","-CAP_SYSLOG","-CAP_WAKE_ALARM","-CAP_BLOCK_SUSPEND","-CAP_AUDIT_READ","-CAP_PERFMON","-CAP_BPF","-CAP_CHECKPOINT_RESTORE"]`}, // 21 of 41: ALL minus the rest
	} {
		got, err := tt.set.MarshalJSON()
		if err != nil || string(got) != tt.json {
			t.Errorf("marshal %x = %s, %v; want %s", uint64(tt.set), got, err, tt.json)
		}
		var back CapSet
		if err := back.UnmarshalJSON([]byte(tt.json)); err != nil || back != tt.set {
			t.Errorf("unmarshal %s = %x, %v; want %x", tt.json, uint64(back), err, uint64(tt.set))
		}
	}
}

func TestCapSetInput(t *testing.T) {
	var s CapSet
	if err := s.UnmarshalJSON([]byte(`["CAP_CHOWN","-CAP_CHOWN","net_raw"]`)); err != nil || s != 1<<13 {
		t.Fatalf("got %x, %v; want only CAP_NET_RAW", uint64(s), err)
	}
	if err := s.UnmarshalJSON([]byte(`["-CAP_NOPE"]`)); err == nil || !strings.Contains(err.Error(), `unknown capability "CAP_NOPE"`) {
		t.Fatalf("err = %v", err)
	}
	if err := s.UnmarshalJSON([]byte(`"ALL"`)); err == nil {
		t.Fatal("a string is not a set")
	}
}
