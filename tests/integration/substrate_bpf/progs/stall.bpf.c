/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A scheduler that leaves some tasks unscheduled: any task whose comm starts
 * with "stallme" is dropped at enqueue and never dispatched. Everything else
 * runs FIFO, so the machine stays usable until the sched_ext watchdog
 * notices the starving task and ejects the scheduler ("runnable task stall").
 * Load it with a short ops.timeout_ms so the ejection comes within seconds.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

static __always_inline bool is_victim(struct task_struct *p)
{
	const char want[] = "stallme";
	int i;

	for (i = 0; i < 7; i++)
		if (p->comm[i] != want[i])
			return false;
	return true;
}

void BPF_STRUCT_OPS(stall_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (is_victim(p))
		return;	/* dropped on purpose: never inserted anywhere */
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(stall_exit, struct scx_exit_info *ei)
{
	SC_RECORD_EXIT(ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops stall_ops = {
	.enqueue	= (void *)stall_enqueue,
	.exit		= (void *)stall_exit,
	.timeout_ms	= 3000,
	.name		= "stall",
};
