"""COMPOSE_NEW: a new sched_ext scheduler assembled from vetted primitives.

A small model cannot write a correct BPF scheduler, and a large one often
does not either. So composition is slot filling: the planner (deterministic
rules, or the LLM through a schema with only enum/bool/bounded-int slots)
chooses a queue discipline, idle-CPU placement, new-task placement and a time
slice, and this module assembles the C source from fixed snippets written
against ``bpf/include/schedcp/common.bpf.h``. The result is still untrusted
until the verifier has built, loaded and measured it; it only ever goes to
the verifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schedcp.v1 import common_pb2, policy_pb2, profile_pb2
from services.planner.tunables import LATENCY_CLASSES

QUEUES = ("fifo", "vtime")
SLICE_RANGE_US = (200, 100_000)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,23}$")


@dataclass(frozen=True)
class Slots:
    """The choices a composition is made of; everything else is fixed."""

    queue: str = "vtime"
    direct_idle: bool = True
    new_task_boost: bool = False
    slice_us: int = 5000

    def clamped(self) -> Slots:
        queue = self.queue if self.queue in QUEUES else "vtime"
        return Slots(
            queue=queue,
            direct_idle=bool(self.direct_idle),
            # Boosting new tasks needs a clock; a FIFO has none.
            new_task_boost=bool(self.new_task_boost) and queue == "vtime",
            slice_us=int(min(max(int(self.slice_us), SLICE_RANGE_US[0]), SLICE_RANGE_US[1])),
        )

    def name(self) -> str:
        """A stable, descriptive name: the same slots always compose the same policy."""
        parts = ["comp", self.queue, "idle" if self.direct_idle else "noidle"]
        if self.new_task_boost:
            parts.append("boost")
        return "_".join(parts)


def deterministic_slots(profile: profile_pb2.WorkloadProfile) -> Slots:
    """Slots chosen from validated numbers only (used without an LLM, or when it fails)."""
    f = profile.features
    latency = (
        profile.workload_class in LATENCY_CLASSES
        or profile.goal.kind == common_pb2.GOAL_TAIL_LATENCY
    )
    short_tasks = 0 < f.task_lifetime_ms_p50 < 50 or f.task_births_per_s > 50
    return Slots(
        queue="vtime" if latency else "fifo",
        direct_idle=True,
        new_task_boost=short_tasks,
        slice_us=3000 if latency else 20000,
    ).clamped()


def tunable_specs(slots: Slots) -> list[policy_pb2.TunableSpec]:
    """The composed scheduler's tunables schema (what a Plan may set)."""
    specs = [
        policy_pb2.TunableSpec(
            name="slice_us",
            type=policy_pb2.TUNABLE_UINT,
            default=common_pb2.TunableValue(int_value=slots.slice_us),
            min=SLICE_RANGE_US[0],
            max=SLICE_RANGE_US[1],
            description="time slice granted per dispatch",
            unit="us",
        )
    ]
    if slots.queue == "vtime":
        specs.append(
            policy_pb2.TunableSpec(
                name="max_lag_slices",
                type=policy_pb2.TUNABLE_UINT,
                default=common_pb2.TunableValue(int_value=1),
                min=0,
                max=8,
                description="sleeper credit, in slices",
            )
        )
    return specs


_HEADER = """\
/* SPDX-License-Identifier: GPL-2.0 */
/*
 * {name}: composed by the schedcp planner from primitives (COMPOSE_NEW).
 *
 * Slots: queue={queue} direct_idle={direct_idle} new_task_boost={boost} slice_us={slice_us}.
 * queue=fifo runs tasks in arrival order on the global DSQ (throughput);
 * queue=vtime orders one shared DSQ by weighted virtual time (fairness,
 * latency). new_task_boost starts new tasks one slice ahead of the clock so
 * short-lived processes finish first. Generated: verify before any use.
 */
#include <schedcp/common.bpf.h>

char _license[] SEC("license") = "GPL";

const volatile u64 slice_us = {slice_us};
"""

_SELECT_CPU = """
s32 BPF_STRUCT_OPS({name}_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{{
	bool is_idle = false;
	s32 cpu = sc_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	if ({direct} && is_idle)
		sc_dsq_insert(p, SCX_DSQ_LOCAL, slice_us * SC_NSEC_PER_USEC, 0);
	return cpu;
}}
"""

