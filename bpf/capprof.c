//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * capprof's kernel side. Three sets of programs see capability checks and
 * credential changes; user space loads the set of one backend (bpf/probe.go)
 * and every set feeds the same maps and events:
 *   - tracepoint (Linux 6.14+): tp_btf/cap_capable, the tracepoint inside
 *     security/commoncap.c cap_capable(), with credential changes found by
 *     comparing a task's credentials with those it last had, at the hooks
 *     capprof already runs for it (see look_at_creds): no syscall hook;
 *   - fexit (Linux 5.5+ with BTF trampolines): fexit/cap_capable, which also
 *     reads cap_capable's opts (the audit class), and fentry/commit_creds,
 *     which sees every credential install with the full new credentials;
 *   - kprobe: kprobe/kretprobe on cap_capable and a kprobe on commit_creds,
 *     for kernels that have kprobes but refuse BPF trampolines.
 * Forks, execs, exits and cgroup migrations use tp_btf tracepoints in every
 * backend (Linux 5.5+). No backend hooks syscalls: while any syscall
 * tracepoint is enabled, every syscall of every task on the node takes the
 * kernel's syscall-tracing slow path (make bench measured +30% on getppid).
 *
 * Everything is filtered to the target set first: the cgroup2 ids that user
 * space puts into the `targets` map. A task outside that set costs one helper
 * call and one load from a pre-filter (target_filter) per hook. Inside it, capability checks are counted
 * in the per-CPU `checks` hash without touching the ring buffer; only the
 * first check for a new key, execs, exits, forks and credential changes go
 * through `events`. Anything lost is counted in `stats`.
 */

#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "capprof.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EEXIST 17

/* Keep the event types in BTF so bpf2go can generate their Go twins. */
const struct cap_event *unused_cap_event __attribute__((unused));
const struct exec_event *unused_exec_event __attribute__((unused));
const struct exit_event *unused_exit_event __attribute__((unused));
const struct fork_event *unused_fork_event __attribute__((unused));
const struct cred_event *unused_cred_event __attribute__((unused));
const struct sample_event *unused_sample_event __attribute__((unused));
const struct check_event *unused_check_event __attribute__((unused));
const struct rate_key *unused_rate_key __attribute__((unused));
const struct rate_state *unused_rate_state __attribute__((unused));
const enum ns_index unused_ns_index __attribute__((unused));
const struct target *unused_target __attribute__((unused));
const struct cgroup_event *unused_cgroup_event __attribute__((unused));
const struct pod_key *unused_pod_key __attribute__((unused));
const enum target_flag unused_target_flag __attribute__((unused));
const enum cgroup_op unused_cgroup_op __attribute__((unused));
const struct outcome *unused_outcome __attribute__((unused));
const enum target_phase unused_target_phase __attribute__((unused));
const enum event_type unused_event_type __attribute__((unused));
const enum check_flag unused_check_flag __attribute__((unused));
const enum exec_flag unused_exec_flag __attribute__((unused));
const enum stat_index unused_stat_index __attribute__((unused));
const enum cred_source unused_cred_source __attribute__((unused));

/*
 * Set by user space from the kernel's BTF: cap_capable()'s fourth argument is
 * "unsigned int opts" (CAP_OPT_* bits) since Linux 5.1 (commit c1a85a00ea66)
 * and "int audit" (SECURITY_CAP_AUDIT = 1, SECURITY_CAP_NOAUDIT = 0) before.
 */
volatile const __u8 cap_capable_audit_arg = 0;

/* include/linux/security.h */
#define CAP_OPT_NOAUDIT (1 << 1)
#define CAP_OPT_INSETID (1 << 2)

/*
 * Set by user space for the tracepoint backend, which has no commit_creds
 * hook: credential changes are then found by comparison (look_at_creds).
 */
volatile const __u8 compare_creds_lazily = 0;

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

