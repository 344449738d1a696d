// Package bpf holds capprof's eBPF programs and the Go API that loads,
// attaches and reads them. capprof.c holds the programs every backend runs
// and the maps they share; tracepoint.c, fexit.c and kprobe.c hold one
// backend's hooks each; lib/ holds the C they share, a header per concern.
// bpf2go compiles each into the committed <name>_x86_bpfel.{go,o}; nothing
// outside this package touches the generated names.
package bpf

// The records, keys and enums shared with user space come from capprof.o;
// the backends' objects reuse its maps and so its types (-no-global-types).
//go:generate go tool bpf2go -tags linux -target amd64 -type agg_key -type event_header -type cap_event -type exec_event -type exit_event -type fork_event -type cred_event -type creds -type sample_event -type target -type outcome -type check_event -type rate_key -type rate_state -type cgroup_event -type pod_key -type pending_run capprof capprof.c -- -I./lib -I./headers -I/usr/include/x86_64-linux-gnu -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -tags linux -target amd64 -no-global-types tracepoint tracepoint.c -- -I./lib -I./headers -I/usr/include/x86_64-linux-gnu -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -tags linux -target amd64 -no-global-types fexit fexit.c -- -I./lib -I./headers -I/usr/include/x86_64-linux-gnu -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -tags linux -target amd64 -no-global-types kprobe kprobe.c -- -I./lib -I./headers -I/usr/include/x86_64-linux-gnu -mcpu=v3 -Wall -Werror
