/* SPDX-License-Identifier: GPL-2.0 */
/*
 * iboost: latency-aware interactive boost.
 *
 * Design: every task carries an exponentially weighted average of how long it
 * runs before it sleeps or is preempted (its burst). One vtime-ordered DSQ is
 * keyed by  enqueue_time + penalty, where the penalty grows with the burst:
 * a task that wakes often and runs briefly sorts near the front, a CPU hog up
 * to hog_delay_ms behind. Short-burst tasks get a short slice (slice_us) so
 * they cannot hide a hog; tasks classed as hogs (burst >= burst_thresh_us)
 * get a long slice (hog_slice_us) at the lower priority, which costs them no
 * throughput. A waking short-burst task queues on the waker's CPU when the
 * waker is not a hog and fewer than affine_depth tasks wait there: the waker
 * typically sleeps right after the wakeup, and waking another (idle, possibly
 * halted or, in a VM, descheduled) CPU costs more than that short wait. Else
 * it takes its previous CPU if idle, any idle CPU, or the shared DSQ; then,
 * with no CPU idle, it preempts (SCX_KICK_PREEMPT) the CPU whose running task
 * sorts latest (key = start + penalty), if that is more than preempt_margin_us
 * after the wakee's key: a fresh hog at once, and also a longer-burst request
 * handler early in its run (kicking only hogs left a server's dispatcher
 * thread waiting behind its own workers, short-burst too but sorting later).
 *
 * No starvation: the penalty is bounded by hog_delay_ms and the key is
 * wall-clock based, so a hog waits at most hog_delay_ms behind any later
 * arrival; preemption only requeues the victim under its bounded key (one
 * kick per victim stint), and at most affine_depth tasks
 * queue on a CPU's local DSQ ahead of the shared one.
 *
 * Trade-offs: hogs lose some throughput to preemptions and to the short
 * delay; a task changing behaviour is reclassified after a few bursts (EWMA).
 * Where it fits: desktops, terminals and request handlers next to batch work.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

/* Tunables: set by the loader before load (see iboost.json). */
const volatile u64 slice_us = 3000;		/* slice of interactive tasks */
const volatile u64 hog_slice_us = 20000;	/* slice of CPU hogs */
const volatile u64 burst_thresh_us = 2000;	/* average burst at or above this = hog */
const volatile u64 hog_delay_ms = 20;		/* largest penalty (a full hog) */
const volatile bool preempt_hogs = true;	/* interactive wakeups preempt a later-sorting task */
const volatile u64 preempt_margin_us = 1000;	/* key lead a wakeup needs to preempt */
const volatile bool wake_affine = true;		/* short wakees queue behind the waker */
const volatile u32 affine_depth = 2;		/* max tasks waiting on the waker's CPU */

#define SHARED_DSQ 1ULL
#define MAX_CPUS 64

struct task_ctx {
	u64 avg_burst;		/* EWMA of ns run per stint (3/4 old, 1/4 new) */
	u64 run_start;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} iboost_tasks SEC(".maps");

/* Per CPU: key (start + penalty) of the task running there; 0 = none or kicked. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CPUS);
	__type(key, u32);
	__type(value, u64);
} iboost_cpu_key SEC(".maps");

/* Largest key that started running: the queue's clock, only moves forward. */
static u64 vtime_now;

static __always_inline struct task_ctx *ctx_of(struct task_struct *p)
{
	return bpf_task_storage_get(&iboost_tasks, p, 0, 0);
}

static __always_inline bool is_hog(struct task_ctx *tctx)
{
	return tctx && tctx->avg_burst >= burst_thresh_us * SC_NSEC_PER_USEC;
}

static __always_inline u64 slice_for(struct task_ctx *tctx)
{
	return (is_hog(tctx) ? hog_slice_us : slice_us) * SC_NSEC_PER_USEC;
}

/* Burst -> penalty: linear up to the hog threshold, then the full delay. */
static __always_inline u64 penalty_for(struct task_ctx *tctx)
{
	u64 thresh = burst_thresh_us * SC_NSEC_PER_USEC;
	u64 max = hog_delay_ms * SC_NSEC_PER_MSEC;

	if (!tctx || !thresh)
		return 0;
	if (tctx->avg_burst >= thresh)
		return max;
	return max * tctx->avg_burst / thresh;
}

