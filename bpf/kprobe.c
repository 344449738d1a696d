//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * --probe kprobe: kprobe/kretprobe on cap_capable and a kprobe on
 * commit_creds, for kernels that have kprobes but refuse BPF trampolines.
 */

#include "check.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * kprobe backend: the kprobe on cap_capable() keeps its arguments in the
 * task's storage, and the kretprobe, which sees only the return value,
 * takes them back. cap_capable() neither sleeps nor recurses, so one slot per
 * task is enough; a check that interrupts another (from an interrupt) is
 * lost to kprobe recursion protection anyway.
 */
struct cap_call {
	__u64 cred;      /* the address: compared with the task's, read only by probe */
	__u64 target_ns; /* the address, read only by probe */
	int target_level;
	int cap;
	__u32 opts;
	__u32 active;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cap_call);
} cap_calls SEC(".maps");

SEC("kprobe/cap_capable")
int BPF_KPROBE(on_cap_capable_entry, const struct cred *cred, struct user_namespace *target_ns, int cap,
	       unsigned int opts)
{
	__u64 cgroup_id;

	if (!target_cgroup(&cgroup_id))
		return 0;
	struct cap_call *call = bpf_task_storage_get(&cap_calls, bpf_get_current_task_btf(), 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!call) {
		count_stat(STAT_AGG_FULL);
		return 0;
	}
	call->cred = (__u64)cred;
	call->target_ns = (__u64)target_ns;
	call->target_level = BPF_CORE_READ(target_ns, level);
	call->cap = cap;
	call->opts = opts;
	call->active = 1;
	return 0;
}

SEC("kretprobe/cap_capable")
int BPF_KRETPROBE(on_cap_capable_return, int ret)
{
	__u64 cgroup_id;
	struct target *target = target_cgroup(&cgroup_id);

	if (!target)
		return 0;
	struct cap_call *call = bpf_task_storage_get(&cap_calls, bpf_get_current_task_btf(), 0, 0);
	if (!call || !call->active)
		return 0;
	call->active = 0;
	handle_check(ctx, target, cgroup_id, (const struct cred *)call->cred,
		     (const struct user_namespace *)call->target_ns, call->target_level, call->cap, ret,
		     audit_flags(call->opts));
	return 0;
}

SEC("kprobe/commit_creds")
int BPF_KPROBE(on_commit_creds_kprobe, struct cred *new)
{
	report_commit(new);
	return 0;
}
