/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map the programs share, and the target pre-filter. Each object
 * includes them all and capprof.o creates them; a backend's object is
 * loaded with capprof.o's maps in place of its own (bpf/probe.go), so every
 * program works on the same target set, counters and ring buffers.
 */
#ifndef CAPPROF_MAPS_H
#define CAPPROF_MAPS_H

#include "common.h"

/*
 * A pre-filter in front of `targets`: target_filter[id % TARGET_FILTER_SLOTS]
 * is non-zero when some target cgroup hashes there. It lives in a data section of
 * its own, which every object shares (bpf/probe.go), so the check is one load with no helper call, and a task outside the target set
 * (every other process on the node) is turned away without hashing; only a
 * slot hit pays for the exact lookup in `targets`. User space sets it.
 */
#define TARGET_FILTER_SLOTS 4096
volatile __u8 target_filter[TARGET_FILTER_SLOTS] SEC(".data.target_filter");

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

/*
 * Per-CPU counters, so two cores hammering one key never share a cache line.
 * Allocated per key as keys come (Linux 6.1 made such maps safe in tracing
 * programs, with bpf_mem_alloc): preallocated, 65,536 entries held 8 bytes
 * per possible CPU each from the start, 0.5 MiB per CPU (128 MiB on a 256-CPU
 * node) for the few hundred keys a recording has. The first check of a key
 * pays the allocation; a thread's run of checks (pending.h) touches the map
 * only when its key changes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
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
 *   - run_*: the thread's run of checks of one key (lib/pending.h).
 *   - seen (tracepoint backend only): before holds the credentials the
 *     task had when last looked at, read from the struct cred at cred;
 *     syscall is the set*id/capset call whose
 *     capability check came since (-1: none), with its arguments.
 */
struct task_state {
	struct agg_key run_key; /* the key of the thread's run of checks (pending.h) */
	__u64 run_count;        /* the run's checks not yet in `checks` */
	__u64 run_base;         /* run_key's count in `checks` on the CPU where the run began */
	struct creds before;
	__u64 args[3];
	__u64 cred;
	__u64 runtime_root; /* with runtime_init: the dentry of the runtime's root */
	__s32 syscall;
	__u32 run_seq; /* odd while run_key and run_count change */
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

#endif /* CAPPROF_MAPS_H */
