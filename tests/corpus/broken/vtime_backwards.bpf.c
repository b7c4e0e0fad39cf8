/* Broken on purpose: charging "negative time" moves vtime backwards and underflows. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define VT_DSQ 1
static u64 vtime_now;

void BPF_STRUCT_OPS(vb_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 vtime = p->scx.dsq_vtime;

	if (sc_vtime_before(vtime, vtime_now))
		vtime = vtime_now;
	sc_dsq_insert_vtime(p, VT_DSQ, SCX_SLICE_DFL, vtime, enq_flags);
}

void BPF_STRUCT_OPS(vb_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(VT_DSQ);
}

void BPF_STRUCT_OPS(vb_running, struct task_struct *p)
{
	if (sc_vtime_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
}

void BPF_STRUCT_OPS(vb_stopping, struct task_struct *p, bool runnable)
{
	/* "reward" short runs: subtract the unused slice */
	sc_task_set_dsq_vtime(p, p->scx.dsq_vtime - p->scx.slice);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(vb_init)
{
	return sc_create_dsq(VT_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops vb_ops = {
	.enqueue = (void *)vb_enqueue,
	.dispatch = (void *)vb_dispatch,
	.running = (void *)vb_running,
	.stopping = (void *)vb_stopping,
	.init = (void *)vb_init,
	.name = "vtime_backwards",
};
