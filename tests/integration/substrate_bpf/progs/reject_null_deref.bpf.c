/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A scheduler the kernel verifier must reject: it dereferences the result of
 * bpf_map_lookup_elem() without a NULL check ("map_value_or_null"). Used to
 * prove the loader returns the verifier log instead of a bare -EACCES.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);	/* an ARRAY with a constant key is proven non-NULL */
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

void BPF_STRUCT_OPS(reject_enqueue, struct task_struct *p, u64 enq_flags)
{
	u32 pid = p->pid;
	u64 *n = bpf_map_lookup_elem(&counts, &pid);

	*n += 1;	/* the bug: n may be NULL */
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SEC(".struct_ops.link")
struct sched_ext_ops reject_ops = {
	.enqueue	= (void *)reject_enqueue,
	.name		= "reject",
};
