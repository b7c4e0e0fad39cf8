/* Good: scx_simple-style, FIFO or weighted vtime on one shared DSQ, with the
 * vtime clamp done in a helper and the clock advanced in running(). */
#include <schedcp/common.bpf.h>
char _license[] SEC("license") = "GPL";

const volatile bool fifo_sched = false;
const volatile u64 slice_ns = 10 * SC_NSEC_PER_MSEC;
#define SHARED_DSQ 0

static u64 vtime_now;

static u64 clamp_vtime(struct task_struct *p)
{
	u64 vtime = p->scx.dsq_vtime;

	if (sc_vtime_before(vtime, vtime_now - slice_ns))
		vtime = vtime_now - slice_ns;
	return vtime;
}

s32 BPF_STRUCT_OPS(t_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = sc_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	if (is_idle)
		sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, 0);
	return cpu;
}

void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (fifo_sched) {
		sc_dsq_insert(p, SHARED_DSQ, slice_ns, enq_flags);
	} else {
		sc_dsq_insert_vtime(p, SHARED_DSQ, slice_ns, clamp_vtime(p), enq_flags);
	}
}

void BPF_STRUCT_OPS(t_dispatch, s32 cpu, struct task_struct *prev)
{
	sc_dsq_move_to_local(SHARED_DSQ);
}

void BPF_STRUCT_OPS(t_running, struct task_struct *p)
{
	if (fifo_sched)
		return;
	if (sc_vtime_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
}

void BPF_STRUCT_OPS(t_stopping, struct task_struct *p, bool runnable)
{
	if (fifo_sched)
		return;
	sc_task_set_dsq_vtime(p, p->scx.dsq_vtime + (slice_ns - p->scx.slice) * 100 / p->scx.weight);
}

void BPF_STRUCT_OPS(t_enable, struct task_struct *p)
{
	sc_task_set_dsq_vtime(p, vtime_now);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(t_init)
{
	return sc_create_dsq(SHARED_DSQ, -1);
}

SEC(".struct_ops.link")
struct sched_ext_ops t_ops = {
	.select_cpu = (void *)t_select_cpu,
	.enqueue = (void *)t_enqueue,
	.dispatch = (void *)t_dispatch,
	.running = (void *)t_running,
	.stopping = (void *)t_stopping,
	.enable = (void *)t_enable,
	.init = (void *)t_init,
	.name = "simple_modes",
};
