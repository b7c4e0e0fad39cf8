/* Broken on purpose: calls scx_bpf_dispatch, removed from the kernel in 6.17. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

void scx_bpf_dispatch(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym;

void BPF_STRUCT_OPS(rk_enqueue, struct task_struct *p, u64 enq_flags)
{
	scx_bpf_dispatch(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SEC(".struct_ops.link")
struct sched_ext_ops rk_ops = {
	.enqueue = (void *)rk_enqueue,
	.name = "removed_kfunc",
};
