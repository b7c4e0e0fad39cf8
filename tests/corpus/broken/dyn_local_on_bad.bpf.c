/* Broken on purpose, and invisible to static analysis: user tasks pinned to a
 * single CPU are sent to CPU 0's local DSQ even when CPU 0 is not allowed. The
 * kernel ejects the scheduler as soon as such a task wakes (runtime error), so
 * loading succeeds and only the dynamic stage's pinned tasks expose it. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

void BPF_STRUCT_OPS(dlo_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (p->nr_cpus_allowed == 1 && !(p->flags & 0x00200000 /* PF_KTHREAD */))
		sc_dsq_insert(p, SCX_DSQ_LOCAL_ON | 0, SCX_SLICE_DFL, enq_flags);
	else
		sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SEC(".struct_ops.link")
struct sched_ext_ops dlo_ops = {
	.enqueue = (void *)dlo_enqueue,
	.name = "dyn_local_on",
};
