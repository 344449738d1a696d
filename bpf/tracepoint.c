//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * --probe tracepoint (Linux 6.14+): the capability:cap_capable tracepoint,
 * with credential changes found by comparison at the hooks capprof already
 * runs (see look_at_creds in lib/cred.h), so no syscall is hooked.
 */

#include "check.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * tracepoint backend. The hot path: runs for every capability check on the
 * node; a task outside the target set leaves after the pre-filter. Tracked
 * checks are read through BTF pointers (plain loads, no probe_read helper
 * calls).
 */
SEC("tp_btf/cap_capable")
int BPF_PROG(on_cap_capable, const struct cred *cred, struct user_namespace *target_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	__u64 cgroup_id;
	struct target *target = target_cgroup(&cgroup_id);

	if (target)
		handle_check(ctx, target, cgroup_id, cred, target_ns, target_ns->level, cap, ret, 0);
	return 0;
}

/*
 * tracepoint backend: sched_prepare_exec (Linux 6.10+) fires at the start of
 * begin_new_exec(), past the point where an exec can fail for a missing or
 * unreadable file and before commit_creds(bprm->cred): the credentials the
 * exec started with are still the task's.
 */
SEC("tp_btf/sched_prepare_exec")
int BPF_PROG(on_prepare_exec, struct task_struct *task, struct linux_binprm *bprm)
{
	__u64 cgroup_id;

	if (!target_cgroup(&cgroup_id))
		return 0;
	struct task_state *ts = get_task_state(task);
	if (ts) {
		look_at_creds(task, ts, cgroup_id);
		ts->exec = 1;
		ts->from_commit = 0;
	}
	return 0;
}