/* x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#define NR_SETUID 105
#define NR_SETGID 106
#define NR_SETREUID 113
#define NR_SETREGID 114
#define NR_SETRESUID 117
#define NR_SETRESGID 119
#define NR_SETFSUID 122
#define NR_SETFSGID 123
#define NR_CAPSET 126
#define NR_EXECVE 59
#define NR_EXECVEAT 322

/*
 * A pre-filter in front of `targets`: target_filter[id % TARGET_FILTER_SLOTS]
 * is non-zero when some target cgroup hashes there. It lives in .bss, so the
 * check is one load with no helper call, and a task outside the target set
 * (every other process on the node) is turned away without hashing; only a
 * slot hit pays for the exact lookup in `targets`. User space sets it.
 */
#define TARGET_FILTER_SLOTS 4096
volatile __u8 target_filter[TARGET_FILTER_SLOTS];

/*
 * The set of target cgroup2 ids, with where each is in its life. User space
 * adds the cgroups it finds; on_cgroup_mkdir adds every cgroup created below
 * a target, and the cgroups of armed pods, before any process enters them;
 * on_cgroup_rmdir removes a target whose directory goes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct target);
} targets SEC(".maps");

/*
 * Pods selected for recording whose cgroup may not exist yet (a pod the API
 * server has just bound to this node): the cgroup the kubelet creates for
 * one becomes a target at its mkdir, so every container cgroup below it is
 * a target from its creation. User space arms a pod as soon as it knows it.
 * The all-zero uid arms every pod, for sources that report a pod only after
 * its cgroup exists (the CRI); user space drops the ones no selected pod
 * claims.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct pod_key);
	__type(value, __u8);
} armed_pods SEC(".maps");

/* Per-CPU counters, so two cores hammering one key never share a cache line. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct agg_key);
	__type(value, __u64);
} checks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/*
 * Live check events have their own ring buffer: a reader that falls behind,
 * or checks faster than the rate limit can thin, lose live events (counted
 * in STAT_LIVE_DROPS), never the execs, exits and credential changes the
 * profile is built from.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} live_events SEC(".maps");

/* The rate limiter of live check events; user space deletes an exec's
 * entries, reading what they held back, when the exec ends. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct rate_key);
	__type(value, struct rate_state);
} check_rates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/*
 * What capprof keeps per thread of the target set, in one task-local storage
 * (Linux 5.11): one lookup serves a check, no hashing and no shared LRU
 * lists, and the entry dies with the task.
 *   - runtime_init: the task belongs to the container runtime: it entered
 *     a target cgroup of a pod (TARGET_RUNTIME) from outside the target set,
 *     moved in by a task outside it (runc 1.1 writes runc init's pid to
 *     cgroup.procs, for a container's start and for every exec; systemd
 *     does it for its driver) or born into it by clone3(CLONE_INTO_CGROUP)
 *     from a parent outside it (crun, runc 1.4+ exec), or is a child of
 *     such a task; and it has not yet executed a program from another root
 *     than the runtime's (runtime_root: the mover's or parent's fs root).
 *     The runtime runs its own binary again from the host's root (runc's
 *     re-exec, runc init) and the workload's only after pivot_root, chroot
 *     or setns into the container's mount namespace, so the first exec
 *     from another root is the workload's. Its checks (setgroups, capset,
 *     prctl(PR_CAPBSET_DROP) while the runtime applies the container's
 *     credentials) and credential changes are the runtime's. Tasks already
 *     in the cgroup when recording starts, and tasks the workload moves
 *     between target cgroups, are the workload.
 *   - exec: an exec is in progress and before holds the credentials it
 *     started with (read at commit_creds, or at sched_prepare_exec).
 *   - seen (tracepoint backend only): before holds the credentials the
 *     task had when last looked at, read from the struct cred at cred;
 *     syscall is the set*id/capset call whose
 *     capability check came since (-1: none), with its arguments.
 */
struct task_state {
	struct creds before;
	__u64 args[3];
	__u64 cred;
	__u64 runtime_root; /* with runtime_init: the dentry of the runtime's root */
	__s32 syscall;
	__u8 seen;
	__u8 exec;
	__u8 from_commit; /* before was read at commit_creds (fexit, kprobe backends) */
	__u8 runtime_init;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_state);
} task_state SEC(".maps");

/*
 * Denied checks whose syscall's outcome is being followed, per thread: the
 * keys denied during the syscall in progress and the task_work that reads
 * its return value (see follow_denial).
 */
