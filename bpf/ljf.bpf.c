/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ljf: longest-job-first for batch, with aging.
 *
 * Design: the expected size of a job (a process, keyed by tgid) comes from the
 * hint map ljf_hints (tgid -> expected CPU ms, filled by userspace, e.g.
 * `bpftool map update name ljf_hints key <tgid LE> value <ms LE>`), else from
 * the CPU time the process has used so far (learned in ops.stopping into
 * ljf_seen). Runnable tasks wait in one DSQ keyed by
 *     max(job_start, now - max_boost) + max_boost - min(size, max_boost)
 * where job_start is when the task first became schedulable. Keying on the
 * job's start, not on each enqueue, keeps a big job ahead of the small jobs
 * that started with it for as long as it runs (up to max_boost), so it runs
 * to completion on one CPU instead of sharing: the longest-processing-time
 * order that keeps a long job from becoming the tail of the batch. (Keyed on
 * each enqueue, a 480 ms job's head start lasted only 460 ms and it then
 * shared the CPU with the shorts.) Wakeups of tasks whose last run was short
 * (job launchers, shells) also get the full boost: they use little CPU and
 * delaying them would delay every job they start. A hinted job never counts
 * as a launcher.
 *
 * No starvation: the base never trails the clock by more than max_boost and
 * the boost is capped at max_boost, so a small job waits at most about
 * 2 * max_boost_ms behind any later arrival, however big and old it is.
 *
 * Trade-offs: small jobs finish later (mean completion suffers); without hints
 * the learned size favours jobs that have already run long, which approximates
 * run-to-completion in launch order. Where it fits: batch/HPC queues where
 * makespan matters and sizes are known or stable across runs.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

/* Tunables: set by the loader before load (see ljf.json). */
const volatile u64 slice_us = 20000;		/* slice per dispatch */
const volatile u64 max_boost_ms = 100;		/* cap of the size head start */
const volatile u64 short_run_us = 1000;		/* last run shorter than this = launcher */

#define SHARED_DSQ 1ULL

/* Userspace hints: tgid -> expected total CPU time of the job, ms. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u64);
} ljf_hints SEC(".maps");

/* Learned: tgid -> CPU ns used so far (LRU: exited jobs age out). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, u64);
} ljf_seen SEC(".maps");

struct task_ctx {
	u64 job_start;		/* when the task first became schedulable */
	u64 run_start;
	u64 last_run;		/* ns of the task's most recent stint */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} ljf_tasks SEC(".maps");

/* Largest key that started running: the queue's clock. */
static u64 vtime_now;

static __always_inline u64 slice_ns(void)
{
	return slice_us * SC_NSEC_PER_USEC;
}

/* Expected size of @p's job in ns, hint first (*hinted says which). */
static __always_inline u64 job_size(struct task_struct *p, bool *hinted)
{
	u32 tgid = p->tgid;
	u64 *v = bpf_map_lookup_elem(&ljf_hints, &tgid);

	*hinted = v != NULL;
	if (v)
		return *v * SC_NSEC_PER_MSEC;
	v = bpf_map_lookup_elem(&ljf_seen, &tgid);
	return v ? *v : 0;
}

s32 BPF_STRUCT_OPS(ljf_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = sc_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	if (is_idle)
		sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns(), 0);
	return cpu;
}

void BPF_STRUCT_OPS(ljf_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&ljf_tasks, p, 0, 0);
	u64 max_boost = max_boost_ms * SC_NSEC_PER_MSEC;
	bool hinted;
	u64 boost = sc_min(job_size(p, &hinted), max_boost);
	u64 now = sc_now(), base = now, key;

	if (tctx) {
		/* A job with a hint is what its hint says, never a launcher: a
		 * batch's tasks parked at a start gate all wake after a short
		 * stint, and the launcher boost would put every small one of
		 * them ahead of the big job the hints rank first. */
		if (!hinted && (enq_flags & SCX_ENQ_WAKEUP) &&
		    tctx->last_run < short_run_us * SC_NSEC_PER_USEC)
			boost = max_boost;
		/* A job keeps the priority of its start, for at most max_boost. */
		if (now > max_boost && sc_vtime_before(now - max_boost, tctx->job_start))
			base = tctx->job_start;
		else if (now > max_boost)
			base = now - max_boost;
	}
	key = base + (max_boost - boost);
	/*
	 * Keys start at most max_boost before now; one that still trails the
	 * queue clock by more than twice that (a clock oddity) starts at the
	 * clock instead of jumping the whole queue.
	 */
	if (sc_vtime_before(key + 2 * max_boost, vtime_now))
		key = vtime_now;
	sc_dsq_insert_vtime(p, SHARED_DSQ, slice_ns(), key, enq_flags);
}

void BPF_STRUCT_OPS(ljf_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(SHARED_DSQ);
}

void BPF_STRUCT_OPS(ljf_running, struct task_struct *p)
{
	struct task_ctx *tctx = bpf_task_storage_get(&ljf_tasks, p, 0, 0);

	if (sc_vtime_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
	if (tctx)
		tctx->run_start = sc_now();
}

void BPF_STRUCT_OPS(ljf_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = bpf_task_storage_get(&ljf_tasks, p, 0, 0);
	u32 tgid = p->tgid;
	u64 now = sc_now(), ran = 0, *seen;

	if (!tctx)
		return;
	if (now > tctx->run_start)
		ran = now - tctx->run_start;
	tctx->last_run = ran;
	seen = bpf_map_lookup_elem(&ljf_seen, &tgid);
	if (seen) {
		__sync_fetch_and_add(seen, ran);
	} else {
		bpf_map_update_elem(&ljf_seen, &tgid, &ran, BPF_NOEXIST);
	}
}

s32 BPF_STRUCT_OPS_SLEEPABLE(ljf_init_task, struct task_struct *p,
			     struct scx_init_task_args *args)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&ljf_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tctx)
		return -12; /* -ENOMEM */
	tctx->job_start = sc_now();
	return 0;
}

void BPF_STRUCT_OPS(ljf_exit_task, struct task_struct *p, struct scx_exit_task_args *args)
{
	u32 tgid = p->tgid;

	/* The job is over when its main thread goes; forget its size. */
	if (p->pid == p->tgid)
		bpf_map_delete_elem(&ljf_seen, &tgid);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(ljf_init)
{
	return sc_create_dsq(SHARED_DSQ, -1);
}

void BPF_STRUCT_OPS(ljf_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops ljf_ops = {
	.select_cpu	= (void *)ljf_select_cpu,
	.enqueue	= (void *)ljf_enqueue,
	.dispatch	= (void *)ljf_dispatch,
	.running	= (void *)ljf_running,
	.stopping	= (void *)ljf_stopping,
	.init_task	= (void *)ljf_init_task,
	.exit_task	= (void *)ljf_exit_task,
	.init		= (void *)ljf_init,
	.exit		= (void *)ljf_exit,
	.name		= "ljf",
};
