/* Broken on purpose: odd pids leave enqueue without being inserted anywhere. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

void BPF_STRUCT_OPS(eni_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (p->pid & 1)
		return;
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SEC(".struct_ops.link")
struct sched_ext_ops eni_ops = {
	.enqueue = (void *)eni_enqueue,
	.name = "enqueue_no_insert",
};
