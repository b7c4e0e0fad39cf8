/* SPDX-License-Identifier: GPL-2.0 */
/*
 * las: least-attained-service (shortest-job-first without knowing job sizes).
 *
 * Design: a task's priority is the CPU time it has consumed since it last
 * slept for long (its "attained service"). Runnable tasks wait in one
 * vtime-ordered DSQ keyed by  enqueue_time + min(attained, max_penalty):
 * a fresh or short job sorts in front, a job that has run for long sorts up to
 * max_penalty_ms behind. Since the key is wall-clock based and the penalty is
 * capped, a job waits at most max_penalty_ms behind any later arrival: aging
 * is built in and nothing starves. A task that sleeps longer than
 * forget_after_ms starts a new "job" (its attained service is reset), so an
 * interactive process is not punished for the CPU it used an hour ago.
 *
 * Trade-offs: short jobs finish early (mean completion time drops), long jobs
 * finish later than under fair sharing; without preemption a new job waits for
 * the current slice to expire (slice_us). One shared ordered DSQ.
 *
 * Where it fits: batch queues and job runners with unknown, heavy-tailed job
 * sizes where mean completion / turnaround matters more than the longest job.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

/* Tunables: set by the loader before load (see las.json). */
const volatile u64 slice_us = 10000;		/* slice per dispatch */
const volatile u64 max_penalty_ms = 100;	/* cap on how far attained service pushes a task back */
const volatile u64 forget_after_ms = 100;	/* a sleep this long starts a new job */

#define SHARED_DSQ 1ULL

struct task_ctx {
	u64 attained;		/* ns of CPU consumed in the current job */
	u64 run_start;		/* when the task last started running */
	u64 sleep_start;	/* when the task last stopped being runnable */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} las_tasks SEC(".maps");

/* Largest key handed out so far: the queue's clock, only moves forward. */
static u64 vtime_now;

static __always_inline u64 slice_ns(void)
{
	return slice_us * SC_NSEC_PER_USEC;
}

static __always_inline struct task_ctx *ctx_of(struct task_struct *p)
{
	return bpf_task_storage_get(&las_tasks, p, 0, 0);
}

s32 BPF_STRUCT_OPS(las_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = sc_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	/* Nobody waits on an idle CPU, so priority does not matter: run now. */
	if (is_idle)
		sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns(), 0);
	return cpu;
}

void BPF_STRUCT_OPS(las_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = ctx_of(p);
	u64 now = sc_now();
	u64 penalty = 0;
	u64 key;

	if (tctx) {
		if ((enq_flags & SCX_ENQ_WAKEUP) && tctx->sleep_start &&
		    now > tctx->sleep_start + forget_after_ms * SC_NSEC_PER_MSEC)
			tctx->attained = 0;
		penalty = sc_min(tctx->attained, max_penalty_ms * SC_NSEC_PER_MSEC);
	}
	key = now + penalty;
	/* Keys are wall-clock based; never hand out one behind the queue clock
	 * by more than the penalty window (guards against clock source skew). */
	if (sc_vtime_before(key + max_penalty_ms * SC_NSEC_PER_MSEC, vtime_now))
		key = vtime_now;
	sc_dsq_insert_vtime(p, SHARED_DSQ, slice_ns(), key, enq_flags);
}

void BPF_STRUCT_OPS(las_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(SHARED_DSQ);
}

void BPF_STRUCT_OPS(las_running, struct task_struct *p)
{
	struct task_ctx *tctx = ctx_of(p);

	if (sc_vtime_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
	if (tctx)
		tctx->run_start = sc_now();
}

void BPF_STRUCT_OPS(las_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = ctx_of(p);
	u64 now = sc_now();

	if (!tctx)
		return;
	if (now > tctx->run_start)
		tctx->attained += now - tctx->run_start;
	if (!runnable)
		tctx->sleep_start = now;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(las_init_task, struct task_struct *p,
			     struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&las_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -12; /* -ENOMEM */
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(las_init)
{
	return sc_create_dsq(SHARED_DSQ, -1);
}

void BPF_STRUCT_OPS(las_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops las_ops = {
	.select_cpu	= (void *)las_select_cpu,
	.enqueue	= (void *)las_enqueue,
	.dispatch	= (void *)las_dispatch,
	.running	= (void *)las_running,
	.stopping	= (void *)las_stopping,
	.init_task	= (void *)las_init_task,
	.init		= (void *)las_init,
	.exit		= (void *)las_exit,
	.name		= "las",
};
