/* Broken on purpose: the global vtime is 32 bits and wraps after ~4 s. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define VT_DSQ 1
static u32 vtime_now;

void BPF_STRUCT_OPS(vu_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 vtime = p->scx.dsq_vtime;

	if (vtime < vtime_now)
		vtime = vtime_now;
	sc_dsq_insert_vtime(p, VT_DSQ, SCX_SLICE_DFL, vtime, enq_flags);
}

void BPF_STRUCT_OPS(vu_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(VT_DSQ);
}

void BPF_STRUCT_OPS(vu_running, struct task_struct *p)
{
	vtime_now = p->scx.dsq_vtime;
}

void BPF_STRUCT_OPS(vu_stopping, struct task_struct *p, bool runnable)
{
	sc_task_set_dsq_vtime(p, p->scx.dsq_vtime + SCX_SLICE_DFL);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(vu_init)
{
	return sc_create_dsq(VT_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops vu_ops = {
	.enqueue = (void *)vu_enqueue,
	.dispatch = (void *)vu_dispatch,
	.running = (void *)vu_running,
	.stopping = (void *)vu_stopping,
	.init = (void *)vu_init,
	.name = "vtime_u32",
};
