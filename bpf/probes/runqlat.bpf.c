/* runqlat: run-queue latency histogram, from becoming runnable to running.
 *
 * A task's wait starts when it is woken (sched_wakeup / sched_wakeup_new) or
 * when it is preempted while still runnable (sched_switch with prev in
 * TASK_RUNNING); it ends when sched_switch puts it on a CPU. The per-task
 * start map is bounded (MAX_WAITING); when full, the event is counted as
 * dropped instead of growing. Cost: one hash update per wakeup and one
 * lookup/delete per switch.
 */
#include "probe_common.h"

#define MAX_WAITING 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_WAITING);
	__type(key, __u32);
	__type(value, __u64);
} wait_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

static __always_inline void mark_runnable(struct task_struct *p)
{
	if (!wanted(p))
		return;
	__u32 pid = BPF_CORE_READ(p, pid);
	__u64 ts = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&wait_start, &pid, &ts, BPF_ANY))
		stat_add(STAT_DROPPED);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(rq_wakeup, struct task_struct *p)
{
	mark_runnable(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(rq_wakeup_new, struct task_struct *p)
{
	mark_runnable(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(rq_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	if (BPF_CORE_READ(prev, __state) == TASK_RUNNING_STATE)
		mark_runnable(prev);

	__u32 pid = BPF_CORE_READ(next, pid);
	__u64 *tsp = bpf_map_lookup_elem(&wait_start, &pid);
	if (!tsp)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	if (now > *tsp)
		hist_add(&hist, now - *tsp);
	bpf_map_delete_elem(&wait_start, &pid);
	stat_add(STAT_EVENTS);
	return 0;
}
