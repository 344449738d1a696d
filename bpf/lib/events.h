/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Structures shared by the eBPF programs and user space. bpf2go turns each
 * struct named with -type in gen.go into a Go type, so the layout here is the
 * wire format: keep fields naturally aligned and padding explicit.
 */
#ifndef CAPPROF_H
#define CAPPROF_H

#define TASK_COMM_LEN 16
#define PATH_DEPTH 16     /* path components kept per executable */
#define PATH_NAME_LEN 128 /* bytes kept per component, NUL included */
#define FILENAME_LEN 256  /* execve's filename argument as given */
#define STACK_DEPTH 24    /* kernel frames kept for a first-seen check */
#define ARGS_LEN 1024     /* bytes of an exec's argument strings kept, NULs included */
#define CGROUP_NAME_LEN 128 /* bytes of a cgroup directory's name kept, NUL included */
#define POD_UID_LEN 36      /* a pod uid: 8-4-4-4-12 hex digits with dashes */

enum event_type {
	EVENT_CAP_FIRST = 1, /* first check with a new aggregation key */
	EVENT_EXEC = 2,
	EVENT_EXIT = 3,
	EVENT_FORK = 4,
	EVENT_CRED = 5, /* credentials changed (not by an exec) */
	EVENT_CAP_SAMPLE = 6, /* a later check's stack, sampled per key */
	EVENT_CHECK = 7,      /* one capability check, rate-limited (live events, in live_events) */
	EVENT_CGROUP = 8,     /* a cgroup created below a target (or for an armed pod), or a target removed */
};

/* agg_key.flags */
enum check_flag {
	CHECK_INIT_USERNS = 1 << 0,   /* checked against the initial user namespace */
	CHECK_CRED_OVERRIDE = 1 << 1, /* task runs with overridden creds (cred != real_cred) */
	CHECK_OTHER_CRED = 1 << 2,    /* the checked cred is not the current task's own */
	CHECK_RUNTIME_INIT = 1 << 3,  /* made by the container runtime before the workload's exec */
	CHECK_STEADY = 1 << 4,        /* made after the target's startup window */
	/* cap_capable's opts (Linux 5.1+; the int audit argument before),
	 * which only the fexit and kprobe backends see: */
	CHECK_AUDIT_KNOWN = 1 << 5, /* NOAUDIT and INSETID below are meaningful */
	CHECK_NOAUDIT = 1 << 6,     /* CAP_OPT_NOAUDIT: the kernel would not audit a denial */
	CHECK_INSETID = 1 << 7,     /* CAP_OPT_INSETID: a set*id syscall's check */
};

/* target.phase: where a target cgroup is in its life. */
enum target_phase {
	TARGET_NOT_STARTED = 0, /* no workload exec seen yet; the first one starts the startup window */
	TARGET_STARTUP = 1,     /* within the startup window, which began at started_ns */
	TARGET_STEADY = 2,      /* past it: the first check after the window moves the target here */
};

/* target.flags */
enum target_flag {
	/* A container runtime starts this target's processes: a task that enters
	 * it from outside the target set (moved in, or born in by
	 * clone3(CLONE_INTO_CGROUP)) is the runtime's until it execs the
	 * workload. Pods' targets have it; a recorded command's do not. */
	TARGET_RUNTIME = 1 << 0,
	/* Created while its parent was a target (or as an armed pod's cgroup):
	 * tracked from before its first process. */
	TARGET_CREATED = 1 << 1,
};

/* The value of the targets map, one per target cgroup. */
struct target {
	__u64 started_ns;    /* CLOCK_MONOTONIC ns of the first workload exec */
	__u64 entering_ns;   /* CLOCK_MONOTONIC ns at which the runtime began moving the first task in; 0: none (see runtime_entering) */
	__u64 entering_root; /* then: the mover's root, as runtime_root of task_state */
	__u32 phase;         /* enum target_phase */
	__u32 flags;         /* enum target_flag */
};

/* The key of armed_pods: a pod uid, dashes as in the API (a systemd slice
 * name's underscores turned back into dashes). */
struct pod_key {
	char uid[POD_UID_LEN];
	__u8 pad[4];
};

/* cgroup_event.op */
enum cgroup_op {
	CGROUP_CREATED = 0, /* made a target at creation: its parent is one, or it is an armed pod's */
	CGROUP_REMOVED = 1, /* a target's directory was removed; it is no longer a target */
};

