/* Broken on purpose: a 10 second slice (ms/ns mix-up). */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

const volatile u64 slice_ms = 10000;

void BPF_STRUCT_OPS(su_enqueue, struct task_struct *p, u64 enq_flags)
{
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, slice_ms * SC_NSEC_PER_MSEC, enq_flags);
}

SEC(".struct_ops.link")
struct sched_ext_ops su_ops = {
	.enqueue = (void *)su_enqueue,
	.name = "slice_unbounded",
};
