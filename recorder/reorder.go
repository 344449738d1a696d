package recorder

import (
	"container/heap"
	"time"

	"github.com/capprof/capprof/bpf"
)

// reorderBuffer holds live events until they can be released in kernel time
// order: checks come through their own ring buffer, and an exec, its checks
// and its exit must be written in the order they happened.
type reorderBuffer struct{ pending eventHeap }

func (b *reorderBuffer) push(ev bpf.Event) { heap.Push(&b.pending, ev) }

// pop takes the oldest event if it is older than before (any, when -1).
func (b *reorderBuffer) pop(before time.Duration) (bpf.Event, bool) {
	if b.pending.Len() == 0 || before >= 0 && b.pending[0].EventHeader().Time >= before {
		return nil, false
	}
	return heap.Pop(&b.pending).(bpf.Event), true
}

// takeExec takes the pending exec of key out of order, for an event of that
// exec released before it: an exec makes checks in its new program before
// sched_process_exec reports it.
func (b *reorderBuffer) takeExec(key bpf.ExecKey) *bpf.Exec {
	for i, pending := range b.pending {
		if e, ok := pending.(*bpf.Exec); ok && e.Exec == key {
			heap.Remove(&b.pending, i)
			return e
		}
	}
	return nil
}

// checks are the pending check events older than before (all, when -1).
func (b *reorderBuffer) checks(before time.Duration) []*bpf.LiveCheck {
	var out []*bpf.LiveCheck
	for _, ev := range b.pending {
		if c, ok := ev.(*bpf.LiveCheck); ok && (before < 0 || c.Time < before) {
			out = append(out, c)
		}
	}
	return out
}

// eventHeap orders events by kernel time.
type eventHeap []bpf.Event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].EventHeader().Time < h[j].EventHeader().Time }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(bpf.Event)) }
func (h *eventHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
