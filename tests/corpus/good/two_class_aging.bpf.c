/* Good: interactive tasks first, but the batch DSQ is served at least every
 * batch_every dispatches (aging by counter), so batch never starves. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define INTER_DSQ 1
#define BATCH_DSQ 2
const volatile u32 batch_every = 4;
static u64 dispatches;

void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 dsq = p->static_prio <= 120 ? INTER_DSQ : BATCH_DSQ;

	sc_dsq_insert(p, dsq, 5 * SC_NSEC_PER_MSEC, enq_flags);
}

void BPF_STRUCT_OPS(t_dispatch, s32 cpu, struct task_struct *prev)
{
	dispatches++;
	if (batch_every && dispatches % batch_every == 0 && sc_dsq_move_to_local(BATCH_DSQ))
		return;
	if (sc_dsq_move_to_local(INTER_DSQ))
		return;
	sc_dsq_move_to_local(BATCH_DSQ);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(t_init)
{
	s32 ret = sc_create_dsq(INTER_DSQ, -1);

	return ret ? ret : sc_create_dsq(BATCH_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops t_ops = {
	.enqueue = (void *)t_enqueue,
	.dispatch = (void *)t_dispatch,
	.init = (void *)t_init,
	.name = "two_class_aging",
};
