/* Broken on purpose: everything goes to a custom DSQ but there is no dispatch op. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define MY_DSQ 5

void BPF_STRUCT_OPS(md_enqueue, struct task_struct *p, u64 enq_flags)
{
	sc_dsq_insert(p, MY_DSQ, SCX_SLICE_DFL, enq_flags);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(md_init)
{
	return sc_create_dsq(MY_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops md_ops = {
	.enqueue = (void *)md_enqueue,
	.init = (void *)md_init,
	.name = "missing_dispatch",
};
