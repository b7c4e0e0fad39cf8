/* Good: longest-job-first-ish ordering by accumulated runtime kept in task
 * storage; the stored key is clamped against a global floor on enqueue. */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

#define LJF_DSQ 3
const volatile u64 slice_us = 8000;

struct task_ctx {
	u64 runtime;
	u64 started;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

static u64 key_floor;

void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	u64 key = key_floor;

	if (tctx) {
		/* More runtime so far = longer job = smaller key = earlier. */
		key = ~tctx->runtime;
		if (key < key_floor)
			key = key_floor;
	}
	sc_dsq_insert_vtime(p, LJF_DSQ, slice_us * SC_NSEC_PER_USEC, key, enq_flags);
}

void BPF_STRUCT_OPS(t_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(LJF_DSQ);
}

void BPF_STRUCT_OPS(t_running, struct task_struct *p)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

	if (tctx)
		tctx->started = sc_now();
}

void BPF_STRUCT_OPS(t_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

	if (tctx)
		tctx->runtime += sc_now() - tctx->started;
}

s32 BPF_STRUCT_OPS(t_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -12;
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(t_init)
{
	return sc_create_dsq(LJF_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops t_ops = {
	.enqueue = (void *)t_enqueue,
	.dispatch = (void *)t_dispatch,
	.running = (void *)t_running,
	.stopping = (void *)t_stopping,
	.init_task = (void *)t_init_task,
	.init = (void *)t_init,
	.name = "task_storage_ljf",
};
