/* Shared pieces of the observer's tracing probes (not sched_ext schedulers).
 *
 * Every probe is read-only: it attaches to scheduler tracepoints (tp_btf),
 * counts into fixed-size maps and never changes kernel state. Sizes are
 * fixed at compile time so a probe's memory bound is known before it loads.
 *
 * Filtering: user space writes cfg.mode before attaching:
 *   0 = every task, 1 = tasks whose tgid is in `tgids` (the workload's process
 *   tree, followed across fork in the kernel), 2 = tasks whose cgroup v2 id is
 *   in `cgids` (the workload's cgroup and its descendants).
 */
#pragma once
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

/* log2 buckets of microseconds: bucket i holds [2^(i-1), 2^i) us, bucket 0 is < 1 us. */
#define HIST_SLOTS 40
#define MAX_TGIDS 8192
#define MAX_CGIDS 1024
#define TASK_RUNNING_STATE 0

enum { STAT_EVENTS = 0, STAT_DROPPED = 1, STAT_FORKS = 2, STAT_SLOTS = 4 };

struct probe_cfg {
	__u32 mode;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct probe_cfg);
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TGIDS);
	__type(key, __u32);
	__type(value, __u8);
} tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CGIDS);
	__type(key, __u64);
	__type(value, __u8);
} cgids SEC(".maps");

/* events seen, events dropped because a map was full, forks followed */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_add(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u32 cfg_mode(void)
{
	__u32 zero = 0;
	struct probe_cfg *c = bpf_map_lookup_elem(&cfg, &zero);
	return c ? c->mode : 0;
}

static __always_inline bool wanted(struct task_struct *p)
{
	__u32 mode = cfg_mode();

	if (mode == 0)
		return true;
	if (mode == 1) {
		__u32 tgid = BPF_CORE_READ(p, tgid);
		return bpf_map_lookup_elem(&tgids, &tgid) != NULL;
	}
	__u64 cgid = BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
	return bpf_map_lookup_elem(&cgids, &cgid) != NULL;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

static __always_inline void hist_add(void *hist, __u64 delta_ns)
{
	__u64 us = delta_ns / 1000;
	__u32 slot = us ? log2_u64(us) + 1 : 0;

	if (slot >= HIST_SLOTS)
		slot = HIST_SLOTS - 1;
	__u64 *v = bpf_map_lookup_elem(hist, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Follow the workload's process tree: a child of a tracked process is tracked. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(follow_fork, struct task_struct *parent, struct task_struct *child)
{
	if (cfg_mode() != 1)
		return 0;
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	if (!bpf_map_lookup_elem(&tgids, &ptgid))
		return 0;
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;
	if (bpf_map_update_elem(&tgids, &ctgid, &one, BPF_ANY))
		stat_add(STAT_DROPPED);
	else
		stat_add(STAT_FORKS);
	return 0;
}
