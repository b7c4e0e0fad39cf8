/* wakegraph: who wakes whom, as (waker comm, wakee comm) -> count.
 *
 * The waker is the task running when sched_wakeup fires (in an interrupt it
 * is whatever was interrupted, often swapper/N: that still says "woken by an
 * IRQ"). Keyed by comm, not pid, so the map stays small for thread pools and
 * fork storms; MAX_EDGES bounds it and overflow is counted as dropped. User
 * space keeps the top N edges.
 */
#include "probe_common.h"

#define MAX_EDGES 2048

struct edge {
	char waker[16];
	char wakee[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_EDGES);
	__type(key, struct edge);
	__type(value, __u64);
} edges SEC(".maps");

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wg_wakeup, struct task_struct *p)
{
	struct task_struct *cur = bpf_get_current_task_btf();

	if (!wanted(p) && !wanted(cur))
		return 0;
	struct edge e = {};
	bpf_get_current_comm(e.waker, sizeof(e.waker));
	BPF_CORE_READ_STR_INTO(&e.wakee, p, comm);
	__u64 *v = bpf_map_lookup_elem(&edges, &e);
	if (v) {
		__sync_fetch_and_add(v, 1);
	} else {
		__u64 one = 1;
		if (bpf_map_update_elem(&edges, &e, &one, BPF_NOEXIST))
			stat_add(STAT_DROPPED);
	}
	stat_add(STAT_EVENTS);
	return 0;
}
