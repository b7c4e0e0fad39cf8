/* Broken on purpose, and invisible to static analysis: dispatch serves the low
 * class only when the high one is empty (decided at run time via nr_queued),
 * so with as many nice-0 CPU hogs as CPUs, niced tasks never run. Only the
 * dynamic stage's measured wait catches it. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define HI_DSQ 1
#define LO_DSQ 2

void BPF_STRUCT_OPS(dsn_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (p->static_prio <= 120)
		sc_dsq_insert(p, HI_DSQ, 5 * SC_NSEC_PER_MSEC, enq_flags);
	else
		sc_dsq_insert(p, LO_DSQ, 5 * SC_NSEC_PER_MSEC, enq_flags);
}

void BPF_STRUCT_OPS(dsn_dispatch, s32 cpu, struct task_struct *prev)
{
	if (sc_dsq_nr_queued(HI_DSQ) > 0) {
		sc_dsq_move_to_local(HI_DSQ);
		return;
	}
	sc_dsq_move_to_local(LO_DSQ);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(dsn_init)
{
	s32 ret = sc_create_dsq(HI_DSQ, -1);

	return ret ? ret : sc_create_dsq(LO_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops dsn_ops = {
	.enqueue = (void *)dsn_enqueue,
	.dispatch = (void *)dsn_dispatch,
	.init = (void *)dsn_init,
	.name = "dyn_strict",
};
