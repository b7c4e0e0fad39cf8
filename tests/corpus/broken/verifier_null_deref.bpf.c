/* Broken on purpose: dereferences a map lookup without a NULL check; the kernel
 * verifier rejects it ("invalid mem access 'map_value_or_null'"). */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

void BPF_STRUCT_OPS(vnd_enqueue, struct task_struct *p, u64 enq_flags)
{
	u32 key = 0;
	u64 *cnt = bpf_map_lookup_elem(&counts, &key);

	*cnt += 1;	/* no NULL check */
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SEC(".struct_ops.link")
struct sched_ext_ops vnd_ops = {
	.enqueue = (void *)vnd_enqueue,
	.name = "verifier_null",
};
