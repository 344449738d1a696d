/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Live events (record --events): what they show of a process beyond what
 * the profile needs, and capability checks streamed one by one.
 */
#ifndef CAPPROF_LIVE_H
#define CAPPROF_LIVE_H

#include "output.h"
#include "path.h"

/*
 * Set by user space when live events are asked for (record --events):
 * capability checks then also go to live_events, one per
 * check_event_interval_ns per (exec, capability, verdict) (0: every check),
 * and execs carry their arguments, cwd, namespaces and login uid. Off, the
 * verifier drops that code as dead, so a recording without live events pays
 * nothing for them.
 */
volatile const __u8 stream_events = 0;
volatile const __u64 check_event_interval_ns = 0;

/* The task's namespaces, by inode number; see enum ns_index. */
static __always_inline void read_namespaces(struct task_struct *task, __u32 *ns)
{
	struct nsproxy *nsp = BPF_CORE_READ(task, nsproxy);

	if (!nsp) /* an exiting task: exit_task_namespaces() has run */
		return;
	ns[NS_UTS] = BPF_CORE_READ(nsp, uts_ns, ns.inum);
	ns[NS_IPC] = BPF_CORE_READ(nsp, ipc_ns, ns.inum);
	ns[NS_MNT] = BPF_CORE_READ(nsp, mnt_ns, ns.inum);
	ns[NS_PID_FOR_CHILDREN] = BPF_CORE_READ(nsp, pid_ns_for_children, ns.inum);
	ns[NS_NET] = BPF_CORE_READ(nsp, net_ns, ns.inum);
	if (bpf_core_field_exists(nsp->time_ns)) {
		ns[NS_TIME] = BPF_CORE_READ(nsp, time_ns, ns.inum);
		ns[NS_TIME_FOR_CHILDREN] = BPF_CORE_READ(nsp, time_ns_for_children, ns.inum);
	}
	ns[NS_CGROUP] = BPF_CORE_READ(nsp, cgroup_ns, ns.inum);
	/* The task's own pid namespace (task_active_pid_ns): thread_pid's
	 * numbers[level].ns, numbers being a flexible array. */
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	__u32 level = BPF_CORE_READ(pid, level);
	struct pid_namespace *pidns = NULL;
	bpf_probe_read_kernel(&pidns, sizeof(pidns),
			      (void *)pid + bpf_core_field_offset(struct pid, numbers) +
				      (level & 63) * bpf_core_type_size(struct upid) + bpf_core_field_offset(struct upid, ns));
	ns[NS_PID] = BPF_CORE_READ(pidns, ns.inum);
}

/*
 * What live events show of a process beyond what the profile needs: its
 * arguments (argv as the new program received it, read from its stack; a
 * task iterator cannot read another process's memory, so user space takes
 * them from /proc for EXEC_EXISTING), cwd, login uid and namespaces.
 */
static __always_inline void read_exec_details(struct exec_event *e, struct task_struct *task, bool own_memory)
{
	e->flags |= EXEC_DETAILS;
	e->loginuid = (__u32)-1;
	if (bpf_core_field_exists(task->loginuid))
		e->loginuid = BPF_CORE_READ(task, loginuid.val);
	__builtin_memset(e->ns, 0, sizeof(e->ns));
	read_namespaces(task, e->ns);
	e->args_len = 0;
	if (own_memory) {
		unsigned long start = BPF_CORE_READ(task, mm, arg_start);
		unsigned long len = BPF_CORE_READ(task, mm, arg_end) - start;
		if (len > ARGS_LEN) {
			len = ARGS_LEN;
			e->flags |= EXEC_ARGS_TRUNCATED;
		}
		if (bpf_probe_read_user(e->args, len, (void *)start) == 0)
			e->args_len = len;
	}
	read_path(task, BPF_CORE_READ(task, fs, pwd.dentry), BPF_CORE_READ(task, fs, pwd.mnt), &e->cwd);
}

/*
 * Live events: a check goes to live_events unless one of the same (exec,
 * capability, verdict) went less than check_event_interval_ns ago; then it
 * is only counted in check_rates, and the next event (or user space, when
 * the exec ends) reports how many were held back. Every check is counted in
 * `checks` all the same, so the profile stays exact.
 */
static __always_inline void stream_check(void *ctx, struct task_struct *task, const struct agg_key *key,
					 const struct user_namespace *target_ns, int ret)
{
	__u64 now = bpf_ktime_get_ns(), suppressed = 0;

	if (check_event_interval_ns) {
		struct rate_key rk = {
			.start_ns = task->group_leader->start_time,
			.tgid = task->tgid,
			.exec_seq = task->self_exec_id,
			.cap = key->cap,
			.denied = key->denied,
		};
		struct rate_state *st = bpf_map_lookup_elem(&check_rates, &rk);
		if (st) {
			if (now - st->last_ns < check_event_interval_ns) {
				__sync_fetch_and_add(&st->suppressed, 1);
				return;
			}
			st->last_ns = now;
			suppressed = __sync_lock_test_and_set(&st->suppressed, 0);
		} else {
			struct rate_state fresh = {.last_ns = now};
			/* -EEXIST: another CPU's check of the key came first, and
			 * this one is sent too rather than lost to the race. */
			long err = bpf_map_update_elem(&check_rates, &rk, &fresh, BPF_NOEXIST);
			if (err && err != -EEXIST) {
				count_stat(STAT_LIVE_DROPS);
				return;
			}
		}
	}
	struct check_event *e = bpf_ringbuf_reserve(&live_events, sizeof(*e), 0);
	if (!e) {
		count_stat(STAT_LIVE_DROPS);
		return;
	}
	fill_header(&e->hdr, EVENT_CHECK, key->cgroup_id, task);
	e->hdr.ktime_ns = now;
	e->key = *key;
	e->suppressed = suppressed;
	e->ret = ret;
	e->userns_inum = BPF_CORE_READ(target_ns, ns.inum);
	e->userns_owner = BPF_CORE_READ(target_ns, owner.val);
	e->userns_group = BPF_CORE_READ(target_ns, group.val);
	e->userns_level = BPF_CORE_READ(target_ns, level);
	e->stack_bytes = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	bpf_ringbuf_submit(e, wakeup_flag_of(&live_events));
}

#endif /* CAPPROF_LIVE_H */
