/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Credentials: reading a struct cred, and reporting a change, whether a
 * commit_creds hook saw it (fexit, kprobe) or a comparison found it
 * (tracepoint).
 */
#ifndef CAPPROF_CRED_H
#define CAPPROF_CRED_H

#include "output.h"
#include "task.h"
#include "path.h"
#include "syscalls.h"
#include "target.h"

/*
 * Set by user space for the tracepoint backend, which has no commit_creds
 * hook: credential changes are then found by comparison (look_at_creds).
 */
volatile const __u8 compare_creds_lazily = 0;

/*
 * struct cred keeps uid..fsgid, securebits and the five capability sets
 * contiguous (include/linux/cred.h, since 2.6.29), followed by the keyrings,
 * security, user and user_ns pointers, so one probe read copies them all and
 * each field is then taken at its CO-RE offset within the copy: 1 helper
 * call instead of 14. kernel_cap_t is 8 bytes, low word first, in both its
 * pre-6.3 (u32 cap[2]) and later (u64 val) forms. Debian's 6.1 to 7.3 put
 * user_ns 152 bytes past uid; a kernel where it is further reads it apart.
 */
enum cred_span {
	CRED_SPAN_MAX = 192, /* user space decides with it too (bpf/cred.go) */
};

/*
 * Set by user space when the running kernel's struct cred does not hold
 * those fields in one span of CRED_SPAN_MAX bytes from uid (a kernel built
 * with CONFIG_RANDSTRUCT, whose layout is shuffled per build): each field is
 * then read on its own, at its CO-RE offset (bpf/cred.go, credFieldsApart).
 */
volatile const __u8 cred_fields_apart = 0;

/*
 * The copy starts at uid's offset rounded down to 8, into an 8-aligned
 * buffer, so each field keeps the alignment it has in struct cred: verifiers
 * before ~6.12 refuse a misaligned stack load ("misaligned stack access").
 * Before 6.3 a kernel_cap_t is two u32s and only 4-aligned (cap_inheritable
 * at offset 44 on Debian's 6.1), so capability sets are read as two halves.
 * barrier_var keeps clang from folding this into "buf - base + ...", a
 * subtraction from the stack pointer, which the verifier refuses.
 */
#define cred_rel(field)                                                              \
	({                                                                           \
		__u32 __rel = bpf_core_field_offset(struct cred, field) - cred_base; \
		barrier_var(__rel);                                                  \
		__rel;                                                               \
	})
#define cred_field(buf, field) (*(__u32 *)((buf) + cred_rel(field)))
#define cred_caps(buf, field)                                                                 \
	({                                                                                    \
		__u32 __r = cred_rel(field);                                                  \
		*(__u32 *)((buf) + __r) | (__u64) * (__u32 *)((buf) + __r + 4) << 32;          \
	})

/* A capability set read on its own: 8 bytes at the field's CO-RE offset. */
static __always_inline __u64 read_cap_set(const kernel_cap_t *set)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), set);
	return v;
}

/* read_creds where the fields are apart: a probe read each. */
static __always_inline void read_cred_fields(const struct cred *cred, struct creds *out)
{
	out->uid = BPF_CORE_READ(cred, uid.val);
	out->gid = BPF_CORE_READ(cred, gid.val);
	out->suid = BPF_CORE_READ(cred, suid.val);
	out->sgid = BPF_CORE_READ(cred, sgid.val);
	out->euid = BPF_CORE_READ(cred, euid.val);
	out->egid = BPF_CORE_READ(cred, egid.val);
	out->fsuid = BPF_CORE_READ(cred, fsuid.val);
	out->fsgid = BPF_CORE_READ(cred, fsgid.val);
	out->cap_inheritable = read_cap_set(__builtin_preserve_access_index(&cred->cap_inheritable));
	out->cap_permitted = read_cap_set(__builtin_preserve_access_index(&cred->cap_permitted));
	out->cap_effective = read_cap_set(__builtin_preserve_access_index(&cred->cap_effective));
	out->cap_bset = read_cap_set(__builtin_preserve_access_index(&cred->cap_bset));
	out->cap_ambient = read_cap_set(__builtin_preserve_access_index(&cred->cap_ambient));
}

