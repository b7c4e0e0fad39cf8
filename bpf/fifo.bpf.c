/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fifo: one global first-in-first-out queue for the whole machine.
 *
 * Design: a waking task whose previous CPU (or another CPU) is idle goes
 * straight to that CPU's local DSQ; every other runnable task is appended to
 * the built-in global DSQ, which the kernel drains in arrival order onto any
 * CPU that runs out of work. Every task gets the same slice (slice_us).
 *
 * Trade-offs: no priorities, no weights and no per-CPU state, so it is cheap
 * and easy to reason about, and nothing can starve (strict arrival order).
 * One shared queue means cache-cold migrations and a contended lock on big
 * machines, and nice values are ignored.
 *
 * Where it fits: small VMs and batch boxes with homogeneous CPU-bound work
 * (throughput over latency), and as the baseline every other scheduler is
 * compared against.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

/* Tunables: set by the loader before load (see fifo.json). */
const volatile u64 slice_us = 20000;	/* time slice of every task */
const volatile bool direct_idle = true;	/* wakeups go straight to an idle CPU */

s32 BPF_STRUCT_OPS(fifo_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = sc_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	/* Skipping enqueue for an idle CPU saves a trip through the shared queue. */
	if (direct_idle && is_idle)
		sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_us * SC_NSEC_PER_USEC, 0);
	return cpu;
}

void BPF_STRUCT_OPS(fifo_enqueue, struct task_struct *p, u64 enq_flags)
{
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, slice_us * SC_NSEC_PER_USEC, enq_flags);
}

void BPF_STRUCT_OPS(fifo_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops fifo_ops = {
	.select_cpu	= (void *)fifo_select_cpu,
	.enqueue	= (void *)fifo_enqueue,
	.exit		= (void *)fifo_exit,
	.name		= "fifo",
};
