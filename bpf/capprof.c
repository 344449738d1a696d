//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * capprof's kernel side: four objects over the headers in lib/, one per
 * concern. This one, capprof.o, holds the programs every --probe loads and
 * creates every shared map (lib/maps.h); user space loads it with the object
 * of one backend, whose programs see capability checks and credential
 * changes (bpf/probe.go):
 *   - tracepoint.c (Linux 6.14+): tp_btf/cap_capable, the tracepoint inside
 *     security/commoncap.c cap_capable(), with credential changes found by
 *     comparing a task's credentials with those it last had, at the hooks
 *     capprof already runs for it (see look_at_creds): no syscall hook;
 *   - fexit.c (Linux 5.5+ with BTF trampolines): fexit/cap_capable, which also
 *     reads cap_capable's opts (the audit class), and fentry/commit_creds,
 *     which sees every credential install with the full new credentials;
 *   - kprobe.c: kprobe/kretprobe on cap_capable and a kprobe on commit_creds,
 *     for kernels that have kprobes but refuse BPF trampolines.
 * Forks, execs, exits and cgroups are seen here, by tp_btf tracepoints, for
 * every backend (Linux 5.5+). No backend hooks syscalls: while any syscall
 * tracepoint is enabled, every syscall of every task on the node takes the
 * kernel's syscall-tracing slow path (make bench measured +30% on getppid).
 *
 * Everything is filtered to the target set first: the cgroup2 ids that user
 * space puts into the `targets` map. A task outside that set costs one helper
 * call and one load from a pre-filter (target_filter) per hook. Inside it,
 * capability checks are counted in the per-CPU `checks` hash without touching
 * the ring buffer; only the first check for a new key, execs, exits, forks
 * and credential changes go through `events`. Anything lost is counted in
 * `stats`.
 */

#include "cred.h"
#include "live.h"
#include "pending.h"
#include "target.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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
const struct pending_run *unused_pending_run __attribute__((unused));
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
const enum cred_span unused_cred_span __attribute__((unused));

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 cgroup_id;
	struct target *target = target_cgroup(&cgroup_id);

	if (!target) {
		/* Born into a pod's target from outside the target set by
		 * clone3(CLONE_INTO_CGROUP) (Linux 5.7): crun's container init and
		 * exec processes, runc 1.4+'s exec processes. No cgroup_attach_task
		 * fires for them; this is the report of their move. */
		__u64 child_cgroup = BPF_CORE_READ(child, cgroups, dfl_cgrp, kn, id);
		struct target *into = lookup_target(&child_cgroup);
		if (into && (into->flags & TARGET_RUNTIME)) {
			mark_runtime_init(child, root_of(parent));
			into->entering_ns = 0;
		}
		return 0;
	}
	struct task_state *ts = runtime_state(parent, bpf_task_storage_get(&task_state, parent, 0, 0));
	if (ts && ts->runtime_init)
		mark_runtime_init(child, ts->runtime_root);
	else if (runtime_entering(target))
		mark_runtime_init(child, target->entering_root);
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
	struct target *target = entered_by_runtime(&cgroup_id);

	if (!target)
		return 0;
	mark_runtime_init(task, root_of(bpf_get_current_task_btf()));
	target->entering_ns = 0;
	return 0;
}

/*
 * cgroup_notify_populated fires while a task is being moved into an empty
 * cgroup, before the task is in it and before cgroup_attach_task (or, for
 * clone3(CLONE_INTO_CGROUP), sched_process_fork) reports the move, and once
 * for each ancestor that had no task below it either; nr_populated_csets
 * tells the cgroup the task enters. Moved in by a task outside the target
 * set, it is the runtime's: the target counts as being entered by the
 * runtime (runtime_entering) until the move is reported.
 */
SEC("tp_btf/cgroup_notify_populated")
int BPF_PROG(on_cgroup_populated, struct cgroup *cgrp, const char *path, int populated)
{
	if (!populated || BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	/* A kernel without the counter (Debian's 7.x lacks the field by this
	 * name) marks the ancestors that become populated too: a pod's cgroup
	 * holds no task of its own, and the mark ends within the window. */
	if (bpf_core_field_exists(cgrp->nr_populated_csets) && BPF_CORE_READ(cgrp, nr_populated_csets) == 0)
		return 0;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	struct target *target = entered_by_runtime(&id);
	if (!target)
		return 0;
	target->entering_root = root_of(bpf_get_current_task_btf());
	barrier(); /* runtime_entering reads entering_ns first */
	target->entering_ns = bpf_ktime_get_ns();
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
 * The bytes of e to send: all of it with EXEC_DETAILS (live events), else up
 * to its executable's last path component. Fixed-size records of 5.7 KB let
 * the 4 MiB ring buffer hold about 735 execs; a short one is under 1 KB for
 * a path of three components.
 */
static __always_inline __u64 exec_event_size(const struct exec_event *e)
{
	if (e->flags & EXEC_DETAILS)
		return sizeof(*e);
	__u32 depth = e->exe.depth;
	if (depth > PATH_DEPTH)
		depth = PATH_DEPTH;
	return __builtin_offsetof(struct exec_event, exe.names) + depth * PATH_NAME_LEN;
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
	/* runc 1.1's init executing its sealed copy while it is moved in. */
	if (runtime_entering(target) && !(ts && ts->runtime_init))
		ts = mark_runtime_init(task, target->entering_root);
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
	output(e, exec_event_size(e));
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

/* The state of the task a task iterator is at, NULL when it has none. */
static __always_inline struct task_state *iterated_state(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	return task ? bpf_task_storage_get(&task_state, task, 0, 0) : NULL;
}

/*
 * Recording stops: every thread's run of checks goes to `checks` (see
 * pending.h). User space runs this task iterator once the capability hooks
 * are detached.
 */
SEC("iter/task")
int take_pending(struct bpf_iter__task *ctx)
{
	struct task_state *ts = iterated_state(ctx);

	if (ts)
		end_run(ts);
	return 0;
}

/* A snapshot while recording: every thread's run in progress, written as
 * struct pending_run records for user space to add to `checks`. */
SEC("iter/task")
int peek_pending(struct bpf_iter__task *ctx)
{
	struct task_state *ts = iterated_state(ctx);

	if (ts)
		write_run(ctx->meta->seq, ts);
	return 0;
}

/* One exit event per process: from the thread that leaves signal->live at 0. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
	__u64 cgroup_id;
	/* The thread's run of checks ends, wherever it is now: it may have
	 * left the target set since. */
	struct task_state *ts = bpf_task_storage_get(&task_state, task, 0, 0);

	if (ts)
		end_run(ts);
	if (!target_cgroup(&cgroup_id))
		return 0;
	/* A change since the thread was last looked at; exit_creds() comes later, in release. */
	if (compare_creds_lazily && ts && ts->seen)
		look_at_creds(task, ts, cgroup_id);
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
