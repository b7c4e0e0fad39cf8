/* Broken on purpose: a waking task is queued with its stale vtime, never clamped. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define VT_DSQ 1

void BPF_STRUCT_OPS(vc_enqueue, struct task_struct *p, u64 enq_flags)
{
	sc_dsq_insert_vtime(p, VT_DSQ, SCX_SLICE_DFL, p->scx.dsq_vtime, enq_flags);
}

void BPF_STRUCT_OPS(vc_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(VT_DSQ);
}

void BPF_STRUCT_OPS(vc_stopping, struct task_struct *p, bool runnable)
{
	sc_task_set_dsq_vtime(p, p->scx.dsq_vtime + (SCX_SLICE_DFL - p->scx.slice));
}

s32 BPF_STRUCT_OPS_SLEEPABLE(vc_init)
{
	return sc_create_dsq(VT_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops vc_ops = {
	.enqueue = (void *)vc_enqueue,
	.dispatch = (void *)vc_dispatch,
	.stopping = (void *)vc_stopping,
	.init = (void *)vc_init,
	.name = "vtime_unclamped",
};