/*
 * What happened to the syscalls in which a check of one key was denied:
 * sampled, up to OUTCOME_SAMPLES per key. failed: the syscall returned an
 * error (the workload may have needed the capability); succeeded: it went on
 * without it (a tolerated probe, or another capability sufficed).
 */
#define OUTCOME_SAMPLES 64
struct outcome {
	__u64 failed;
	__u64 succeeded;
};

/* exec_event.flags */
enum exec_flag {
	EXEC_PRIV_GAIN = 1 << 0,     /* euid/egid changed or permitted caps grew at exec */
	EXEC_HAVE_BEFORE = 1 << 1,   /* before holds the credentials the exec started with */
	EXEC_SCRIPT = 1 << 2,        /* an interpreter ran filename (binfmt_script) */
	EXEC_BEFORE_FROM_COMMIT = 1 << 3, /* before was read at commit_creds, not at sched_prepare_exec */
	EXEC_DETAILS = 1 << 4,   /* args, cwd, loginuid, namespaces and the parent are filled (live events on) */
	EXEC_EXISTING = 1 << 5,  /* not an exec: a process already running when its cgroup became a target */
	EXEC_ARGS_TRUNCATED = 1 << 6, /* the arguments were longer than ARGS_LEN */
	EXEC_RUNTIME_INIT = 1 << 7,   /* the container runtime executing itself, not the workload (see task_state) */
};

/* exec_event.ns: the namespaces of the process, as inode numbers. */
enum ns_index {
	NS_UTS = 0,
	NS_IPC = 1,
	NS_MNT = 2,
	NS_PID = 3,
	NS_PID_FOR_CHILDREN = 4,
	NS_NET = 5,
	NS_TIME = 6,
	NS_TIME_FOR_CHILDREN = 7,
	NS_CGROUP = 8,
	NS_SLOTS = 10, /* NS_CGROUP + 1, rounded up to keep the struct 8-aligned */
};

/* cred_event.source: how a credential change was seen. */
enum cred_source {
	CRED_FROM_SYSCALL = 0, /* real_cred compared with the last seen (tracepoint backend), attributed to the
			* set*id/capset call checked in between; syscall -1 when none was */
	CRED_FROM_COMMIT = 1,  /* commit_creds() installing new credentials, by any path */
};

/* Indexes into the stats array: things lost, counted in the kernel. */
enum stat_index {
	STAT_RINGBUF_DROPS = 0, /* events not delivered: ring buffer full */
	STAT_AGG_FULL = 1,      /* checks not counted: aggregation map full */
	STAT_PENDING_FULL = 2,  /* credential changes not followed: no task state could be stored */
	STAT_OUTCOME_LOST = 3,  /* denied checks whose syscall's return could not be followed */
	STAT_LIVE_DROPS = 4,    /* live check events not delivered: live_events full, or check_rates full */
	STAT_TARGETS_FULL = 5,  /* cgroups created below a target but not tracked: targets map full */
	STAT_MAX = 6,
};

/* Aggregation key: one counter per distinct combination. */
struct agg_key {
	__u64 cgroup_id;
	__u64 exe_ino; /* executable identity: inode and device of mm->exe_file */
	__u32 exe_dev;
	__s32 syscall; /* syscall in progress, -1 when none */
	__u8 cap;
	__u8 denied; /* 1 when cap_capable returned an error */
	__u8 flags;  /* enum check_flag */
	__u8 pad[5];
};

/* A thread's run of checks not yet counted in `checks` (peek_pending). */
struct pending_run {
	struct agg_key key;
	__u64 count;
};

struct exe_path {
	__u32 depth;     /* components filled, innermost first */
	__u32 truncated; /* 1 when the path was deeper than PATH_DEPTH */
	char names[PATH_DEPTH][PATH_NAME_LEN];
};

struct creds {
	__u32 uid, gid, suid, sgid, euid, egid, fsuid, fsgid;
	__u64 cap_inheritable, cap_permitted, cap_effective, cap_bset, cap_ambient;
	__u32 userns_level; /* the credentials' user namespace: 0 is the initial one */
	__u32 userns_inum;  /* its inode number (/proc/PID/ns/user) */
};

