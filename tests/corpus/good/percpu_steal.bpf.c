/* Good: one DSQ per CPU (ids computed at run time), dispatch drains its own
 * then steals from the others with a bounded loop. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define MAX_CPUS 64
const volatile u32 nr_cpus = 2;

void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p);

	sc_dsq_insert(p, (u64)cpu, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(t_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 i;

	if (sc_dsq_move_to_local(cpu))
		return;
	for (i = 0; i < MAX_CPUS && i < nr_cpus; i++) {
		if (i != cpu && sc_dsq_move_to_local(i))
			return;
	}
}

s32 BPF_STRUCT_OPS_SLEEPABLE(t_init)
{
	u32 i;
	s32 ret;

	for (i = 0; i < MAX_CPUS && i < nr_cpus; i++) {
		ret = sc_create_dsq(i, -1);
		if (ret)
			return ret;
	}
	return 0;
}

SEC(".struct_ops.link")
struct sched_ext_ops t_ops = {
	.enqueue = (void *)t_enqueue,
	.dispatch = (void *)t_dispatch,
	.init = (void *)t_init,
	.name = "percpu_steal",
};
