package recorder

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/api/v1alpha1"
)

// Restriction is what a Kubernetes securityContext with
// capabilities {drop: [ALL], add: Capabilities} gives a container's root
// process: the capability bounding set, permitted and effective sets are
// exactly Capabilities, the inheritable and ambient sets are empty, and
// with allowPrivilegeEscalation: false, no_new_privs is set.
type Restriction struct {
	Capabilities v1alpha1.CapSet
	NoNewPrivs   bool
}

// String is how progress lines name it: "CHOWN,SETUID" or "no capabilities".
func (r Restriction) String() string { return r.Capabilities.KubernetesList() }

// restrictThread applies r to the calling thread, whose credentials the
// command it forks inherits: capabilities, the bounding set and
// no_new_privs are per thread in Linux. The thread must be locked and never
// unlocked: the Go runtime then ends it when its goroutine returns, and
// never runs other goroutines on it or clones new threads from it.
//
// execve as root (uid 0, no SECBIT_NOROOT) grants the bounding set as
// permitted and effective (security/commoncap.c handle_privileged_root),
// so the bounding set is what limits the command; capset sets the same
// sets for the thread so nothing else it does has more.
func restrictThread(r Restriction) error {
	last, err := lastCapability()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if !r.Capabilities.Has(v1alpha1.Capability(c)) {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("drop %s from the bounding set: %w", v1alpha1.Capability(c), err)
			}
		}
	}
	// Ambient capabilities, Linux 4.3; EINVAL before.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear the ambient capabilities: %w", err)
	}
	header := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&header, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for i := range data {
		keep := uint32(r.Capabilities >> (32 * i))
		data[i].Permitted &= keep
		data[i].Effective = data[i].Permitted
		data[i].Inheritable = 0
	}
	if err := unix.Capset(&header, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if r.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	return nil
}

// lastCapability is the kernel's highest capability number.
func lastCapability() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read the kernel's last capability: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("/proc/sys/kernel/cap_last_cap: %q is no capability number", strings.TrimSpace(string(b)))
	}
	return n, nil
}