/* Preempt the CPU whose running task sorts latest, if after @key by the margin. */
static __always_inline void preempt_for(u64 key)
{
	u32 nr = sc_min(scx_bpf_nr_cpu_ids(), MAX_CPUS);
	u64 latest = key + preempt_margin_us * SC_NSEC_PER_USEC, *k;
	s32 i, victim = -1;

	bpf_for(i, 0, nr) {
		u32 cpu = i;

		k = bpf_map_lookup_elem(&iboost_cpu_key, &cpu);
		if (k && *k && sc_vtime_before(latest, *k)) {
			latest = *k;
			victim = i;
		}
	}
	if (victim < 0)
		return;
	{
		u32 cpu = victim;

		k = bpf_map_lookup_elem(&iboost_cpu_key, &cpu);
		if (k)
			*k = 0;	/* one kick per victim until it runs again */
	}
	sc_kick_cpu(victim, SCX_KICK_PREEMPT);
}

s32 BPF_STRUCT_OPS(iboost_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx = ctx_of(p);
	struct task_struct *waker = bpf_get_current_task_btf();
	s32 this_cpu = bpf_get_smp_processor_id();
	bool is_idle = false;
	s32 cpu;

	if (wake_affine && tctx && !is_hog(tctx)) {
		/* Behind a short-burst waker, which is about to sleep. */
		if (bpf_cpumask_test_cpu(this_cpu, p->cpus_ptr) &&
		    !is_hog(ctx_of(waker)) &&
		    sc_dsq_nr_queued(SCX_DSQ_LOCAL) < (s32)affine_depth) {
			sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_for(tctx), 0);
			return this_cpu;
		}
		/* Warm previous CPU, idle: run there now. */
		if (bpf_cpumask_test_cpu(prev_cpu, p->cpus_ptr) &&
		    scx_bpf_test_and_clear_cpu_idle(prev_cpu)) {
			sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_for(tctx), 0);
			return prev_cpu;
		}
	}
	cpu = sc_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle)
		sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_for(tctx), 0);
	return cpu;
}

void BPF_STRUCT_OPS(iboost_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = ctx_of(p);
	u64 key = sc_now() + penalty_for(tctx);

	/* Wall-clock keys never trail the queue clock by more than one delay. */
	if (sc_vtime_before(key + hog_delay_ms * SC_NSEC_PER_MSEC, vtime_now))
		key = vtime_now;
	sc_dsq_insert_vtime(p, SHARED_DSQ, slice_for(tctx), key, enq_flags);

	if (preempt_hogs && (enq_flags & SCX_ENQ_WAKEUP) && !is_hog(tctx))
		preempt_for(key);
}

void BPF_STRUCT_OPS(iboost_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(SHARED_DSQ);
}

void BPF_STRUCT_OPS(iboost_running, struct task_struct *p)
{
	struct task_ctx *tctx = ctx_of(p);
	u32 cpu = scx_bpf_task_cpu(p);
	u64 *key = bpf_map_lookup_elem(&iboost_cpu_key, &cpu);
	u64 now = sc_now();

	if (sc_vtime_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
	/* Its key from when it started (start + penalty, like a deadline): a
	 * wakeup that sorts earlier than this by the margin preempts it. */
	if (key)
		*key = now + penalty_for(tctx);
	if (tctx)
		tctx->run_start = now;
}

void BPF_STRUCT_OPS(iboost_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = ctx_of(p);
	u32 cpu = scx_bpf_task_cpu(p);
	u64 *key = bpf_map_lookup_elem(&iboost_cpu_key, &cpu);
	u64 now = sc_now(), ran = 0;

	if (key)
		*key = 0;
	if (!tctx)
		return;
	if (now > tctx->run_start)
		ran = now - tctx->run_start;
	tctx->avg_burst = (tctx->avg_burst * 3 + ran) / 4;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(iboost_init_task, struct task_struct *p,
			     struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&iboost_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -12; /* -ENOMEM */
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(iboost_init)
{
	return sc_create_dsq(SHARED_DSQ, -1);
}

void BPF_STRUCT_OPS(iboost_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops iboost_ops = {
	.select_cpu	= (void *)iboost_select_cpu,
	.enqueue	= (void *)iboost_enqueue,
	.dispatch	= (void *)iboost_dispatch,
	.running	= (void *)iboost_running,
	.stopping	= (void *)iboost_stopping,
	.init_task	= (void *)iboost_init_task,
	.init		= (void *)iboost_init,
	.exit		= (void *)iboost_exit,
	.name		= "iboost",
};
