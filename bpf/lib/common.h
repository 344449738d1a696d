/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every capprof eBPF source starts from: the kernel types capprof reads
 * (vmlinux_min.h), libbpf's helpers and the records shared with user space.
 */
#ifndef CAPPROF_COMMON_H
#define CAPPROF_COMMON_H


#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "events.h"

#define EEXIST 17

/* One load the compiler neither drops, repeats nor moves across barrier(). */
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))

#endif /* CAPPROF_COMMON_H */
