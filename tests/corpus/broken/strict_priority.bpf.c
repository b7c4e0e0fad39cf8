/* Broken on purpose: the interactive DSQ is always drained first; batch starves. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define HI_DSQ 1
#define LO_DSQ 2

void BPF_STRUCT_OPS(sp_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (p->static_prio <= 120)
		sc_dsq_insert(p, HI_DSQ, SCX_SLICE_DFL, enq_flags);
	else
		sc_dsq_insert(p, LO_DSQ, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(sp_dispatch, s32 cpu, struct task_struct *prev)
{
	if (sc_dsq_move_to_local(HI_DSQ))
		return;
	sc_dsq_move_to_local(LO_DSQ);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(sp_init)
{
	s32 ret = sc_create_dsq(HI_DSQ, -1);

	return ret ? ret : sc_create_dsq(LO_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops sp_ops = {
	.enqueue = (void *)sp_enqueue,
	.dispatch = (void *)sp_dispatch,
	.init = (void *)sp_init,
	.name = "strict_priority",
};
