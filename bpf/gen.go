// Package bpf holds capprof's eBPF programs (capprof.c, compiled by bpf2go
// into the committed capprof_x86_bpfel.{go,o}) and the Go API that loads,
// attaches and reads them. Nothing outside this package touches the generated
// names.
package bpf

//go:generate go tool bpf2go -tags linux -target amd64 -type agg_key -type event_header -type cap_event -type exec_event -type exit_event -type fork_event -type cred_event -type creds -type sample_event -type target -type outcome -type check_event -type rate_key -type rate_state -type cgroup_event -type pod_key capprof capprof.c -- -I./headers -I/usr/include/x86_64-linux-gnu -mcpu=v3 -Wall -Werror
