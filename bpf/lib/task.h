/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What capprof keeps per thread (task_state in maps.h) and whether a task
 * is the container runtime's.
 */
#ifndef CAPPROF_TASK_H
#define CAPPROF_TASK_H

#include "output.h"

/*
 * The state that says whether task is the container runtime's: its own, or,
 * for a thread that has none, its thread group leader's. cgroup_attach_task
 * fires once for a thread group that moves, with its leader, so a runtime
 * process moved in with threads already running has them marked through
 * the leader: runc 1.4+'s exec process, whose Go runtime runs its threads
 * by the time runc writes its pid to cgroup.procs.
 */
static __always_inline struct task_state *runtime_state(struct task_struct *task, struct task_state *ts)
{
	struct task_struct *leader = task->group_leader;

	if (ts || leader == task)
		return ts;
	return bpf_task_storage_get(&task_state, leader, 0, 0);
}

/* ts belongs to the container runtime, whose root is runtime_root (see task_state). */
static __always_inline void set_runtime(struct task_state *ts, __u64 runtime_root)
{
	ts->runtime_init = 1;
	ts->runtime_root = runtime_root;
}

/* The task's state, created when missing (NULL when that failed: the task
 * storage busy on this CPU, or no memory); a new one of a thread starts as
 * its leader's runtime (see runtime_state). */
static __always_inline struct task_state *make_task_state(struct task_struct *task)
{
	struct task_state *ts = bpf_task_storage_get(&task_state, task, 0, 0);

	if (ts)
		return ts;
	ts = bpf_task_storage_get(&task_state, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!ts)
		return NULL;
	struct task_state *leader = runtime_state(task, NULL);
	if (leader && leader->runtime_init)
		set_runtime(ts, leader->runtime_root);
	return ts;
}

/* make_task_state for a task whose credentials or runtime mark are to be
 * followed: a failure is counted, as what it would have held is lost. */
static __always_inline struct task_state *get_task_state(struct task_struct *task)
{
	struct task_state *ts = make_task_state(task);

	if (!ts)
		count_stat(STAT_PENDING_FULL);
	return ts;
}

/* task belongs to the container runtime, whose root is runtime_root (see
 * task_state); its state, NULL when it could not be created. */
static __always_inline struct task_state *mark_runtime_init(struct task_struct *task, __u64 runtime_root)
{
	struct task_state *ts = get_task_state(task);

	if (ts)
		set_runtime(ts, runtime_root);
	return ts;
}

static __always_inline __u64 root_of(struct task_struct *task)
{
	return (__u64)BPF_CORE_READ(task, fs, root.dentry);
}

#endif /* CAPPROF_TASK_H */
