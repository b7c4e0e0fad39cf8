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
	.enqueue	= (void *)stall_true_enqueue,
	.exit		= (void *)stall_true_exit,
	.timeout_ms	= 3000,
	.name		= "stall_true",
};
