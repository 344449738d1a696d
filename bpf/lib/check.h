/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A capability check of a task in the target set, whatever backend saw it:
 * counted, sampled, streamed, and followed to its syscall's return when
 * denied.
 */
#ifndef CAPPROF_CHECK_H
#define CAPPROF_CHECK_H

#include "target.h"
#include "cred.h"
#include "live.h"
#include "pending.h"

/*
 * Set by user space from the kernel's BTF: cap_capable()'s fourth argument is
 * "unsigned int opts" (CAP_OPT_* bits) since Linux 5.1 (commit c1a85a00ea66)
 * and "int audit" (SECURITY_CAP_AUDIT = 1, SECURITY_CAP_NOAUDIT = 0) before.
 */
volatile const __u8 cap_capable_audit_arg = 0;

/*
 * Set by user space (--startup): how long after its start (started_ns) a
 * target's checks are in the startup phase. The check that finds the window
 * passed moves the target to steady state itself. User space once did it
 * every 100 ms by iterating the targets map, but a map syscall holds the
 * CPU's bpf_prog_active while it runs, and a kprobe program finding it held
 * does not run (trace_call_bpf): a recorder preempted inside one, which
 * Linux 7.x's lazy preemption makes frequent on one CPU, lost every check
 * the workload made in its time slice (seen as 1-37 of 20000 in the kernel
 * matrix). The clock is read only during startup windows.
 */
volatile const __u64 startup_window_ns = 0;

/* include/linux/security.h */
#define CAP_OPT_NOAUDIT (1 << 1)
#define CAP_OPT_INSETID (1 << 2)

/*
 * Run a BPF callback as task_work in the given task, here at its next return
 * to user space (kernel/bpf/helpers.c). Linux 6.18 has it as ..._impl with
 * a void *aux__prog argument the verifier fills in; 6.19+ as the plain name
 * with that argument implicit (KF_IMPLICIT_ARGS), its _impl twin taking a
 * struct bpf_prog_aux *. Both are weak: older kernels load the programs
 * without them and leave outcomes unknown. A kernel whose prototype differs
 * from the one declared here (7.x's _impl) has the declaration fitted by
 * user space before loading (fitKfuncs in probe.go).
 */
typedef int (*task_work_callback)(struct bpf_map *map, void *key, void *value);

extern int bpf_task_work_schedule_resume(struct task_struct *task, struct bpf_task_work *tw,
					 struct bpf_map *map__map, task_work_callback callback) __ksym __weak;
extern int bpf_task_work_schedule_resume_impl(struct task_struct *task, struct bpf_task_work *tw,
					      void *map__map, task_work_callback callback,
					      void *aux__prog) __ksym __weak;

/* libbpf's bpf_ksym_exists (libbpf 1.2+; Debian 12 ships 1.1): a weak
 * kfunc's address is 0 when the kernel lacks it, a constant the verifier
 * uses to drop the dead call. */
#define kfunc_exists(fn) (!!(fn))

static __always_inline void emit_first_check(void *ctx, struct task_struct *task,
					     const struct agg_key *key, const struct cred *cred)
{
	struct cap_event *e = scratch(&cap_scratch);

	if (!e)
		return;
	fill_header(&e->hdr, EVENT_CAP_FIRST, key->cgroup_id, task);
	e->key = *key;
	e->uid = BPF_CORE_READ(cred, euid.val);
	e->stack_bytes = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	read_exe_path(task, &e->exe);
	output(e, sizeof(*e));
}

/*
 * A key's kernel stack is sampled when a CPU's count for it reaches a power
 * of two (see sample_at): a few dozen stacks for a key seen millions of times,
 * so a key whose checks come from more than one call site (an audited check
 * behind a noaudit one, say) shows them, at the cost of one test per check.
 */
static __always_inline void emit_sample(void *ctx, const struct agg_key *key)
{
	struct sample_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_stat(STAT_RINGBUF_DROPS);
		return;
	}
	fill_header(&e->hdr, EVENT_CAP_SAMPLE, key->cgroup_id, bpf_get_current_task_btf());
	e->key = *key;
	e->stack_bytes = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	e->pad = 0;
	bpf_ringbuf_submit(e, wakeup_flag());
}