static __always_inline void read_creds(const struct cred *cred, struct creds *out)
{
	const struct user_namespace *ns;

	if (cred_fields_apart) {
		read_cred_fields(cred, out);
		ns = BPF_CORE_READ(cred, user_ns);
	} else {
		__u64 words[CRED_SPAN_MAX / 8] = {};
		__u8 *buf = (__u8 *)words;
		__u32 cred_base = bpf_core_field_offset(struct cred, uid) & ~7;
		__u32 span = bpf_core_field_offset(struct cred, user_ns) + 8 - cred_base;

		if (span > sizeof(words))
			span = sizeof(words);
		bpf_probe_read_kernel(buf, span, (void *)cred + cred_base);
		out->uid = cred_field(buf, uid);
		out->gid = cred_field(buf, gid);
		out->suid = cred_field(buf, suid);
		out->sgid = cred_field(buf, sgid);
		out->euid = cred_field(buf, euid);
		out->egid = cred_field(buf, egid);
		out->fsuid = cred_field(buf, fsuid);
		out->fsgid = cred_field(buf, fsgid);
		out->cap_inheritable = cred_caps(buf, cap_inheritable);
		out->cap_permitted = cred_caps(buf, cap_permitted);
		out->cap_effective = cred_caps(buf, cap_effective);
		out->cap_bset = cred_caps(buf, cap_bset);
		out->cap_ambient = cred_caps(buf, cap_ambient);
		if (cred_rel(user_ns) + 8 <= sizeof(words))
			ns = *(const struct user_namespace **)(buf + cred_rel(user_ns));
		else
			ns = BPF_CORE_READ(cred, user_ns);
	}
	out->userns_level = BPF_CORE_READ(ns, level);
	out->userns_inum = BPF_CORE_READ(ns, ns.inum);
}

static __always_inline bool creds_differ(const struct creds *a, const struct creds *b)
{
	return a->uid != b->uid || a->gid != b->gid || a->suid != b->suid || a->sgid != b->sgid ||
	       a->euid != b->euid || a->egid != b->egid || a->fsuid != b->fsuid ||
	       a->fsgid != b->fsgid || a->cap_inheritable != b->cap_inheritable ||
	       a->cap_permitted != b->cap_permitted || a->cap_effective != b->cap_effective ||
	       a->cap_bset != b->cap_bset || a->cap_ambient != b->cap_ambient ||
	       a->userns_inum != b->userns_inum;
}

/* A credential change event's fields other than the credentials and arguments. */
static __always_inline void fill_cred_event(struct cred_event *e, struct task_struct *task, __u64 cgroup_id,
					    __s32 syscall, __u32 source, const struct task_state *ts)
{
	fill_header(&e->hdr, EVENT_CRED, cgroup_id, task);
	read_exe_identity(task, &e->exe_ino, &e->exe_dev);
	e->syscall = syscall;
	e->source = source;
	e->runtime_init = ts && ts->runtime_init;
}

/*
 * Whether cred holds the credentials last seen: compared field by field
 * through BTF pointer loads, no helper call, as a setuid(0) loop installs a
 * new struct cred with the same credentials at every call. The capability
 * sets are loaded as the u64 that kernel_cap_t is since Linux 6.3 (the
 * tracepoint backend needs 6.14), without naming .val (see vmlinux_min.h).
 */
static __always_inline bool cred_unchanged(const struct cred *c, const struct task_state *ts)
{
	const struct creds *b = &ts->before;

	return c->uid.val == b->uid && c->gid.val == b->gid && c->suid.val == b->suid &&
	       c->sgid.val == b->sgid && c->euid.val == b->euid && c->egid.val == b->egid &&
	       c->fsuid.val == b->fsuid && c->fsgid.val == b->fsgid &&
	       *(const __u64 *)&c->cap_inheritable == b->cap_inheritable &&
	       *(const __u64 *)&c->cap_permitted == b->cap_permitted &&
	       *(const __u64 *)&c->cap_effective == b->cap_effective &&
	       *(const __u64 *)&c->cap_bset == b->cap_bset &&
	       *(const __u64 *)&c->cap_ambient == b->cap_ambient && c->user_ns->ns.inum == b->userns_inum;
}

/* The task's credentials are now c, read from cred. */
static __always_inline void remember_creds(struct task_state *ts, const struct cred *cred, const struct creds *c)
{
	ts->before = *c;
	ts->cred = (__u64)cred;
	ts->syscall = -1;
	ts->seen = 1;
}