#define DENIALS_PER_SYSCALL 4
struct denial {
	struct bpf_task_work work;
	struct agg_key keys[DENIALS_PER_SYSCALL];
	__u64 task_start; /* task->start_time: a reused thread id is another task */
	__u32 nkeys;      /* 0: nothing pending */
	__s32 syscall;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct denial);
} denials SEC(".maps");

/* Sampled outcomes of the syscalls in which checks of a key were denied. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct agg_key);
	__type(value, struct outcome);
} outcomes SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cap_event);
} cap_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} exec_scratch SEC(".maps");

/*
 * Credential events are built here and copied out only when the credentials
 * differ: a record reserved in the ring buffer and discarded keeps its space
 * until the reader passes it, so a setuid(0) loop (new struct cred, same
 * credentials) would fill the buffer with discards.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cred_event);
} cred_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_event);
} cgroup_scratch SEC(".maps");

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

static __always_inline void count_stat(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		(*value)++;
}

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

/* The task's state, created when missing; a new one of a thread starts as
 * its leader's runtime (see runtime_state). */
static __always_inline struct task_state *get_task_state(struct task_struct *task)
{
	struct task_state *ts = bpf_task_storage_get(&task_state, task, 0, 0);

	if (ts)
		return ts;
	ts = bpf_task_storage_get(&task_state, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!ts) {
		count_stat(STAT_PENDING_FULL);
		return NULL;
	}
	struct task_state *leader = runtime_state(task, NULL);
	if (leader && leader->runtime_init) {
		ts->runtime_init = 1;
		ts->runtime_root = leader->runtime_root;
	}
	return ts;
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

/*
 * struct cred keeps uid..fsgid, securebits and the five capability sets
 * contiguous (include/linux/cred.h, since 2.6.29), followed by the keyrings,
 * security, user and user_ns pointers, so one probe read copies them all and
 * each field is then taken at its CO-RE offset within the copy: 1 helper
 * call instead of 14. kernel_cap_t is 8 bytes, low word first, in both its
 * pre-6.3 (u32 cap[2]) and later (u64 val) forms. Debian's 6.1 to 7.3 put
 * user_ns 152 bytes past uid; a kernel where it is further reads it apart.
 */
#define CRED_SPAN_MAX 192

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

static __always_inline void read_creds(const struct cred *cred, struct creds *out)
{
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

	const struct user_namespace *ns;
	if (cred_rel(user_ns) + 8 <= sizeof(words))
		ns = *(const struct user_namespace **)(buf + cred_rel(user_ns));
	else
		ns = BPF_CORE_READ(cred, user_ns);
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

/* The executable's identity: inode and device of mm->exe_file (0/0 for kernel threads). */
static __always_inline void read_exe_identity(struct task_struct *task, __u64 *ino, __u32 *dev)
{
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);

	*ino = 0;
	*dev = 0;
	if (!exe)
		return;
	*ino = BPF_CORE_READ(exe, f_inode, i_ino);
	*dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
}

/*
 * The executable's path as the task sees it, innermost component first: the
 * d_path() walk (fs/d_path.c prepend_path) done by hand, because bpf_d_path is
 * only allowed in a few fentry/LSM hooks. It climbs d_parent up to the task's
 * root (fs->root, so a container's binary reads /usr/bin/x, not the overlay
 * path) and hops from a mount's root to its mountpoint in the parent mount.
 * One bpf_loop (Linux 5.17+) step per component keeps the verifier's work
 * linear; an open-coded loop makes it explore every path through every
 * iteration and exceeds the 1M-instruction limit.
 */
struct path_walk {
	struct exe_path *out; /* a scratch map value */
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	__u32 depth;
	__u32 done;
};

static long path_step(__u32 index, void *data)
{
	/* Copy out of *w first: BPF_CORE_READ(w->x, ...) would ask CO-RE to
	 * relocate struct path_walk itself, which the kernel does not have. */
	struct path_walk *w = data;
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;

	if (dentry == w->root_dentry && vfsmnt == w->root_mnt) {
		w->done = 1;
		return 1;
	}
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == BPF_CORE_READ(vfsmnt, mnt_root) || dentry == parent) {
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt == mnt_parent) { /* the global root: outside the task's root */
			w->done = 1;
			return 1;
		}
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mnt_parent;
		w->vfsmnt = (void *)mnt_parent + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	__u32 depth = w->depth;
	if (depth >= PATH_DEPTH)
		return 1;
	bpf_probe_read_kernel_str(w->out->names[depth], PATH_NAME_LEN, BPF_CORE_READ(dentry, d_name.name));
	w->depth = depth + 1;
	w->dentry = parent;
	return 0;
}

