/* lifetime: task lifetime distribution, from creation to exit.
 *
 * At sched_process_exit the lifetime is now - task->start_time (both
 * CLOCK_MONOTONIC ns), so no per-task state is kept at all: memory is the
 * histogram only. Tasks that exit within the window count, however short
 * they lived, which is exactly what /proc polling misses in fork storms.
 * Forks of tracked tasks are counted (stats[STAT_FORKS]) for birth rates.
 */
#include "probe_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

/* [0] = sum of lifetimes in us, [1] = exits */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

SEC("tp_btf/sched_process_exit")
int BPF_PROG(lt_exit, struct task_struct *p)
{
	if (!wanted(p))
		return 0;
	__u64 start = BPF_CORE_READ(p, start_time);
	__u64 now = bpf_ktime_get_ns();
	if (now <= start)
		return 0;
	hist_add(&hist, now - start);
	__u32 k = 0;
	__u64 *sum = bpf_map_lookup_elem(&totals, &k);
	if (sum)
		__sync_fetch_and_add(sum, (now - start) / 1000);
	k = 1;
	__u64 *n = bpf_map_lookup_elem(&totals, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	stat_add(STAT_EVENTS);
	return 0;
}

/* Count births in mode 0/2 too (follow_fork only runs for the pid tree). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(lt_fork, struct task_struct *parent, struct task_struct *child)
{
	if (cfg_mode() == 1)
		return 0; /* follow_fork counts these */
	if (!wanted(parent))
		return 0;
	stat_add(STAT_FORKS);
	return 0;
}