/*
 * tracepoint backend: without a commit_creds hook, a task's credentials are
 * compared with those it had when last looked at, and a difference is
 * reported then, attributed to the set*id/capset call whose capability check
 * came in between. It is looked at:
 *   - at each capability check made inside a set*id/capset call: setuid(2),
 *     setgid(2) and capset(2) always check (kernel/sys.c __sys_setuid,
 *     security/commoncap.c cap_capset -> cap_inh_is_capped), the others when
 *     they reach beyond the task's own ids, so every change that needed
 *     privilege is attributed to its call;
 *   - at sched_prepare_exec (Linux 6.10+), before begin_new_exec() commits
 *     the new credentials, which gives an exec its credentials before;
 *   - when the thread exits.
 * A change made without a check (setresuid among the task's own ids, prctl)
 * is reported at the next of these, attributed to whatever call was noted
 * (-1: none); user space names it "unknown" when that call could not have
 * made it (recorder.changeSyscall). Only tracked tasks pay, and only at
 * these hooks: no syscall tracepoint is enabled (see the top).
 * commit_creds() always installs a new struct cred, so an unchanged address
 * means unchanged credentials and nothing is read.
 */
static __always_inline void look_at_creds(struct task_struct *task, struct task_state *ts, __u64 cgroup_id)
{
	const struct cred *cred = task->real_cred;

	if (ts->seen && (ts->cred == (__u64)cred || cred_unchanged(cred, ts))) {
		ts->cred = (__u64)cred;
		return;
	}
	struct cred_event *e = scratch(&cred_scratch);
	if (!e)
		return;
	read_creds(cred, &e->after);
	if (ts->seen) {
		fill_cred_event(e, task, cgroup_id, ts->syscall, CRED_FROM_SYSCALL, ts);
		e->args[0] = ts->args[0];
		e->args[1] = ts->args[1];
		e->args[2] = ts->args[2];
		e->before = ts->before;
		output(e, sizeof(*e));
	}
	remember_creds(ts, cred, &e->after);
}

static __always_inline bool is_cred_syscall(__s32 nr)
{
	switch (nr) {
	case NR_SETUID: case NR_SETGID: case NR_SETREUID: case NR_SETREGID: case NR_SETRESUID:
	case NR_SETRESGID: case NR_SETFSUID: case NR_SETFSGID: case NR_CAPSET:
		return true;
	}
	return false;
}

/*
 * A capability check inside a set*id/capset call: the change it may lead to
 * is the call's. The same call again, with the same arguments, is not looked
 * at: a change the previous one made is attributed to the same call and
 * arguments whenever it is seen (at the next other call, exec or exit), and
 * a setuid(0) loop installs a new, equal struct cred at every call, which
 * would be compared field by field each time.
 */
static __always_inline void note_cred_syscall(struct task_struct *task, struct task_state *ts,
					      struct pt_regs *regs, __u64 cgroup_id, __s32 nr)
{
	if (ts->seen && ts->syscall == nr && ts->args[0] == regs->di && ts->args[1] == regs->si &&
	    ts->args[2] == regs->dx)
		return;
	look_at_creds(task, ts, cgroup_id);
	ts->syscall = nr;
	ts->args[0] = regs->di;
	ts->args[1] = regs->si;
	ts->args[2] = regs->dx;
}

/*
 * fexit and kprobe backends: commit_creds() (kernel/cred.c) is where every
 * credential change is installed: the set*id family and capset, but also
 * prctl (PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_CAP_AMBIENT), setgroups,
 * unshare(CLONE_NEWUSER), keyctl, and execve (begin_new_exec). At entry,
 * real_cred still holds the old credentials and new the ones being
 * installed. No syscall tracepoint is needed, so other syscalls pay nothing.
 * Inside execve the old credentials are kept for on_exec, which reports the
 * exec with them; elsewhere a change is reported at once.
 */
static __always_inline void report_commit(const struct cred *new)
{
	__u64 cgroup_id;

	if (!target_cgroup(&cgroup_id))
		return;
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__s32 nr = (__s32)regs->orig_ax;

	if (nr == NR_EXECVE || nr == NR_EXECVEAT) {
		struct task_state *ts = get_task_state(task);
		if (ts) {
			read_creds(task->real_cred, &ts->before);
			ts->exec = 1;
			ts->from_commit = 1;
		}
		return;
	}

	struct cred_event *e = scratch(&cred_scratch);
	if (!e)
		return;
	read_creds(task->real_cred, &e->before);
	read_creds(new, &e->after);
	if (!creds_differ(&e->before, &e->after))
		return;
	fill_cred_event(e, task, cgroup_id, nr, CRED_FROM_COMMIT, runtime_state(task, bpf_task_storage_get(&task_state, task, 0, 0)));
	e->args[0] = regs->di;
	e->args[1] = regs->si;
	e->args[2] = regs->dx;
	output(e, sizeof(*e));
}

#endif /* CAPPROF_CRED_H */
