/* SPDX-License-Identifier: GPL-2.0 */
/*
 * edf: earliest-deadline-first with latency weights.
 *
 * Design: each time a task becomes runnable it gets a deadline
 *     deadline = now + request * 100 / weight
 * where request is the slice it is expected to need (twice its average burst,
 * clamped to [min_slice_us, max_slice_us]) and weight is its nice weight
 * (100 = nice 0). A short request or a high weight means an early deadline,
 * like EEVDF's "latency nice" request size but on wall-clock time. All
 * runnable tasks wait in one DSQ ordered by deadline; the task is granted its
 * request as slice. A waking task whose deadline beats the one running on its
 * CPU by more than preempt_margin_us goes to the front of that CPU's local DSQ
 * and preempts it (at most max_preempts times between two pulls from the
 * shared DSQ) - unless the running task is its own short-burst waker: a
 * server thread that wakes several workers in a row, preempted by the first,
 * would post the rest only after that worker's whole request (it sleeps right
 * after the wakeups anyway, and the wakee takes its CPU then). With the
 * wakee_first tunable it is the other way round: when no CPU is idle, a
 * short-burst task woken by a short-burst task goes onto its waker's CPU and
 * preempts it (same budget), so each wakee waits for nobody and the waker's
 * remaining wakeups wait instead; fork wakeups are left alone.
 *
 * No starvation: the relative deadline is capped at max_deadline_ms, so a
 * task waits at most that long behind any later arrival, and preemptions per
 * CPU are budgeted, so the shared DSQ is always served again.
 *
 * Trade-offs: heavy tasks (long bursts, low weight) queue longer but run in
 * long slices; mis-predicted bursts cost a preemption. One shared DSQ.
 * Where it fits: latency-sensitive servers with mixed request sizes, audio or
 * control loops next to throughput work, anything with meaningful nice values.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

/* Tunables: set by the loader before load (see edf.json). */
const volatile u64 min_slice_us = 500;		/* smallest request / slice */
const volatile u64 max_slice_us = 20000;	/* largest request / slice */
const volatile u64 max_deadline_ms = 100;	/* cap on deadline - now */
const volatile u64 preempt_margin_us = 200;	/* deadline lead needed to preempt */
const volatile u32 max_preempts = 4;		/* preemptive wakeups per CPU between pulls */
const volatile bool wakee_first = true;	/* a short wakee preempts its short waker */

#define SHARED_DSQ 1ULL
#define MAX_CPUS 64

struct task_ctx {
	u64 avg_burst;		/* EWMA of ns run per stint */
	u64 run_start;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} edf_tasks SEC(".maps");

/* Per CPU: deadline of the task running there, 0 when idle. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CPUS);
	__type(key, u32);
	__type(value, u64);
} edf_cpu_deadline SEC(".maps");

/* Per CPU: preemptive wakeups since the CPU last pulled the shared DSQ. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CPUS);
	__type(key, u32);
	__type(value, u32);
} edf_cpu_preempts SEC(".maps");

/* Latest deadline that started running: the queue's clock. */
static u64 vtime_now;

static __always_inline struct task_ctx *ctx_of(struct task_struct *p)
{
	return bpf_task_storage_get(&edf_tasks, p, 0, 0);
}

static __always_inline u64 request_ns(struct task_ctx *tctx)
{
	u64 req = tctx ? tctx->avg_burst * 2 : 0;

	req = sc_max(req, min_slice_us * SC_NSEC_PER_USEC);
	return sc_min(req, max_slice_us * SC_NSEC_PER_USEC);
}

static __always_inline u64 rel_deadline_ns(struct task_struct *p, struct task_ctx *tctx)
{
	u32 weight = p->scx.weight ? p->scx.weight : 100;
	u64 rel = request_ns(tctx) * 100 / weight;

	return sc_min(rel, max_deadline_ms * SC_NSEC_PER_MSEC);
}

/*
 * select_cpu runs in the waker's context, so the current task is the waker
 * (or, for a wakeup from an interrupt such as a timer, the task it
 * interrupted: a hog there has long bursts and is still preempted). A task
 * whose bursts fit the smallest request is about to sleep again.
 */
static __always_inline bool waker_is_short(void)
{
	struct task_ctx *wctx = ctx_of(bpf_get_current_task_btf());

	return wctx && wctx->avg_burst * 2 <= min_slice_us * SC_NSEC_PER_USEC;
}

/*
 * wakee_first: a short-burst task woken (not forked) by a short-burst task
 * runs before its waker, on the waker's CPU. The waker of a request (a
 * server's dispatch thread) is about to sleep until its workers answer, so
 * the only thing that waits is its remaining wakeups.
 */
