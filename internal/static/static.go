// Package static tells whether an executable is statically linked, for
// tests that run one where it finds no libraries: a container image of
// their own, a chroot.
package static

import (
	"debug/elf"
	"fmt"
)

// Check returns why the executable at path is not statically linked, or nil.
func Check(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}