/* The path of dentry on vfsmnt as task sees it, into out. */
static __always_inline void read_path(struct task_struct *task, struct dentry *dentry, struct vfsmount *vfsmnt,
				      struct exe_path *out)
{
	struct path_walk w = {
		.out = out,
		.dentry = dentry,
		.vfsmnt = vfsmnt,
		.root_dentry = BPF_CORE_READ(task, fs, root.dentry),
		.root_mnt = BPF_CORE_READ(task, fs, root.mnt),
	};
	w.mnt = (void *)w.vfsmnt - bpf_core_field_offset(struct mount, mnt);
	/* Up to PATH_DEPTH components plus a few mount hops. */
	bpf_loop(PATH_DEPTH + 8, path_step, &w, 0);
	out->depth = w.depth;
	out->truncated = !w.done;
}

static __always_inline void read_exe_path(struct task_struct *task, struct exe_path *out)
{
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);

	out->depth = 0;
	out->truncated = 0;
	if (exe)
		read_path(task, BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt), out);
}

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
 * of two (2, 4, 8, ...): a few dozen stacks for a key seen millions of times,
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

static __always_inline void count_check(void *ctx, struct task_struct *task, const struct agg_key *key,
					const struct cred *cred)
{
	__u64 *count = bpf_map_lookup_elem(&checks, key);

	if (!count) {
		__u64 one = 1;
		long err = bpf_map_update_elem(&checks, key, &one, BPF_NOEXIST);
		if (!err) {
			emit_first_check(ctx, task, key, cred);
			return;
		}
		if (err != -EEXIST) {
			count_stat(STAT_AGG_FULL);
			return;
		}
		/* another CPU inserted it first */
		count = bpf_map_lookup_elem(&checks, key);
		if (!count)
			return;
	}
	__u64 n = ++*count;
	if ((n & (n - 1)) == 0)
		emit_sample(ctx, key);
}

