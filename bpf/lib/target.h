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

#endif /* CAPPROF_TARGET_H */
