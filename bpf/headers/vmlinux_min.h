/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel types capprof's programs read, declared with only the fields
 * they touch. Every record carries preserve_access_index, so clang emits CO-RE
 * relocations and libbpf/cilium-ebpf resolve the real offsets against the
 * running kernel's BTF (/sys/kernel/btf/vmlinux) at load time. This replaces a
 * 5 MB generated vmlinux.h: a field that moved between kernel versions still
 * works, and a field that does not exist fails the load with a clear error.
 */
#ifndef CAPPROF_VMLINUX_MIN_H
#define CAPPROF_VMLINUX_MIN_H
/* This header stands in for vmlinux.h: libbpf's bpf_tracing.h then names
 * struct pt_regs' fields as the kernel does (di), not as the UAPI (rdi). */
#define __VMLINUX_H__

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef _Bool bool;
typedef int pid_t;
#define true 1
#define false 0

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
	int counter;
} atomic_t;

/* kuid_t/kgid_t wrap a plain uid_t since Linux 3.5. */
typedef struct {
	__u32 val;
} kuid_t;
typedef struct {
	__u32 val;
} kgid_t;

/*
 * kernel_cap_t is "struct { u64 val; }" since Linux 6.3 and
 * "struct kernel_cap_struct { u32 cap[2]; }" before. Both are 8 bytes with
 * the low word first, so capprof reads the whole field into this type and
 * never names .val in a relocation (see read_creds in lib/cred.h).
 */
typedef struct {
	__u64 val;
} kernel_cap_t;

struct qstr {
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};

struct vfsmount {
	struct dentry *mnt_root;
};

/* fs/mount.h: struct mount embeds the vfsmount that struct path points to. */
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct super_block {
	__u32 s_dev;
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};

struct file {
	struct path f_path;
	struct inode *f_inode;
};

struct mm_struct {
	struct file *exe_file;
	unsigned long arg_start;
	unsigned long arg_end;
};

struct fs_struct {
	struct path root;
	struct path pwd;
};

struct ns_common {
	unsigned int inum;
};

struct user_namespace {
	struct ns_common ns;
	int level;
	kuid_t owner;
	kgid_t group;
};

/* Every namespace embeds its ns_common as "ns". */
struct uts_namespace {
	struct ns_common ns;
};

struct ipc_namespace {
	struct ns_common ns;
};

struct mnt_namespace {
	struct ns_common ns;
};

struct pid_namespace {
	struct ns_common ns;
};

struct net {
	struct ns_common ns;
};

struct time_namespace { /* Linux 5.6+ with CONFIG_TIME_NS */
	struct ns_common ns;
};

struct cgroup_namespace {
	struct ns_common ns;
};

struct nsproxy {
	struct uts_namespace *uts_ns;
	struct ipc_namespace *ipc_ns;
	struct mnt_namespace *mnt_ns;
	struct pid_namespace *pid_ns_for_children;
	struct net *net_ns;
	struct time_namespace *time_ns;
	struct time_namespace *time_ns_for_children;
	struct cgroup_namespace *cgroup_ns;
};

/* include/linux/pid.h: a pid's number in each pid namespace, from the
 * initial one (numbers[0]) down to the task's own (numbers[level]). */
struct upid {
	int nr;
	struct pid_namespace *ns;
};

struct pid {
	unsigned int level;
	struct upid numbers[1];
};

struct cred {
	kuid_t uid;
	kgid_t gid;
	kuid_t suid;
	kgid_t sgid;
	kuid_t euid;
	kgid_t egid;
	kuid_t fsuid;
	kgid_t fsgid;
	kernel_cap_t cap_inheritable;
	kernel_cap_t cap_permitted;
	kernel_cap_t cap_effective;
	kernel_cap_t cap_bset;
	kernel_cap_t cap_ambient;
	struct user_namespace *user_ns;
};

struct signal_struct {
	atomic_t live;
};

struct task_struct {
	int pid;
	int tgid;
	int exit_code;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	struct pid *thread_pid;
	struct nsproxy *nsproxy;
	kuid_t loginuid; /* CONFIG_AUDIT */
	u64 self_exec_id;
	struct mm_struct *mm;
	const struct cred *real_cred;
	const struct cred *cred;
	struct fs_struct *fs;
	struct signal_struct *signal;
	struct css_set *cgroups;
	u64 start_time;
	char comm[16];
};

struct kernfs_node {
	__u64 id; /* u64 since Linux 5.5: the cgroup id */
	const char *name;
};

struct cgroup;

/* A cgroup's own css (cgroup->self) links it to its parent's. */
struct cgroup_subsys_state {
	struct cgroup *cgroup;
	struct cgroup_subsys_state *parent;
};

/* hierarchy_id is 0 for the cgroup v2 hierarchy ("0::" in /proc/PID/cgroup). */
struct cgroup_root {
	int hierarchy_id;
};

struct cgroup {
	struct cgroup_subsys_state self;
	struct kernfs_node *kn;
	struct cgroup_root *root;
	int nr_populated_csets; /* css_sets with tasks in this very cgroup, not its children */
};

struct css_set {
	struct cgroup *dfl_cgrp; /* the task's cgroup in the v2 hierarchy */
};

struct linux_binprm {
	const char *filename;
	const char *interp;
};

/* x86-64 register frame: orig_ax holds the syscall number from syscall entry
 * on, ax its return value once it returns; di, si, dx, cx, r8 and r9 hold a
 * function's arguments at a kprobe on its first instruction (and di, si, dx,
 * r10, r8, r9 a syscall's at entry). */
struct pt_regs {
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long bp;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long sp;
};

/* The context of an iter/task program (kernel/bpf/task_iter.c). */
struct bpf_iter_meta {
	void *seq;
	__u64 session_id;
	__u64 seq_num;
};
struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};
#pragma clang attribute pop

/*
 * Opaque BPF types the verifier recognises by name (include/uapi/linux/bpf.h),
 * so they are declared as the UAPI has them, without CO-RE relocation.
 * struct bpf_task_work (Linux 6.18) sits in a map value and carries a
 * scheduled task_work.
 */
struct bpf_task_work {
	__u64 __opaque;
} __attribute__((aligned(8)));

/* Only ever pointed to; a definition, not a forward declaration, because
 * cilium/ebpf matches kfunc prototypes against the kernel's by kind. */
struct bpf_map {
};

#endif
