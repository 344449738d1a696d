/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A thread's run of checks of one key, counted in its task state rather than
 * in the per-CPU `checks` hash: the hash is touched when the thread's key
 * changes, not at every check of a loop (make bench's setuid(0) loop checks
 * one key a million times). A run's count reaches `checks` when its thread's
 * key changes, when the thread exits (on_exit), and when recording stops
 * (take_pending, once the hooks are detached); a snapshot taken while
 * recording adds the runs in progress (peek_pending).
 */
#ifndef CAPPROF_PENDING_H
#define CAPPROF_PENDING_H

#include "output.h"

static __always_inline bool same_key(const struct agg_key *a, const struct agg_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/*
 * The run ends: its count goes to `checks`. The exchange keeps it exact
 * where two places end one thread's run at once: take_pending and the
 * thread's own on_exit, once the capability hooks are detached.
 */
static __always_inline void end_run(struct task_state *ts)
{
	__u64 n = __sync_lock_test_and_set(&ts->run_count, 0);

	if (!n)
		return;
	__u64 *count = bpf_map_lookup_elem(&checks, &ts->run_key);
	if (count)
		__sync_fetch_and_add(count, n);
	else
		count_stat(STAT_AGG_FULL);
}

/*
 * A new run of key, whose count on this CPU is now count (its first check
 * included): the previous run ends. run_seq is odd while the run's key and
 * count change, so peek_pending never pairs a key with another's count.
 */
static __always_inline void start_run(struct task_state *ts, const struct agg_key *key, __u64 count)
{
	ts->run_seq++;
	barrier();
	end_run(ts);
	ts->run_key = *key;
	ts->run_base = count;
	barrier();
	ts->run_seq++;
}

/*
 * A check that continues the thread's run is counted there; it returns the
 * key's count on this CPU as of now (run_base plus the run), or 0 when the
 * check is not of the run's key.
 */
static __always_inline __u64 continue_run(struct task_state *ts, const struct agg_key *key)
{
	if (!same_key(&ts->run_key, key))
		return 0;
	return ts->run_base + ++ts->run_count;
}

/* One run in progress, as peek_pending writes it for user space. Its
 * thread changes the run with preemption off, a few instructions long; a
 * run changing at every try is left out of this snapshot. */
static __always_inline void write_run(struct seq_file *seq, struct task_state *ts)
{
	struct pending_run r;

	for (int try = 0; try < 4; try++) {
		__u32 seq_before = READ_ONCE(ts->run_seq);
		if (seq_before & 1)
			continue;
		barrier();
		r.key = ts->run_key;
		r.count = READ_ONCE(ts->run_count);
		barrier();
		if (READ_ONCE(ts->run_seq) != seq_before)
			continue;
		if (r.count)
			bpf_seq_write(seq, &r, sizeof(r));
		return;
	}
}

#endif /* CAPPROF_PENDING_H */