static __always_inline bool same_key(const struct agg_key *a, const struct agg_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
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

/* A capability check inside a set*id/capset call: the change it may lead to is the call's. */
static __always_inline void note_cred_syscall(struct task_struct *task, struct task_state *ts,
					      struct pt_regs *regs, __u64 cgroup_id, __s32 nr)
{
	look_at_creds(task, ts, cgroup_id);
	ts->syscall = nr;
	ts->args[0] = regs->di;
	ts->args[1] = regs->si;
	ts->args[2] = regs->dx;
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
	/* The state is created for a set*id/capset call's check, to look at
	 * the task's credentials (tracepoint backend), and only looked up otherwise. */
	bool cred_call = compare_creds_lazily && is_cred_syscall(key.syscall);
	struct task_state *ts = cred_call ? get_task_state(task) : bpf_task_storage_get(&task_state, task, 0, 0);
	struct task_state *runtime = runtime_state(task, ts);
	if (runtime && runtime->runtime_init)
		key.flags |= CHECK_RUNTIME_INIT;
	if (target->phase == TARGET_STEADY)
		key.flags |= CHECK_STEADY;

	count_check(ctx, task, &key, cred);
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
 * fexit backend: runs when cap_capable() returns, with its arguments and
 * return value. The 5.1+ prototype is declared; before 5.1 the fourth
 * argument is "int audit" in the same register, which audit_flags reads.
 */
SEC("fexit/cap_capable")
int BPF_PROG(on_cap_capable_exit, const struct cred *cred, struct user_namespace *target_ns, int cap,
	     unsigned int opts, int ret)
{
	__u64 cgroup_id;
	struct target *target = target_cgroup(&cgroup_id);

	if (target)
		handle_check(ctx, target, cgroup_id, cred, target_ns, target_ns->level, cap, ret, audit_flags(opts));
	return 0;
}

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

/* task belongs to the container runtime, whose root is runtime_root (see task_state). */
static __always_inline void mark_runtime_init(struct task_struct *task, __u64 runtime_root)
{
	struct task_state *ts = get_task_state(task);

	if (ts) {
		ts->runtime_init = 1;
		ts->runtime_root = runtime_root;
	}
}

static __always_inline __u64 root_of(struct task_struct *task)
{
	return (__u64)BPF_CORE_READ(task, fs, root.dentry);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 cgroup_id;

	if (!target_cgroup(&cgroup_id)) {
		/* Born into a pod's target from outside the target set by
		 * clone3(CLONE_INTO_CGROUP) (Linux 5.7): crun's container init and
		 * exec processes, runc 1.4+'s exec processes. No cgroup_attach_task
		 * fires for them. */
		__u64 child_cgroup = BPF_CORE_READ(child, cgroups, dfl_cgrp, kn, id);
		struct target *into = lookup_target(&child_cgroup);
		if (into && (into->flags & TARGET_RUNTIME))
			mark_runtime_init(child, root_of(parent));
		return 0;
	}
	struct task_state *ts = runtime_state(parent, bpf_task_storage_get(&task_state, parent, 0, 0));
	if (ts && ts->runtime_init)
		mark_runtime_init(child, ts->runtime_root);
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* a new thread, not a new process */

	struct fork_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_stat(STAT_RINGBUF_DROPS);
		return 0;
	}
	fill_header(&e->hdr, EVENT_FORK, cgroup_id, parent);
	e->child_pid = BPF_CORE_READ(child, pid);
	e->pad = 0;
	e->child_start_ns = BPF_CORE_READ(child, start_time);
	bpf_ringbuf_submit(e, wakeup_flag());
	return 0;
}

/*
 * cgroup_attach_task fires in cgroup_attach_task() after the migration, once
 * per hierarchy on hybrid hosts: the task's v2 cgroup (cgroups->dfl_cgrp) is
 * read rather than dst_cgrp, whose id may be a v1 hierarchy's. It runs in
 * the task that wrote cgroup.procs: a mover outside the target set is the
 * runtime (runc, systemd) putting its init or exec process in; one inside is
 * the workload moving itself or its children into a sub-cgroup.
 */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(on_cgroup_attach, struct cgroup *dst_cgrp, const char *path, struct task_struct *task, bool threadgroup)
{
	__u64 cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	struct target *target = lookup_target(&cgroup_id);

	if (!target || !(target->flags & TARGET_RUNTIME))
		return 0;
	__u64 mover;
	if (target_cgroup(&mover))
		return 0;
	mark_runtime_init(task, root_of(bpf_get_current_task_btf()));
	return 0;
}

/*
 * A pod's cgroup by its name, for armed_pods: pod<uid> (the kubelet's
 * cgroupfs driver) or <prefix>-pod<uid with underscores>.slice (its systemd
 * driver, whatever the --cgroup-root prefix). len is what
 * bpf_probe_read_kernel_str returned (the NUL included).
 */
static __always_inline bool pod_cgroup_uid(const char *name, long len, struct pod_key *key)
{
	long n = len - 1, off;
	const long slice = 6; /* ".slice" */

	if (n == 3 + POD_UID_LEN && name[0] == 'p' && name[1] == 'o' && name[2] == 'd') {
		off = 3;
	} else if (n >= 3 + POD_UID_LEN + slice && n < CGROUP_NAME_LEN) {
		long tail = n - slice, pod = tail - POD_UID_LEN - 3;
		if (name[tail & (CGROUP_NAME_LEN - 1)] != '.' || name[(tail + 1) & (CGROUP_NAME_LEN - 1)] != 's' ||
		    name[(n - 1) & (CGROUP_NAME_LEN - 1)] != 'e' || name[pod & (CGROUP_NAME_LEN - 1)] != 'p' ||
		    name[(pod + 1) & (CGROUP_NAME_LEN - 1)] != 'o' || name[(pod + 2) & (CGROUP_NAME_LEN - 1)] != 'd')
			return false;
		off = pod + 3;
	} else {
		return false;
	}
	for (int i = 0; i < POD_UID_LEN; i++) {
		char c = name[(off + i) & (CGROUP_NAME_LEN - 1)];
		key->uid[i] = c == '_' ? '-' : c;
	}
	return true;
}

/* A cgroup event about cgrp, built in scratch, its name read; NULL on failure. */
static __always_inline struct cgroup_event *new_cgroup_event(struct cgroup *cgrp, __u32 op, long *name_len)
{
	struct cgroup_event *e = scratch(&cgroup_scratch);

	if (!e)
		return NULL;
	e->id = BPF_CORE_READ(cgrp, kn, id);
	e->parent_id = BPF_CORE_READ(cgrp, self.parent, cgroup, kn, id);
	e->op = op;
	e->flags = 0;
	*name_len = bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(cgrp, kn, name));
	return e;
}

