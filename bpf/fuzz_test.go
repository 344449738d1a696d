package bpf

import (
	"testing"
)

// FuzzDecodeEvent decodes any bytes as a ring-buffer record: an event or
// an error (which the recorder counts and reads past), never a panic.
func FuzzDecodeEvent(f *testing.F) {
	var exec capprofExecEvent
	exec.Hdr.Type = uint32(capprofEventTypeEVENT_EXEC)
	exec.Exe.Depth = 3
	var cg capprofCgroupEvent
	cg.Hdr.Type = uint32(capprofEventTypeEVENT_CGROUP)
	for _, raw := range []any{&exec, &cg} {
		f.Add(encode(f, raw))
	}
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := decodeEvent(raw)
		if err == nil && ev == nil {
			t.Fatal("no event and no error")
		}
	})
}
