package bpf

import (
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// credSpanFields are the struct cred fields read_creds (lib/cred.h) copies
// in one probe read of CRED_SPAN_MAX bytes from uid's offset, rounded down
// to 8.
var credSpanFields = []string{"uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid",
	"cap_inheritable", "cap_permitted", "cap_effective", "cap_bset", "cap_ambient", "user_ns"}

// credFieldsApart reports whether the kernel's struct cred does not hold
// credSpanFields in that span, so that each must be read on its own
// (cred_fields_apart). Every kernel Debian builds keeps them together, in
// include/linux/cred.h's order; a kernel built with CONFIG_RANDSTRUCT
// shuffles struct cred per build, and reading the span there would take the
// wrong bytes.
func credFieldsApart(kernel *btf.Spec) (bool, error) {
	var cred *btf.Struct
	if err := kernel.TypeByName("cred", &cred); err != nil {
		return false, fmt.Errorf("kernel %s has no struct cred in its BTF: %w", KernelRelease(), err)
	}
	offsets := map[string]uint32{}
	for _, m := range cred.Members {
		offsets[m.Name] = m.Offset.Bytes()
	}
	base := offsets["uid"] &^ 7
	for _, name := range credSpanFields {
		off, ok := offsets[name]
		if !ok {
			return false, fmt.Errorf("kernel %s: struct cred has no field %s, which capprof reads", KernelRelease(), name)
		}
		if off < base || off+8 > base+uint32(capprofCredSpanCRED_SPAN_MAX) {
			return true, nil
		}
	}
	return false, nil
}