/*
 * An exec's identity on the node: the process (tgid and its start time, the
 * group leader's task->start_time, which de_thread() hands to a thread that
 * execs) and the exec (task->self_exec_id, which every exec increments and
 * clone() copies). User space turns it into the exec_id of live events.
 */
struct event_header {
	__u32 type; /* enum event_type */
	__u32 pid;  /* thread id */
	__u32 tgid; /* process id */
	__u32 exec_seq; /* self_exec_id, low 32 bits */
	__u64 cgroup_id;
	__u64 ktime_ns;
	__u64 start_ns; /* CLOCK_MONOTONIC ns when the process started */
	char comm[TASK_COMM_LEN];
};

struct cap_event {
	struct event_header hdr;
	struct agg_key key;
	__u32 uid;
	__s32 stack_bytes; /* bytes of stack filled, or a negative error */
	__u64 stack[STACK_DEPTH];
	struct exe_path exe;
};

/* A later check of a known key, with its stack: the key's stacks are sampled
 * when a CPU's count reaches a power of two. */
struct sample_event {
	struct event_header hdr;
	struct agg_key key;
	__s32 stack_bytes;
	__u32 pad;
	__u64 stack[STACK_DEPTH];
};

struct exec_event {
	struct event_header hdr;
	__u64 exe_ino;
	__u32 exe_dev;
	__u32 flags; /* enum exec_flag */
	__u32 ppid;
	__u32 parent_exec_seq;
	__u64 parent_start_ns;
	struct creds before;
	struct creds after;
	char filename[FILENAME_LEN];
	/* Without EXEC_DETAILS the record ends after exe's last component
	 * (exec_event_size): a third of its full size or less. */
	struct exe_path exe;
	/* Filled with EXEC_DETAILS only: */
	__u32 loginuid; /* the audit login uid, (u32)-1 when unset */
	__u32 args_len; /* bytes of args filled */
	__u32 ns[NS_SLOTS]; /* enum ns_index; 0 when the kernel lacks the namespace */
	char args[ARGS_LEN]; /* argv strings, NUL-separated */
	struct exe_path cwd;
};

/* A capability check, sent to live_events at most once per interval per
 * (exec, capability, verdict); the ones held back are counted. */
struct check_event {
	struct event_header hdr;
	struct agg_key key;
	__u64 suppressed; /* checks of this (exec, cap, verdict) held back since the last event */
	__s32 ret;        /* cap_capable()'s return: 0 or -EPERM */
	__u32 userns_inum; /* the user namespace checked against */
	__u32 userns_owner; /* its owner's uid and gid */
	__u32 userns_group;
	__s32 userns_level;
	__s32 stack_bytes; /* bytes of stack filled, or a negative error */
	__u64 stack[STACK_DEPTH]; /* for the call site, and the audit class the tracepoint cannot see */
};

/* check_rates: one per (exec, capability, verdict) with live events on. */
struct rate_key {
	__u64 start_ns;
	__u32 tgid;
	__u32 exec_seq;
	__u8 cap;
	__u8 denied;
	__u8 pad[6];
};

struct rate_state {
	__u64 last_ns;    /* when the last event was sent */
	__u64 suppressed; /* checks held back since */
};

struct exit_event {
	struct event_header hdr;
	__s32 exit_code; /* wait(2) status: exit code << 8, or the signal */
	__u32 pad;
};

struct fork_event {
	struct event_header hdr; /* the parent */
	__u32 child_pid;
	__u32 pad;
	__u64 child_start_ns;
};

struct cred_event {
	struct event_header hdr;
	__u64 exe_ino;
	__u32 exe_dev;
	__s32 syscall; /* the syscall that made the change, -1 when not known */
	__u64 args[3];
	__u32 source; /* enum cred_source */
	__u32 runtime_init; /* 1: made by the container runtime before the workload's exec */
	struct creds before;
	struct creds after;
};

/*
 * A cgroup the kernel side made a target when it was created, or a target
 * whose directory was removed. User space names a created cgroup after the
 * container id in its name, or after the nearest named ancestor.
 */
struct cgroup_event {
	struct event_header hdr; /* the task that made or removed the directory */
	__u64 id;
	__u64 parent_id;
	__u32 op;    /* enum cgroup_op */
	__u32 flags; /* the new target's enum target_flag */
	char name[CGROUP_NAME_LEN];
};

#endif
