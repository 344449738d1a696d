package recorder

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
)

// kallsymsPath is where the kernel lists its symbols.
const kallsymsPath = "/proc/kallsyms"

// checkKernelSymbols says why the kernel's symbols cannot resolve call
// stacks: the file cannot be read, or shows every address as zero
// (kernel.kptr_restrict=2, or a process without CAP_SYSLOG, as in a
// container that lacks it).
func checkKernelSymbols(path string) error {
	found := false
	// The first text symbol settles it: every start reads a page, not the
	// whole file (tens of milliseconds of the kernel's time).
	err := scanTextSymbols(path, func(uint64, []byte) bool { found = true; return false })
	switch {
	case err != nil:
		return err
	case !found:
		return noAddresses(path)
	}
	return nil
}

func noAddresses(path string) error {
	return fmt.Errorf("%s shows no addresses (kernel.kptr_restrict, or no CAP_SYSLOG)", path)
}

// symbolCache names kernel return addresses: the function each returns
// into, "" when none is known. The call sites of a recording are a few
// hundred addresses, while one naming reads /proc/kallsyms twice (~120,000
// lines, ~0.15 s of CPU on the development VM); the agent names its
// stacks at every flush, so an address is looked up once.
type symbolCache map[uint64]string

// name looks up, in the kallsyms file at path, the addresses of
// returnAddrs not named yet. When the file cannot tell, they stay unnamed
// ("") for good: it is not read again for them.
func (c symbolCache) name(path string, returnAddrs []uint64) error {
	var missing []uint64
	for _, addr := range returnAddrs {
		if _, known := c[addr]; !known {
			missing = append(missing, addr)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	ks, err := loadKernelSymbols(path, missing)
	for _, addr := range missing {
		c[addr] = ks.function(addr)
	}
	return err
}

// kernelSymbols resolves kernel text addresses to function names.
type kernelSymbols struct {
	addrs []uint64 // function start addresses, sorted
	names []string
}

// loadKernelSymbols resolves the return addresses of the recorded stacks
// with the text symbols of /proc/kallsyms. As root with kptr_restrict < 2 the
// addresses are real; otherwise they read as zero and every lookup fails,
// which the caller reports as an unknown call site.
//
// The file holds ~120,000 symbols; keeping them all as strings measured
// ~15 MB of heap at the end of a recording. Instead the first pass keeps
// only the start addresses, which find the function of every return
// address, and the second pass keeps the names of just those functions.
func loadKernelSymbols(path string, returnAddrs []uint64) (*kernelSymbols, error) {
	var starts []uint64
	if err := scanTextSymbols(path, func(addr uint64, _ []byte) bool { starts = append(starts, addr); return true }); err != nil {
		return nil, err
	}
	if len(starts) == 0 {
		return nil, noAddresses(path)
	}
	slices.Sort(starts)
	wanted := map[uint64]string{}
	for _, ra := range returnAddrs {
		if i, ok := containing(starts, ra); ok {
			wanted[starts[i]] = ""
		}
	}
	if err := scanTextSymbols(path, func(addr uint64, name []byte) bool {
		if n, ok := wanted[addr]; ok && n == "" {
			wanted[addr] = string(name)
		}
		return true
	}); err != nil {
		return nil, err
	}
	ks := &kernelSymbols{}
	for _, a := range slices.Sorted(maps.Keys(wanted)) {
		ks.addrs = append(ks.addrs, a)
		ks.names = append(ks.names, wanted[a])
	}
	return ks, nil
}

// scanTextSymbols calls fn with the address and name of each text symbol
// ("t" or "T") with a non-zero address, until fn returns false; name is
// valid only during the call.
func scanTextSymbols(path string, fn func(addr uint64, name []byte) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ffffffff81368210 T capable" or "... t name\t[module]"
		addrField, rest, ok := bytes.Cut(sc.Bytes(), []byte{' '})
		if !ok || len(rest) < 3 || (rest[0] != 't' && rest[0] != 'T') || rest[1] != ' ' {
			continue
		}
		name, _, _ := bytes.Cut(rest[2:], []byte{'\t'})
		addr, err := strconv.ParseUint(string(addrField), 16, 64)
		if err != nil || addr == 0 {
			continue
		}
		if !fn(addr, name) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read kernel symbols: %w", err)
	}
	return nil
}

// function returns the function containing a return address, or "" (also
// without symbols: nil).
func (ks *kernelSymbols) function(returnAddr uint64) string {
	if ks == nil {
		return ""
	}
	if i, ok := containing(ks.addrs, returnAddr); ok {
		return ks.names[i]
	}
	return ""
}

// containing finds in sorted function starts the function a return address
// was called from: the return address points after the call, so the caller
// is the last function starting at or before the byte before it.
func containing(starts []uint64, returnAddr uint64) (int, bool) {
	i, found := slices.BinarySearch(starts, returnAddr-1)
	if found {
		return i, true
	}
	return i - 1, i > 0
}