static __always_inline bool wakee_goes_first(struct task_struct *p, struct task_ctx *tctx,
					     u64 wake_flags)
{
	return wakee_first && !(wake_flags & SCX_WAKE_FORK) && tctx &&
	       tctx->avg_burst * 2 <= min_slice_us * SC_NSEC_PER_USEC && waker_is_short() &&
	       bpf_cpumask_test_cpu(bpf_get_smp_processor_id(), p->cpus_ptr);
}

s32 BPF_STRUCT_OPS(edf_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx = ctx_of(p);
	bool is_idle = false;
	s32 cpu = sc_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	u32 key = cpu;
	u64 *running, deadline;
	u32 *preempts;
	bool first;

	if (is_idle) {
		sc_dsq_insert(p, SCX_DSQ_LOCAL, request_ns(tctx), 0);
		return cpu;
	}
	/* No idle CPU: with wakee_first the wakee takes its waker's CPU. */
	first = wakee_goes_first(p, tctx, wake_flags);
	if (first) {
		cpu = bpf_get_smp_processor_id();
		key = cpu;
	}
	/* Busy CPU: preempt it if our deadline is clearly earlier. */
	running = bpf_map_lookup_elem(&edf_cpu_deadline, &key);
	preempts = bpf_map_lookup_elem(&edf_cpu_preempts, &key);
	if (!running || !preempts || !*running || *preempts >= max_preempts)
		return cpu;
	deadline = sc_now() + rel_deadline_ns(p, tctx);
	if (cpu == bpf_get_smp_processor_id() && waker_is_short()) {
		/* A short-burst waker in the middle of its wakeups: by default it
		 * finishes them (preempted by the first, it would post the rest
		 * only after that worker's whole request). With wakee_first a
		 * short wakee runs at once instead and the waker resumes after
		 * it: each wakee waits for no one, the later posts wait. */
		if (!first)
			return cpu;
		*preempts += 1;
		*running = deadline;
		sc_dsq_insert(p, SCX_DSQ_LOCAL, request_ns(tctx), SCX_ENQ_PREEMPT);
		return cpu;
	}
	if (sc_vtime_before(deadline + preempt_margin_us * SC_NSEC_PER_USEC, *running)) {
		*preempts += 1;
		*running = deadline;
		sc_dsq_insert(p, SCX_DSQ_LOCAL, request_ns(tctx), SCX_ENQ_PREEMPT);
	}
	return cpu;
}

void BPF_STRUCT_OPS(edf_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = ctx_of(p);
	u64 deadline = sc_now() + rel_deadline_ns(p, tctx);

	/* Wall-clock deadlines never trail the queue clock by more than the cap. */
	if (sc_vtime_before(deadline + max_deadline_ms * SC_NSEC_PER_MSEC, vtime_now))
		deadline = vtime_now;
	sc_dsq_insert_vtime(p, SHARED_DSQ, request_ns(tctx), deadline, enq_flags);
}

void BPF_STRUCT_OPS(edf_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 key = cpu;
	u32 *preempts = bpf_map_lookup_elem(&edf_cpu_preempts, &key);

	/* The local DSQ ran dry: the shared queue gets its turn, budget refills. */
	if (preempts)
		*preempts = 0;
	sc_dsq_move_to_local(SHARED_DSQ);
}

void BPF_STRUCT_OPS(edf_running, struct task_struct *p)
{
	struct task_ctx *tctx = ctx_of(p);
	u32 cpu = scx_bpf_task_cpu(p);
	u64 *running = bpf_map_lookup_elem(&edf_cpu_deadline, &cpu);
	u64 now = sc_now();

	if (sc_vtime_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
	/* Directly dispatched tasks carry no fresh deadline: derive one. */
	if (running)
		*running = now + rel_deadline_ns(p, tctx);
	if (tctx)
		tctx->run_start = now;
}

void BPF_STRUCT_OPS(edf_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = ctx_of(p);
	u32 cpu = scx_bpf_task_cpu(p);
	u64 *running = bpf_map_lookup_elem(&edf_cpu_deadline, &cpu);
	u64 now = sc_now(), ran = 0;

	if (running)
		*running = 0;
	if (!tctx)
		return;
	if (now > tctx->run_start)
		ran = now - tctx->run_start;
	tctx->avg_burst = (tctx->avg_burst * 3 + ran) / 4;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(edf_init_task, struct task_struct *p,
			     struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&edf_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -12; /* -ENOMEM */
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(edf_init)
{
	return sc_create_dsq(SHARED_DSQ, -1);
}

void BPF_STRUCT_OPS(edf_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops edf_ops = {
	.select_cpu	= (void *)edf_select_cpu,
	.enqueue	= (void *)edf_enqueue,
	.dispatch	= (void *)edf_dispatch,
	.running	= (void *)edf_running,
	.stopping	= (void *)edf_stopping,
	.init_task	= (void *)edf_init_task,
	.init		= (void *)edf_init,
	.exit		= (void *)edf_exit,
	.name		= "edf",
};
