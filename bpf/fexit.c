//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * --probe fexit (Linux 5.5+ with BTF trampolines): fexit/cap_capable, which
 * also reads cap_capable's opts (the audit class), and fentry/commit_creds,
 * which sees every credential install with the full new credentials.
 */

#include "check.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

SEC("fentry/commit_creds")
int BPF_PROG(on_commit_creds, struct cred *new)
{
	report_commit(new);
	return 0;
}
