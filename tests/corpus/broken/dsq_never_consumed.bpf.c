/* Broken on purpose: niced tasks go to DSQ 7, which dispatch never drains. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define MAIN_DSQ 1
#define NICE_DSQ 7

void BPF_STRUCT_OPS(dnc_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (p->static_prio > 120)
		sc_dsq_insert(p, NICE_DSQ, SCX_SLICE_DFL, enq_flags);
	else
		sc_dsq_insert(p, MAIN_DSQ, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(dnc_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(MAIN_DSQ);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(dnc_init)
{
	s32 ret = sc_create_dsq(MAIN_DSQ, -1);

	return ret ? ret : sc_create_dsq(NICE_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops dnc_ops = {
	.enqueue = (void *)dnc_enqueue,
	.dispatch = (void *)dnc_dispatch,
	.init = (void *)dnc_init,
	.name = "dsq_never_consumed",
};
