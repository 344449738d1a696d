// Package kernels runs capprof's privileged tests on other kernels: Debian's
// cloud kernels 6.1 and 6.12 (bookworm) and 7.x (trixie-backports), booted
// under qemu with an initramfs that holds busybox, capprof, the test
// binaries and the accuracy corpus. Its test, TestKernelMatrix, decides
// pass or fail from the guests' console output.
package kernels

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// initramfs writes a cpio archive in the "newc" format the kernel unpacks
// into its initial root file system (Documentation/driver-api/early-userspace).
type initramfs struct {
	w    *bufio.Writer
	ino  uint32
	have map[string]bool // paths written, directories included
	err  error
}

func newInitramfs(w io.Writer) *initramfs {
	return &initramfs{w: bufio.NewWriterSize(w, 1<<20), have: map[string]bool{}}
}

// header writes one entry's header and name, padded to 4 bytes.
func (r *initramfs) header(name string, mode uint32, size int64) {
	if r.err != nil {
		return
	}
	r.ino++
	name = strings.TrimPrefix(name, "/")
	_, r.err = fmt.Fprintf(r.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\x00",
		r.ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0, name)
	r.pad(110 + len(name) + 1)
}

func (r *initramfs) pad(n int) {
	if r.err == nil && n%4 != 0 {
		_, r.err = r.w.Write(make([]byte, 4-n%4))
	}
}

// dir creates a directory and its parents.
func (r *initramfs) dir(p string) {
	p = path.Clean("/" + p)
	if p == "/" || r.have[p] {
		return
	}
	r.dir(path.Dir(p))
	r.have[p] = true
	r.header(p, 0o040755, 0)
}

// file writes a regular file with its parents.
func (r *initramfs) file(p string, mode uint32, data []byte) {
	r.dir(path.Dir(p))
	r.have[path.Clean("/"+p)] = true
	r.header(p, 0o100000|mode, int64(len(data)))
	if r.err == nil {
		_, r.err = r.w.Write(data)
	}
	r.pad(len(data))
}

// copyFile writes the host file src (symlinks followed) as p.
func (r *initramfs) copyFile(p, src string) {
	if r.err != nil {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		r.err = err
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		r.err = err
		return
	}
	r.dir(path.Dir(p))
	r.have[path.Clean("/"+p)] = true
	r.header(p, 0o100000|uint32(st.Mode().Perm()), st.Size())
	if r.err == nil {
		_, r.err = io.CopyN(r.w, f, st.Size())
	}
	r.pad(int(st.Size() % 4))
}

// symlink writes a symbolic link.
func (r *initramfs) symlink(p, target string) {
	r.dir(path.Dir(p))
	r.have[path.Clean("/"+p)] = true
	r.header(p, 0o120777, int64(len(target)))
	if r.err == nil {
		_, r.err = r.w.WriteString(target)
	}
	r.pad(len(target))
}

// executable copies a host executable to p and, when it is dynamically
// linked, its interpreter and libraries to the same paths (found by ldd).
func (r *initramfs) executable(p, src string) {
	if r.err != nil {
		return
	}
	r.copyFile(p, src)
	libs, err := sharedLibraries(src)
	if err != nil {
		r.err = err
		return
	}
	for _, lib := range libs {
		if !r.have[lib] {
			r.copyFile(lib, lib)
		}
	}
}

// lddPath matches the library paths ldd prints: "libc.so.6 => /lib/... (0x..)"
// and "/lib64/ld-linux-x86-64.so.2 (0x...)".
var lddPath = regexp.MustCompile(`(?m)(?:=> |^\s+)(/\S+) \(0x`)

func sharedLibraries(bin string) ([]string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bin, err)
	}
	defer f.Close()
	dynamic := false
	for _, prog := range f.Progs {
		dynamic = dynamic || prog.Type == elf.PT_INTERP
	}
	if !dynamic {
		return nil, nil
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
		libs = append(libs, filepath.Clean(m[1]))
	}
	return libs, nil
}

// close writes the trailer and flushes.
func (r *initramfs) close() error {
	r.header("TRAILER!!!", 0, 0)
	if r.err != nil {
		return r.err
	}
	return r.w.Flush()
}