/* A key's stacks are sampled when its count on a CPU reaches a power of two. */
static __always_inline void sample_at(void *ctx, const struct agg_key *key, __u64 n)
{
	if ((n & (n - 1)) == 0)
		emit_sample(ctx, key);
}

/*
 * A check counted in `checks`, the key's first on the node reported with its
 * stack; returns the key's count on this CPU now, 0 when it could not be
 * counted (the map full).
 */
static __always_inline __u64 count_in_map(void *ctx, struct task_struct *task, const struct agg_key *key,
					  const struct cred *cred)
{
	__u64 *count = bpf_map_lookup_elem(&checks, key);

	if (!count) {
		__u64 one = 1;
		long err = bpf_map_update_elem(&checks, key, &one, BPF_NOEXIST);
		if (!err) {
			emit_first_check(ctx, task, key, cred);
			return 1;
		}
		if (err != -EEXIST) {
			count_stat(STAT_AGG_FULL);
			return 0;
		}
		/* another CPU inserted it first */
		count = bpf_map_lookup_elem(&checks, key);
		if (!count)
			return 0;
	}
	__u64 n = ++*count;
	sample_at(ctx, key, n);
	return n;
}

/*
 * A check counted: in the thread's run when it continues it (pending.h),
 * else in `checks`, where the thread's new run starts.
 */
static __always_inline void count_check(void *ctx, struct task_struct *task, struct task_state *ts,
					const struct agg_key *key, const struct cred *cred)
{
	__u64 n = ts ? continue_run(ts, key) : 0;

	if (n) {
		sample_at(ctx, key, n);
		return;
	}
	n = count_in_map(ctx, task, key, cred);
	if (n && ts)
		start_run(ts, key, n);
}

/*
 * Runs as task_work in the thread that was denied, on its way back to user
 * space (exit_to_user_mode_loop -> resume_user_mode_work), where regs->ax
 * already holds the syscall's return value.
 */
static int on_syscall_return(struct bpf_map *map, void *map_key, void *value)
{
	struct denial *d = value;
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u32 n = d->nkeys;

	d->nkeys = 0;
	if ((__s32)regs->orig_ax != d->syscall) {
		count_stat(STAT_OUTCOME_LOST);
		return 0;
	}
	long ret = regs->ax;
	bool failed = ret < 0 && ret >= -4095; /* -errno, as IS_ERR_VALUE */

	for (__u32 i = 0; i < DENIALS_PER_SYSCALL && i < n; i++) {
		struct outcome *o = bpf_map_lookup_elem(&outcomes, &d->keys[i]);
		if (!o) {
			struct outcome zero = {};
			bpf_map_update_elem(&outcomes, &d->keys[i], &zero, BPF_NOEXIST);
			o = bpf_map_lookup_elem(&outcomes, &d->keys[i]);
			if (!o) {
				count_stat(STAT_OUTCOME_LOST);
				continue;
			}
		}
		__sync_fetch_and_add(failed ? &o->failed : &o->succeeded, 1);
	}
	return 0;
}

/*
 * A denied check: follow its syscall to its return, to tell a denial the
 * workload tolerated (the syscall succeeded anyway) from one that made it
 * fail. The return is read by task_work scheduled on this thread only, so
 * no other syscall on the node pays anything, as a sys_exit tracepoint would
 * make them. Up to OUTCOME_SAMPLES syscalls per key are followed.
 */
