/* SPDX-License-Identifier: GPL-2.0 */
/*
 * locality: keep tasks on the CPU whose caches they warmed.
 *
 * Design: a waking task goes back to its previous CPU if that CPU is idle
 * (claimed with scx_bpf_test_and_clear_cpu_idle), else to any idle CPU the
 * default picker finds (which prefers idle SMT cores and the same LLC); both
 * cases dispatch straight to that CPU's local DSQ. When no CPU is idle the
 * task waits in a per-CPU DSQ of the CPU it last ran on, ordered by weighted
 * vtime (as in wvtime, with bounded sleeper credit). A CPU serves its own DSQ
 * first and steals from the other CPUs' DSQs only when its own is empty;
 * enqueueing onto a busy CPU wakes an idle one so the work is never stranded.
 * Slices are long (slice_us) so a task keeps its cache for longer, and when
 * one runs out the task keeps its CPU while its charged vtime is still below
 * the head of that CPU's queue.
 *
 * No starvation: every per-CPU DSQ is vtime-ordered with a clamped sleeper
 * credit and is drained by its own CPU on every dispatch; idle CPUs steal.
 *
 * Trade-offs: fewer migrations and warmer caches in exchange for possibly
 * worse short-term balance than one global queue, and a steal loop over all
 * CPUs when idle. Weights hold within one CPU's queue only: which tasks
 * share a CPU decides the split (nice 0 vs nice 5 hogs on 2 CPUs measured
 * 3:1 when each CPU had one of each, 1:1 when the niced pair shared one). Where it fits: cache-sensitive throughput work (builds,
 * compression, in-memory analytics), messaging between pinned-ish threads.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

/* Tunables: set by the loader before load (see locality.json). */
const volatile u64 slice_us = 10000;		/* slice per dispatch */
const volatile u32 max_lag_slices = 1;		/* sleeper credit, in slices */
const volatile bool steal = true;		/* idle CPUs take work from busy ones */

#define MAX_CPUS 64

/* Global virtual clock: vtime of the most recent task to start running. */
static u64 vtime_now;

static __always_inline u64 slice_ns(void)
{
	return slice_us * SC_NSEC_PER_USEC;
}

/* DSQ of @cpu: ids 0..nr_cpus-1 are ours (built-in DSQs have the top bit). */
static __always_inline u64 cpu_dsq(s32 cpu)
{
	return (u64)cpu;
}

s32 BPF_STRUCT_OPS(locality_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu;

	/* Warm cache first: the previous CPU, if it is idle and allowed. */
	if (bpf_cpumask_test_cpu(prev_cpu, p->cpus_ptr) &&
	    scx_bpf_test_and_clear_cpu_idle(prev_cpu)) {
		sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns(), 0);
		return prev_cpu;
	}
	cpu = sc_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle)
		sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns(), 0);
	return cpu;
}

void BPF_STRUCT_OPS(locality_enqueue, struct task_struct *p, u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p);
	u64 vtime = p->scx.dsq_vtime;
	u64 floor = vtime_now - (u64)max_lag_slices * slice_ns();
	s32 idle;

	if (sc_vtime_before(vtime, floor))
		vtime = floor;
	sc_dsq_insert_vtime(p, cpu_dsq(cpu), slice_ns(), vtime, enq_flags);

	/* Queued behind someone while a CPU idles: wake it so it can steal. */
	if (steal) {
		idle = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
		if (idle >= 0)
			sc_kick_cpu(idle, SCX_KICK_IDLE);
	}
}

void BPF_STRUCT_OPS(locality_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 nr = sc_min(scx_bpf_nr_cpu_ids(), MAX_CPUS);
	u32 weight;
	u64 used, vtime;
	s32 i;

	/*
	 * prev's slice ran out (dispatch runs before it is queued again): it
	 * keeps its CPU and cache, charged for the slice, while its vtime is
	 * still below the head of this CPU's queue. Pulling the head instead
	 * made every expiry a round-robin turn, and nice 0 vs nice 5 hogs
	 * split 1:1. ops.stopping charges what follows the refill.
	 */
	if (prev && (prev->scx.flags & SCX_TASK_QUEUED)) {
		used = slice_ns() - prev->scx.slice;
		if (used > slice_ns())
			used = slice_ns();
		weight = prev->scx.weight ? prev->scx.weight : 100;
		vtime = prev->scx.dsq_vtime + used * 100 / weight;
		if (sc_keep_prev(prev, vtime, cpu_dsq(cpu), slice_ns())) {
			sc_task_set_dsq_vtime(prev, vtime);
			if (sc_vtime_before(vtime_now, vtime))
				vtime_now = vtime;
			return;
		}
	}
	if (sc_dsq_move_to_local(cpu_dsq(cpu)) || !steal || !nr)
		return;
	/* Own queue empty: steal, nearest CPU id first. An open-coded iterator
	 * keeps the verifier from walking every iteration. */
	bpf_for(i, 1, nr) {
		u32 victim = ((u32)cpu + (u32)i) % nr;

		if (sc_dsq_move_to_local(cpu_dsq(victim)))
			return;
	}
}

void BPF_STRUCT_OPS(locality_running, struct task_struct *p)
{
	if (sc_vtime_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
}

void BPF_STRUCT_OPS(locality_stopping, struct task_struct *p, bool runnable)
{
	u64 used = slice_ns() - p->scx.slice;	/* the rest of the slice was not used */
	u32 weight = p->scx.weight ? p->scx.weight : 100;

	if (used > slice_ns())
		used = slice_ns();
	sc_task_set_dsq_vtime(p, p->scx.dsq_vtime + used * 100 / weight);
}

void BPF_STRUCT_OPS(locality_enable, struct task_struct *p)
{
	sc_task_set_dsq_vtime(p, vtime_now);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(locality_init)
{
	s32 nr = scx_bpf_nr_cpu_ids();
	s32 i, err;

	if (nr > MAX_CPUS)
		return -22; /* -EINVAL: more CPUs than per-CPU DSQs we steal from */
	bpf_for(i, 0, nr) {
		err = sc_create_dsq(cpu_dsq(i), -1);
		if (err)
			return err;
	}
	return 0;
}

void BPF_STRUCT_OPS(locality_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops locality_ops = {
	.select_cpu	= (void *)locality_select_cpu,
	.enqueue	= (void *)locality_enqueue,
	.dispatch	= (void *)locality_dispatch,
	.running	= (void *)locality_running,
	.stopping	= (void *)locality_stopping,
	.enable		= (void *)locality_enable,
	.init		= (void *)locality_init,
	.exit		= (void *)locality_exit,
	.name		= "locality",
};
