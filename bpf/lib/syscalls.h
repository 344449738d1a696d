/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The syscall numbers the programs look for in a task's registers.
 */
#ifndef CAPPROF_SYSCALLS_H
#define CAPPROF_SYSCALLS_H


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

#endif /* CAPPROF_SYSCALLS_H */
