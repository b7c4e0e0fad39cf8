/* timeslice: how long a task runs each time it is switched in.
 *
 * sched_switch stamps `next` on the way in; when the same task is switched
 * out, the difference goes to the histogram. Voluntary sleeps and
 * preemptions both end a slice: the split is what separates CPU-bound
 * throughput work (long slices ending in preemption) from request/response
 * work (short slices ending in sleep), counted in `ends` [0]=preempted,
 * [1]=blocked.
 */
#include "probe_common.h"

#define MAX_RUNNING 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RUNNING);
	__type(key, __u32);
	__type(value, __u64);
} on_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} ends SEC(".maps");

SEC("tp_btf/sched_switch")
int BPF_PROG(ts_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 pid = BPF_CORE_READ(prev, pid);
	__u64 *tsp = bpf_map_lookup_elem(&on_cpu, &pid);

	if (tsp) {
		if (now > *tsp)
			hist_add(&hist, now - *tsp);
		bpf_map_delete_elem(&on_cpu, &pid);
		__u32 k = BPF_CORE_READ(prev, __state) == TASK_RUNNING_STATE ? 0 : 1;
		__u64 *e = bpf_map_lookup_elem(&ends, &k);
		if (e)
			__sync_fetch_and_add(e, 1);
		stat_add(STAT_EVENTS);
	}
	if (!wanted(next))
		return 0;
	pid = BPF_CORE_READ(next, pid);
	if (pid == 0)
		return 0; /* idle */
	if (bpf_map_update_elem(&on_cpu, &pid, &now, BPF_ANY))
		stat_add(STAT_DROPPED);
	return 0;
}
