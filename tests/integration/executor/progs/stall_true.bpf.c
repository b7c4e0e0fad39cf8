/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test scheduler: drops every task named "true" at enqueue, so the next
 * `true` the executor runs as a health check is never scheduled and the
 * kernel's watchdog ejects the scheduler after timeout_ms ("runnable task
 * stall"). Everything else runs FIFO. Only for the executor's ejection test.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

static __always_inline bool is_victim(struct task_struct *p)
{
	return p->comm[0] == 't' && p->comm[1] == 'r' && p->comm[2] == 'u' &&
	       p->comm[3] == 'e' && p->comm[4] == '\0';
}

/*
 * Without ops.select_cpu the kernel's default inserts a waking task straight
 * into an idle CPU's local DSQ and ops.enqueue never sees it: on two or more
 * CPUs `true` would then often run. Picking the CPU without inserting makes
 * every wakeup go through enqueue.
 */
s32 BPF_STRUCT_OPS(stall_true_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	return prev_cpu;
}

void BPF_STRUCT_OPS(stall_true_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (is_victim(p))
		return;
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(stall_true_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops stall_true_ops = {
	.select_cpu	= (void *)stall_true_select_cpu,
	.enqueue	= (void *)stall_true_enqueue,
	.exit		= (void *)stall_true_exit,
	.timeout_ms	= 3000,
	.name		= "stall_true",
};
