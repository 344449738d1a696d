/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * An executable's identity and a path as a task sees it.
 */
#ifndef CAPPROF_PATH_H
#define CAPPROF_PATH_H

#include "common.h"

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

#endif /* CAPPROF_PATH_H */
