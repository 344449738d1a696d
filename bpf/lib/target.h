/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Whether a task is in the target set: its cgroup2 id, the pre-filter and
 * the exact lookup.
 */
#ifndef CAPPROF_TARGET_H
#define CAPPROF_TARGET_H

#include "maps.h"

static __always_inline struct target *lookup_target(__u64 *cgroup_id)
{
	if (!target_filter[*cgroup_id % TARGET_FILTER_SLOTS])
		return NULL;
	return bpf_map_lookup_elem(&targets, cgroup_id);
}

/*
 * The current task's cgroup2 id, read through BTF pointers: plain loads,
 * where bpf_get_current_cgroup_id() is a helper call with an RCU read
 * section, which measured ~25 ns more per run on the 6.18 development VM
 * (make bench's on_cap_capable figure, untracked).
 */
static __always_inline __u64 current_cgroup_id(void)
{
	return bpf_get_current_task_btf()->cgroups->dfl_cgrp->kn->id;
}

static __always_inline struct target *target_cgroup(__u64 *cgroup_id)
{
	*cgroup_id = current_cgroup_id();
	return lookup_target(cgroup_id);
}

/*
 * The target id, when it is a pod's (TARGET_RUNTIME) and the current task,
 * outside the target set, is moving a task into it: the runtime (runc 1.1
 * writing cgroup.procs, systemd); NULL otherwise.
 */
static __always_inline struct target *entered_by_runtime(__u64 *id)
{
	struct target *target = lookup_target(id);
	__u64 mover;

	if (!target || !(target->flags & TARGET_RUNTIME) || target_cgroup(&mover))
		return NULL;
	return target;
}

/*
 * How long a target counts as being entered by the runtime after
 * on_cgroup_populated saw it begin, should the report of the move never come:
 * far longer than a migration takes (microseconds), short against a
 * workload's life.
 */
#define ENTERING_WINDOW_NS (250 * 1000 * 1000ULL)

/*
 * The runtime is moving the first task into target from outside the target
 * set and the move has not been reported yet (on_cgroup_attach, or on_fork
 * for clone3(CLONE_INTO_CGROUP)), so every task in it is the runtime's. The
 * kernel reports a move only after the task is in its new cgroup, running
 * meanwhile on another CPU: runc 1.1's init (Debian 12's runc), moved
 * in while it makes a sealed copy of its own binary (try_bindfd: mount, open, umount2,
 * unlink), had a DAC_READ_SEARCH check of that counted as the workload's.
 */
static __always_inline bool runtime_entering(const struct target *target)
{
	__u64 since = target->entering_ns;

	return since && bpf_ktime_get_ns() - since < ENTERING_WINDOW_NS;
}

#endif /* CAPPROF_TARGET_H */
