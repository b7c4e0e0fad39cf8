/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test scheduler with a real, large regression: every task that may run on
 * more than one CPU is queued on one shared DSQ that only CPU 0 consumes, so
 * parallel work is serialised onto one CPU. Tasks pinned to a single CPU go
 * straight to that CPU so nothing stalls. Correct, but slow: the executor's
 * circuit breaker must notice the regression and roll it back.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

#define SERIAL_DSQ 42

s32 BPF_STRUCT_OPS_SLEEPABLE(serial_init)
{
	return sc_create_dsq(SERIAL_DSQ, -1);
}

void BPF_STRUCT_OPS(serial_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (p->nr_cpus_allowed == 1) {
		s32 cpu = bpf_cpumask_first(p->cpus_ptr);

		sc_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, SCX_SLICE_DFL, enq_flags);
		return;
	}
	sc_dsq_insert(p, SERIAL_DSQ, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(serial_dispatch, s32 cpu, struct task_struct *prev)
{
	if (cpu == 0)
		sc_dsq_move_to_local(SERIAL_DSQ);
}

void BPF_STRUCT_OPS(serial_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops serial_ops = {
	.init		= (void *)serial_init,
	.enqueue	= (void *)serial_enqueue,
	.dispatch	= (void *)serial_dispatch,
	.exit		= (void *)serial_exit,
	.name		= "serial",
};
