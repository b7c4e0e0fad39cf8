/* Broken on purpose: a million-iteration bpf_loop on every enqueue. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

static long spin(u64 i, void *ctx)
{
	(*(u64 *)ctx)++;
	return 0;
}

void BPF_STRUCT_OPS(ul_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 n = 0;

	bpf_loop(1 << 20, spin, &n, 0);
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SEC(".struct_ops.link")
struct sched_ext_ops ul_ops = {
	.enqueue = (void *)ul_enqueue,
	.name = "unbounded_loop",
};