/*
 * A new cgroup (cgroup_mkdir, in cgroup_mkdir() once the directory exists
 * and before any task can enter it) is a target when its parent is one,
 * or when it is an armed pod's: the subtree of every target is recorded
 * from its first instruction, whichever runtime, driver or layout made it
 * (crun's "container" sub-cgroup below its systemd scope, a workload's own
 * sub-cgroups). Only the cgroup v2 hierarchy counts on hybrid hosts.
 */
SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(on_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	long len;
	struct cgroup_event *e = new_cgroup_event(cgrp, CGROUP_CREATED, &len);
	if (!e)
		return 0;
	struct target *parent = lookup_target(&e->parent_id);
	struct target t = {.flags = TARGET_CREATED};
	if (parent) {
		t.flags |= parent->flags & TARGET_RUNTIME;
	} else {
		struct pod_key key = {}, any_pod = {};
		if (!pod_cgroup_uid(e->name, len, &key) ||
		    !(bpf_map_lookup_elem(&armed_pods, &key) || bpf_map_lookup_elem(&armed_pods, &any_pod)))
			return 0;
		t.flags |= TARGET_RUNTIME;
	}
	__u64 id = e->id;
	if (bpf_map_update_elem(&targets, &id, &t, BPF_NOEXIST)) {
		count_stat(STAT_TARGETS_FULL);
		return 0;
	}
	target_filter[id % TARGET_FILTER_SLOTS] = 1;
	e->flags = t.flags;
	fill_header(&e->hdr, EVENT_CGROUP, e->parent_id, bpf_get_current_task_btf());
	output(e, sizeof(*e));
	return 0;
}

/*
 * A target's directory removed: it leaves the target set, since cgroup ids
 * (kernfs node ids) are reused. Its pre-filter slot stays set; another
 * target may share it.
 */
SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(on_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	if (!lookup_target(&id))
		return 0;
	bpf_map_delete_elem(&targets, &id);
	long len;
	struct cgroup_event *e = new_cgroup_event(cgrp, CGROUP_REMOVED, &len);
	if (!e)
		return 0;
	fill_header(&e->hdr, EVENT_CGROUP, e->parent_id, bpf_get_current_task_btf());
	output(e, sizeof(*e));
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

/*
 * An exec event of task, in the per-CPU scratch: its identity, its parent's
 * and its credentials now; the rest is the caller's.
 */
static __always_inline struct exec_event *new_exec_event(struct task_struct *task, __u64 cgroup_id, __u32 flags)
{
	struct exec_event *e = scratch(&exec_scratch);

	if (!e)
		return NULL;
	fill_header(&e->hdr, EVENT_EXEC, cgroup_id, task);
	read_exe_identity(task, &e->exe_ino, &e->exe_dev);
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	e->ppid = BPF_CORE_READ(parent, tgid);
	e->parent_exec_seq = BPF_CORE_READ(parent, self_exec_id);
	e->parent_start_ns = BPF_CORE_READ(parent, group_leader, start_time);
	e->flags = flags;
	read_creds(BPF_CORE_READ(task, real_cred), &e->after);
	return e;
}

/*
 * sched_process_exec fires in exec_binprm() after the new credentials are
 * committed. The credentials the exec started with are in the task's
 * storage: a non-leader thread that execs keeps its task_struct (de_thread()
 * only gives it the leader's pid), so the entry is found though the pid
 * changed.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cgroup_id;
	struct target *target = target_cgroup(&cgroup_id);

	if (!target)
		return 0;
	struct task_state *ts = bpf_task_storage_get(&task_state, task, 0, 0);
	/* The runtime executing its own binary again, from its own root (see
	 * task_state), is still the runtime. */
	bool runtime = ts && ts->runtime_init && root_of(task) == ts->runtime_root;

	/* The target's first workload exec (the command, or the container's
	 * entrypoint run by runc init) opens its startup window. */
	if (!runtime && target->phase == TARGET_NOT_STARTED) {
		target->started_ns = bpf_ktime_get_ns();
		target->phase = TARGET_STARTUP;
	}

	struct exec_event *e = new_exec_event(task, cgroup_id, runtime ? EXEC_RUNTIME_INIT : 0);
	if (!e)
		return 0;

	if (ts && ts->exec) {
		e->before = ts->before;
		e->flags |= EXEC_HAVE_BEFORE;
		if (ts->from_commit)
			e->flags |= EXEC_BEFORE_FROM_COMMIT;
		/* security/commoncap.c cap_bprm_creds_from_file: the same test
		 * (id_changed || __cap_gained) that no_new_privs would refuse. */
		if (e->after.euid != ts->before.euid || e->after.egid != ts->before.egid ||
		    (e->after.cap_permitted & ~ts->before.cap_permitted))
			e->flags |= EXEC_PRIV_GAIN;
	} else {
		__builtin_memset(&e->before, 0, sizeof(e->before));
	}
	if (ts) {
		ts->exec = 0;
		ts->runtime_init = runtime; /* else the workload's program runs now */
		if (compare_creds_lazily) /* the exec's credentials are the ones seen now */
			remember_creds(ts, task->real_cred, &e->after);
	}

	const char *filename = BPF_CORE_READ(bprm, filename);
	if (filename != BPF_CORE_READ(bprm, interp))
		e->flags |= EXEC_SCRIPT;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);
	read_exe_path(task, &e->exe);
	if (stream_events)
		read_exec_details(e, task, true);
	output(e, sizeof(*e));
	return 0;
}

/*
 * Live events: the processes already running in a target cgroup when it
 * became a target, reported once as EXEC_EXISTING so that live events can
 * name them. User space runs this task iterator (Linux 5.8+) after adding
 * targets; it is never attached to a hook.
 */
SEC("iter/task")
int list_processes(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (!task || BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		return 0;
	__u64 cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	if (!lookup_target(&cgroup_id))
		return 0;
	struct exec_event *e = new_exec_event(task, cgroup_id, EXEC_EXISTING);
	if (!e)
		return 0;
	__builtin_memset(&e->before, 0, sizeof(e->before));
	read_creds(BPF_CORE_READ(task, real_cred), &e->after);
	e->filename[0] = 0;
	read_exe_path(task, &e->exe);
	read_exec_details(e, task, false);
	output(e, sizeof(*e));
	return 0;
}

/* One exit event per process: from the thread that leaves signal->live at 0. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
	__u64 cgroup_id;

	if (!target_cgroup(&cgroup_id))
		return 0;
	/* A change since the thread was last looked at; exit_creds() comes later, in release. */
	if (compare_creds_lazily) {
		struct task_state *ts = bpf_task_storage_get(&task_state, task, 0, 0);
		if (ts && ts->seen)
			look_at_creds(task, ts, cgroup_id);
	}
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;

	struct exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_stat(STAT_RINGBUF_DROPS);
		return 0;
	}
	fill_header(&e->hdr, EVENT_EXIT, cgroup_id, task);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->pad = 0;
	bpf_ringbuf_submit(e, wakeup_flag());
	return 0;
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
static __always_inline void handle_commit(const struct cred *new)
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

SEC("fentry/commit_creds")
int BPF_PROG(on_commit_creds, struct cred *new)
{
	handle_commit(new);
	return 0;
}

SEC("kprobe/commit_creds")
int BPF_KPROBE(on_commit_creds_kprobe, struct cred *new)
{
	handle_commit(new);
	return 0;
}
