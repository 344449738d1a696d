package bpf

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// credBTF is kernel BTF holding only a struct cred with fields at these
// byte offsets.
func credBTF(t *testing.T, offsets map[string]uint32) *btf.Spec {
	t.Helper()
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	var members []btf.Member
	for _, name := range slices.Sorted(maps.Keys(offsets)) {
		members = append(members, btf.Member{Name: name, Type: u32, Offset: btf.Bits(offsets[name] * 8)})
	}
	return kernelBTF(t, &btf.Struct{Name: "cred", Size: 256, Members: members})
}

// TestCredFieldsApart: struct cred as include/linux/cred.h lays it out is
// read in one span; one whose fields a randomized layout spread or put
// before uid is read field by field.
func TestCredFieldsApart(t *testing.T) {
	usual := map[string]uint32{"usage": 0}
	for i, name := range credSpanFields[:8] {
		usual[name] = 4 + 4*uint32(i)
	}
	for i, name := range credSpanFields[8:13] {
		usual[name] = 40 + 8*uint32(i)
	}
	usual["user_ns"] = 156
	reversed := map[string]uint32{}
	for i, name := range credSpanFields {
		reversed[name] = 8 * uint32(len(credSpanFields)-i)
	}
	spread := map[string]uint32{}
	for name, off := range usual {
		spread[name] = off
	}
	spread["cap_ambient"] = 240
	missing := map[string]uint32{}
	for name, off := range usual {
		if name != "cap_ambient" {
			missing[name] = off
		}
	}
	for _, tc := range []struct {
		name    string
		offsets map[string]uint32
		apart   bool
		err     string
	}{
		{"include/linux/cred.h", usual, false, ""},
		{"uid last", reversed, true, ""},
		{"a capability set 236 bytes past uid", spread, true, ""},
		{"no cap_ambient", missing, false, "struct cred has no field cap_ambient, which capprof reads"},
	} {
		apart, err := credFieldsApart(credBTF(t, tc.offsets))
		if tc.err != "" {
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.err)) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || apart != tc.apart {
			t.Errorf("%s: credFieldsApart = %v, %v; want %v", tc.name, apart, err, tc.apart)
		}
	}
	if kernel, err := kernelSpec(); err == nil {
		apart, err := credFieldsApart(kernel)
		t.Logf("kernel %s: struct cred read apart: %v, %v", KernelRelease(), apart, err)
		if err != nil {
			t.Error(err)
		}
	}
}

// TestReadCredsBothWays: the credentials of an exec read in one span and
// read field by field are the same, and what the process was given.
func TestReadCredsBothWays(t *testing.T) {
	needRoot(t)
	const uid, gid, capNetBindService = 1234, 2345, 10
	var got []Creds
	for _, apart := range []bool{false, true} {
		p, err := Open(Options{Startup: time.Second, Backend: Auto, credFieldsApart: apart})
		if err != nil {
			t.Fatal(err)
		}
		cg := filepath.Join(cgroup2Root(t), fmt.Sprintf("capprof-bpf-creds-%d-%v", os.Getpid(), apart))
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Fatal(err)
		}
		dir, err := os.Open(cg)
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		if _, err := p.AddTarget(st.Ino, Target{}); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{
			UseCgroupFD: true, CgroupFD: int(dir.Fd()),
			Credential:  &syscall.Credential{Uid: uid, Gid: gid, NoSetGroups: true},
			AmbientCaps: []uintptr{capNetBindService},
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("/bin/true: %v\n%s", err, out)
		}
		dir.Close()
		os.Remove(cg)
		var exec *Exec
		for exec == nil {
			ev, err := p.ReadEvent()
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := ev.(*Exec); ok && e.CgroupID == st.Ino {
				exec = e
			}
		}
		p.Close()
		c := exec.After
		const caps = 1 << capNetBindService
		if c.UID != uid || c.EUID != uid || c.SUID != uid || c.FSUID != uid || c.GID != gid || c.EGID != gid ||
			c.SGID != gid || c.FSGID != gid || c.Permitted != caps || c.Effective != caps || c.Ambient != caps ||
			c.Inheritable&caps == 0 || c.Bounding&caps == 0 || c.UserNSLevel != 0 || c.UserNSInode == 0 {
			t.Errorf("read apart %v: credentials %+v, want uid %d, gid %d, capability set %#x", apart, c, uid, gid, caps)
		}
		got = append(got, c)
	}
	if got[0] != got[1] {
		t.Errorf("credentials in one span %+v, field by field %+v", got[0], got[1])
	}
}
