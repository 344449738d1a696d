package recorder

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// kernelSymbols resolves kernel text addresses to function names.
type kernelSymbols struct {
	addrs []uint64
	names []string
}

// loadKernelSymbols reads the text symbols of /proc/kallsyms. As root with
// kptr_restrict < 2 the addresses are real; otherwise they read as zero and
// every lookup fails, which the caller reports as an unknown call site.
func loadKernelSymbols(path string) (*kernelSymbols, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	type sym struct {
		addr uint64
		name string
	}
	var syms []sym
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || (fields[1] != "t" && fields[1] != "T") {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil || addr == 0 {
			continue
		}
		syms = append(syms, sym{addr, fields[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	sort.Slice(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	ks := &kernelSymbols{addrs: make([]uint64, len(syms)), names: make([]string, len(syms))}
	for i, s := range syms {
		ks.addrs[i], ks.names[i] = s.addr, s.name
	}
	return ks, nil
}

// function returns the function containing a return address, or "".
func (ks *kernelSymbols) function(returnAddr uint64) string {
	// A return address points after the call; step back into the caller.
	addr := returnAddr - 1
	i := sort.Search(len(ks.addrs), func(i int) bool { return ks.addrs[i] > addr })
	if i == 0 {
		return ""
	}
	return ks.names[i-1]
}
