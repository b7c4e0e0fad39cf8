/* Broken on purpose: zeroes p->scx.slice directly (deprecated field write, zero slice). */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

void BPF_STRUCT_OPS(dsw_enqueue, struct task_struct *p, u64 enq_flags)
{
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(dsw_running, struct task_struct *p)
{
	p->scx.slice = 0;
}

SEC(".struct_ops.link")
struct sched_ext_ops dsw_ops = {
	.enqueue = (void *)dsw_enqueue,
	.running = (void *)dsw_running,
	.name = "deprecated_slice",
};
