/* Broken on purpose: a missing semicolon and an undeclared identifier. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

void BPF_STRUCT_OPS(ce_enqueue, struct task_struct *p, u64 enq_flags)
{
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags)
	undeclared_thing++;
}

SEC(".struct_ops.link")
struct sched_ext_ops ce_ops = {
	.enqueue = (void *)ce_enqueue,
	.name = "compile_error",
};
