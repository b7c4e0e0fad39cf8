/* Broken on purpose: the slice tunable defaults to 0. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

const volatile u64 slice_ns = 0;

void BPF_STRUCT_OPS(sz_enqueue, struct task_struct *p, u64 enq_flags)
{
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, slice_ns, enq_flags);
}

SEC(".struct_ops.link")
struct sched_ext_ops sz_ops = {
	.enqueue = (void *)sz_enqueue,
	.name = "slice_zero",
};