_FIFO = """
void BPF_STRUCT_OPS({name}_enqueue, struct task_struct *p, u64 enq_flags)
{{
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, slice_us * SC_NSEC_PER_USEC, enq_flags);
}}

void BPF_STRUCT_OPS({name}_exit, struct scx_exit_info *ei)
{{
	SC_RECORD_EXIT(ei);
}}

SEC(".struct_ops.link")
struct sched_ext_ops {name}_ops = {{
	.select_cpu	= (void *){name}_select_cpu,
	.enqueue	= (void *){name}_enqueue,
	.exit		= (void *){name}_exit,
	.name		= "{name}",
}};
"""

_VTIME = """
const volatile u32 max_lag_slices = 1;

#define SHARED_DSQ 1ULL

static u64 vtime_now;

static __always_inline u64 slice_ns(void)
{{
	return slice_us * SC_NSEC_PER_USEC;
}}

void BPF_STRUCT_OPS({name}_enqueue, struct task_struct *p, u64 enq_flags)
{{
	u64 vtime = p->scx.dsq_vtime;
	u64 floor = vtime_now - (u64)max_lag_slices * slice_ns();

	if (sc_vtime_before(vtime, floor))
		vtime = floor;
	sc_dsq_insert_vtime(p, SHARED_DSQ, slice_ns(), vtime, enq_flags);
}}

void BPF_STRUCT_OPS({name}_dispatch, s32 cpu, struct task_struct *prev)
{{
	sc_dsq_move_to_local(SHARED_DSQ);
}}

void BPF_STRUCT_OPS({name}_running, struct task_struct *p)
{{
	if (sc_vtime_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
}}

void BPF_STRUCT_OPS({name}_stopping, struct task_struct *p, bool runnable)
{{
	u64 used = slice_ns() - p->scx.slice;
	u32 weight = p->scx.weight ? p->scx.weight : 100;

	if (used > slice_ns())
		used = slice_ns();
	sc_task_set_dsq_vtime(p, p->scx.dsq_vtime + used * 100 / weight);
}}

void BPF_STRUCT_OPS({name}_enable, struct task_struct *p)
{{
	sc_task_set_dsq_vtime(p, {enable_vtime});
}}

s32 BPF_STRUCT_OPS_SLEEPABLE({name}_init)
{{
	return sc_create_dsq(SHARED_DSQ, -1);
}}

void BPF_STRUCT_OPS({name}_exit, struct scx_exit_info *ei)
{{
	SC_RECORD_EXIT(ei);
}}

SEC(".struct_ops.link")
struct sched_ext_ops {name}_ops = {{
	.select_cpu	= (void *){name}_select_cpu,
	.enqueue	= (void *){name}_enqueue,
	.dispatch	= (void *){name}_dispatch,
	.running	= (void *){name}_running,
	.stopping	= (void *){name}_stopping,
	.enable		= (void *){name}_enable,
	.init		= (void *){name}_init,
	.exit		= (void *){name}_exit,
	.name		= "{name}",
}};
"""


def compose_source(slots: Slots) -> tuple[str, str]:
    """Return ``(policy_name, C source)`` for the (clamped) slots."""
    s = slots.clamped()
    name = s.name()
    assert _NAME_RE.match(name), name  # only fixed words go into identifiers
    fields = {
        "name": name,
        "queue": s.queue,
        "direct_idle": str(s.direct_idle).lower(),
        "boost": str(s.new_task_boost).lower(),
        "slice_us": s.slice_us,
        "direct": "true" if s.direct_idle else "false",
    }
    source = _HEADER.format(**fields)
    if s.queue == "vtime":
        # _VTIME defines slice_ns() which select_cpu does not need; order matters
        # only for the helpers, so emit the queue body first.
        body = _VTIME.format(
            **fields,
            enable_vtime="vtime_now - slice_ns()" if s.new_task_boost else "vtime_now",
        )
        head, sep, tail = body.partition("void BPF_STRUCT_OPS")
        source += head + _SELECT_CPU.format(**fields) + "\n" + sep + tail
    else:
        source += _SELECT_CPU.format(**fields) + _FIFO.format(**fields)
    return name, source
