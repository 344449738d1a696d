/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Records to user space: the event ring buffer, loss counters and the
 * per-CPU scratch values events are built in.
 */
#ifndef CAPPROF_OUTPUT_H
#define CAPPROF_OUTPUT_H

#include "maps.h"

static __always_inline void count_stat(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		(*value)++;
}

/*
 * Events that carry a path are built in a per-CPU scratch value and copied
 * with bpf_ringbuf_output: bpf_loop's callback may write into a map value,
 * not into reserved ring-buffer memory.
 */
static __always_inline void *scratch(void *map)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(map, &zero);
}

/*
 * Wake the reader only once the ring buffer holds WAKEUP_BYTES; below that it
 * finds the events when it polls (every 100 ms, bpf.pollInterval). Each
 * wakeup is an irq_work, i.e. a self-IPI, which measured 10-18 us per event
 * in a VM (make bench, fork+exec workload) against ~0.2 us without.
 */
#define WAKEUP_BYTES (256 << 10)

static __always_inline __u64 wakeup_flag_of(void *ringbuf)
{
	return bpf_ringbuf_query(ringbuf, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 wakeup_flag(void)
{
	return wakeup_flag_of(&events);
}

static __always_inline void output(void *event, __u64 size)
{
	if (bpf_ringbuf_output(&events, event, size, wakeup_flag()))
		count_stat(STAT_RINGBUF_DROPS);
}

/* The header of an event about task (the current one, but for the task iterator). */
static __always_inline void fill_header(struct event_header *hdr, __u32 type, __u64 cgroup_id,
					struct task_struct *task)
{
	hdr->type = type;
	hdr->pid = BPF_CORE_READ(task, pid);
	hdr->tgid = BPF_CORE_READ(task, tgid);
	hdr->exec_seq = BPF_CORE_READ(task, self_exec_id);
	hdr->cgroup_id = cgroup_id;
	hdr->ktime_ns = bpf_ktime_get_ns();
	hdr->start_ns = BPF_CORE_READ(task, group_leader, start_time);
	bpf_probe_read_kernel_str(hdr->comm, sizeof(hdr->comm), task->comm);
}

#endif /* CAPPROF_OUTPUT_H */