static __always_inline void follow_denial(struct task_struct *task, const struct agg_key *key)
{
	if (key->syscall < 0 ||
	    !(kfunc_exists(bpf_task_work_schedule_resume) || kfunc_exists(bpf_task_work_schedule_resume_impl)))
		return;
	struct outcome *o = bpf_map_lookup_elem(&outcomes, key);
	if (o && o->failed + o->succeeded >= OUTCOME_SAMPLES)
		return;

	__u32 tid = task->pid;
	__u64 task_start = task->start_time;
	struct denial *d = bpf_map_lookup_elem(&denials, &tid);
	if (!d || d->task_start != task_start) {
		struct denial fresh = {.task_start = task_start};
		bpf_map_update_elem(&denials, &tid, &fresh, BPF_ANY);
		d = bpf_map_lookup_elem(&denials, &tid);
		if (!d) {
			count_stat(STAT_OUTCOME_LOST);
			return;
		}
	}
	__u32 n = d->nkeys;
	if (n > 0) { /* this syscall already had a denial: its task_work is scheduled */
		if (d->syscall != key->syscall) {
			count_stat(STAT_OUTCOME_LOST);
			return;
		}
		for (__u32 i = 0; i < DENIALS_PER_SYSCALL && i < n; i++)
			if (same_key(&d->keys[i], key))
				return;
		if (n >= DENIALS_PER_SYSCALL) {
			count_stat(STAT_OUTCOME_LOST);
			return;
		}
		d->keys[n] = *key;
		d->nkeys = n + 1;
		return;
	}
	d->keys[0] = *key;
	d->syscall = key->syscall;
	d->nkeys = 1;
	long err;
	if (kfunc_exists(bpf_task_work_schedule_resume))
		err = bpf_task_work_schedule_resume(task, &d->work, (struct bpf_map *)&denials, on_syscall_return);
	else
		err = bpf_task_work_schedule_resume_impl(task, &d->work, &denials, on_syscall_return, NULL);
	if (err) {
		d->nkeys = 0;
		count_stat(STAT_OUTCOME_LOST);
	}
}

/*
 * A capability check of a task in the target set, whatever hook saw it:
 * counted per CPU; the ring buffer is used once per new key and for samples.
 * cred, target_ns, cap and ret are cap_capable()'s, target_level is
 * target_ns->level; audit is CHECK_* audit flags, 0 when the hook cannot see
 * cap_capable's opts.
 */
static __always_inline void handle_check(void *ctx, struct target *target, __u64 cgroup_id,
					 const struct cred *cred, const struct user_namespace *target_ns,
					 int target_level, int cap, int ret, __u8 audit)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *exe = task->mm->exe_file;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	struct agg_key key = {};

	key.cgroup_id = cgroup_id;
	if (exe) {
		key.exe_ino = exe->f_inode->i_ino;
		key.exe_dev = exe->f_inode->i_sb->s_dev;
	}
	key.syscall = (__s32)regs->orig_ax;
	key.cap = cap;
	key.denied = ret != 0;
	key.flags = audit;
	if (target_level == 0)
		key.flags |= CHECK_INIT_USERNS;
	if (task->cred != task->real_cred)
		key.flags |= CHECK_CRED_OVERRIDE;
	if (cred != task->cred)
		key.flags |= CHECK_OTHER_CRED;
	/* Every tracked thread has state: its run of checks is counted there.
	 * Without it, a check is counted in `checks` at once, and only a
	 * set*id/capset call's loses something (its credentials followed). */
	bool cred_call = compare_creds_lazily && is_cred_syscall(key.syscall);
	struct task_state *ts = cred_call ? get_task_state(task) : make_task_state(task);
	bool entering = runtime_entering(target);
	/* A thread of a process being moved in: the report of the move marks
	 * its leader only, and the state just made copied the leader's. */
	if (entering && ts && !ts->runtime_init)
		set_runtime(ts, target->entering_root);
	struct task_state *runtime = runtime_state(task, ts);
	if (entering || (runtime && runtime->runtime_init))
		key.flags |= CHECK_RUNTIME_INIT;
	if (target->phase == TARGET_STARTUP && bpf_ktime_get_ns() - target->started_ns >= startup_window_ns)
		target->phase = TARGET_STEADY; /* every CPU that races here writes the same value */
	if (target->phase == TARGET_STEADY)
		key.flags |= CHECK_STEADY;

	count_check(ctx, task, ts, &key, cred);
	if (stream_events)
		stream_check(ctx, task, &key, target_ns, ret);
	if (key.denied)
		follow_denial(task, &key);
	if (cred_call && ts)
		note_cred_syscall(task, ts, regs, cgroup_id, key.syscall);
}

/* The audit flags of cap_capable()'s fourth argument (see cap_capable_audit_arg). */
static __always_inline __u8 audit_flags(unsigned int arg)
{
	if (cap_capable_audit_arg)
		return CHECK_AUDIT_KNOWN | (arg == 0 ? CHECK_NOAUDIT : 0);
	return CHECK_AUDIT_KNOWN | (arg & CAP_OPT_NOAUDIT ? CHECK_NOAUDIT : 0) |
	       (arg & CAP_OPT_INSETID ? CHECK_INSETID : 0);
}

#endif /* CAPPROF_CHECK_H */
