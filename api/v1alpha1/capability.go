package v1alpha1

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Capability is a Linux capability number (include/uapi/linux/capability.h),
// written by its name: "CAP_NET_BIND_SERVICE".
//
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:Pattern=`^CAP_[A-Z0-9_]+$`
type Capability int

// capabilityNames lists CAP_CHOWN (0) to CAP_CHECKPOINT_RESTORE (40, Linux 5.9).
var capabilityNames = [...]string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
	"SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
	"NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
	"SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
	"AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// LastCapability is the highest capability capprof knows by name.
const LastCapability = Capability(len(capabilityNames) - 1)

// String returns the kernel name, e.g. CAP_NET_BIND_SERVICE, or CAP_<n> for
// a number newer than capprof.
func (c Capability) String() string { return "CAP_" + c.KubernetesName() }

// KubernetesName returns the name without the CAP_ prefix, as Kubernetes
// securityContext.capabilities expects it.
func (c Capability) KubernetesName() string {
	if c >= 0 && c <= LastCapability {
		return capabilityNames[c]
	}
	return strconv.Itoa(int(c))
}

// ParseCapability accepts CAP_NET_RAW, NET_RAW (any case) or CAP_<n> for
// a number up to LastCapability, the kernel's last (CAP_10 is
// CAP_NET_BIND_SERVICE; CAP_+10 and CAP_41 are refused).
func ParseCapability(s string) (Capability, error) {
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "CAP_")
	for i, n := range capabilityNames {
		if n == name {
			return Capability(i), nil
		}
	}
	if digits(name) && strings.HasPrefix(strings.ToUpper(s), "CAP_") {
		if n, err := strconv.Atoi(name); err == nil && n <= int(LastCapability) {
			return Capability(n), nil
		}
		return 0, fmt.Errorf("unknown capability %q: the kernel's last is CAP_%d (CAP_%s, Linux 5.9)", s, LastCapability, capabilityNames[LastCapability])
	}
	return 0, fmt.Errorf("unknown capability %q (valid, with or without CAP_: %s; or CAP_<number>)", s, strings.Join(capabilityNames[:], ", "))
}

// digits reports whether s is a decimal number as the kernel prints one:
// no sign, space or leading zero.
func digits(s string) bool {
	return s != "" && len(s) <= 3 && strings.Trim(s, "0123456789") == "" && (s == "0" || s[0] != '0')
}

// MarshalJSON writes the kernel name.
func (c Capability) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// UnmarshalJSON reads a name accepted by ParseCapability.
func (c *Capability) UnmarshalJSON(b []byte) error {
	var s string
	if err := jsonv2.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("capability must be a string like \"CAP_CHOWN\", got a JSON %s", jsontext.Value(b).Kind())
	}
	parsed, err := ParseCapability(s)
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}

// CapSet is a set of capabilities, stored as the kernel's 64-bit mask and
// written as a list of names (see MarshalJSON). controller-gen cannot give a
// named integer type an array schema (its items markers need the Go type to
// be a slice), so CapSet fields carry the Schemaless and
// PreserveUnknownFields markers: the API server keeps them as they are, and
// capprof validates them when it reads a profile.
type CapSet uint64

// AllCapabilities is every capability capprof can name.
const AllCapabilities = CapSet(1)<<(LastCapability+1) - 1

// Has reports whether c is in the set.
func (s CapSet) Has(c Capability) bool { return c >= 0 && c < 64 && s&(1<<c) != 0 }

// List returns the members in ascending order.
func (s CapSet) List() []Capability {
	var out []Capability
	for c := Capability(0); c < 64; c++ {
		if s.Has(c) {
			out = append(out, c)
		}
	}
	return out
}

// KubernetesNames lists the members' names without CAP_, as
// securityContext.capabilities has them; never nil.
func (s CapSet) KubernetesNames() []string {
	names := []string{}
	for _, c := range s.List() {
		names = append(names, c.KubernetesName())
	}
	return names
}

// KubernetesList is the members' names without CAP_, comma-separated, as
// progress lines and tables show a set; "no capabilities" for none.
func (s CapSet) KubernetesList() string {
	if s == 0 {
		return "no capabilities"
	}
	return strings.Join(s.KubernetesNames(), ",")
}

// MarshalJSON writes the names of the members. A set holding most known
// capabilities is written as "ALL" followed by the missing ones with a "-"
// prefix: root on a host that withholds one capability reads
// ["ALL", "-CAP_SYS_RESOURCE"] rather than forty names.
func (s CapSet) MarshalJSON() ([]byte, error) {
	names := []string{}
	known := s & AllCapabilities
	if bits.OnesCount64(uint64(known)) > int(LastCapability+1)/2 {
		names = append(names, "ALL")
		for _, c := range (AllCapabilities &^ known).List() {
			names = append(names, "-"+c.String())
		}
		known = 0
	}
	for _, c := range (known | s&^AllCapabilities).List() {
		names = append(names, c.String())
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads what MarshalJSON writes: names add to the set, "ALL"
// adds every known capability, and "-NAME" removes one, in order.
func (s *CapSet) UnmarshalJSON(b []byte) error {
	var names []string
	if err := jsonv2.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("capability set must be a list of names, got a JSON %s", jsontext.Value(b).Kind())
	}
	var set CapSet
	for _, n := range names {
		if strings.EqualFold(n, "ALL") {
			set |= AllCapabilities
			continue
		}
		remove := strings.HasPrefix(n, "-")
		c, err := ParseCapability(strings.TrimPrefix(n, "-"))
		if err != nil {
			return err
		}
		if remove {
			set &^= 1 << c
		} else {
			set |= 1 << c
		}
	}
	*s = set
	return nil
}
