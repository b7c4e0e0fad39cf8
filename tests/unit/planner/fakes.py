"""In-memory stand-ins for the planner's ports (unit tests of pure decision logic only)."""

from __future__ import annotations

import json
from typing import Any

from schedcp.digests import tunables_to_proto
from schedcp.errors import NotFound
from schedcp.llm.client import JsonResult, LlmUnavailable, Usage
from schedcp.v1 import common_pb2, policy_pb2, profile_pb2, services_pb2

WVTIME_SOURCE = "\n".join(
    ["#include <schedcp/common.bpf.h>", "const volatile u64 slice_us = 5000;"]
    + ["/* padding line to look like a real scheduler */"] * 8
    + ['SEC(".struct_ops.link")', "struct sched_ext_ops wvtime_ops = {", '.name = "wvtime",', "};"]
)


def spec(name: str, kind: int, default: Any, lo: float, hi: float) -> policy_pb2.TunableSpec:
    s = policy_pb2.TunableSpec(name=name, type=kind, min=lo, max=hi)
    if isinstance(default, bool):
        s.default.bool_value = default
    else:
        s.default.int_value = int(default)
    return s


def wvtime(**history: float) -> policy_pb2.Policy:
    p = policy_pb2.Policy(
        name="wvtime",
        version="1",
        source=WVTIME_SOURCE,
        status=policy_pb2.POLICY_VERIFIED,
        metadata=policy_pb2.PolicyMetadata(
            description="weighted vtime", target_workloads=[common_pb2.LATENCY_SERVER]
        ),
        tunables=[
            spec("slice_us", policy_pb2.TUNABLE_UINT, 5000, 100, 100000),
            spec("max_lag_slices", policy_pb2.TUNABLE_UINT, 1, 0, 8),
        ],
    )
    return p


def fifo() -> policy_pb2.Policy:
    return policy_pb2.Policy(
        name="fifo",
        version="1",
        source=WVTIME_SOURCE.replace("wvtime", "fifo"),
        status=policy_pb2.POLICY_VERIFIED,
        metadata=policy_pb2.PolicyMetadata(
            description="global fifo",
            target_workloads=[common_pb2.BATCH_LONG_TAIL, common_pb2.PARALLEL_BUILD],
        ),
        tunables=[
            spec("slice_us", policy_pb2.TUNABLE_UINT, 20000, 100, 100000),
            spec("direct_idle", policy_pb2.TUNABLE_BOOL, True, 0, 1),
        ],
    )


def win(
    policy: policy_pb2.Policy,
    cls: int,
    ratio: float,
    tunables: dict[str, Any],
    workload_key: str = "",
) -> None:
    rec = policy.history.add(
        workload_class=cls,
        ratio=ratio,
        success=True,
        metric="makespan_s",
        workload_key=workload_key,
    )
    tunables_to_proto(tunables, rec.tunables)


class FakeRepository:
    def __init__(self, policies: list[policy_pb2.Policy] | None = None) -> None:
        self.policies = {p.name: p for p in (policies or [])}
        self.antipatterns: list[policy_pb2.Antipattern] = []
        self.queries: list[str] = []

    async def search(self, query: str, *, workload_classes, limit, workload_key=""):
        self.queries.append(query)
        hits = []
        for p in self.policies.values():
            # As the real store: the class filter also admits policies that won
            # on exactly this workload, under any class.
            won_here = workload_key and any(
                r.workload_key == workload_key and r.success for r in p.history
            )
            if (
                workload_classes
                and not set(workload_classes) & set(p.metadata.target_workloads)
                and not won_here
            ):
                continue
            ratios = [r.ratio for r in p.history if r.workload_class in workload_classes]
            hits.append(
                services_pb2.SearchHit(
                    policy=p,
                    similarity=0.5,
                    historical_ratio=sum(ratios) / len(ratios) if ratios else 0.0,
                )
            )
        return hits[:limit]

    async def get(self, name: str, version: str = ""):
        if name not in self.policies:
            raise NotFound(f"no policy {name}")
        return self.policies[name]

    async def list_antipatterns(self, *, workload_class: int, limit: int):
        return [a for a in self.antipatterns if a.workload_class == workload_class][:limit]

    async def record_antipattern(self, antipattern):
        self.antipatterns.append(antipattern)


class ScriptedLlm:
    """Answers with fixed data per schema name; records every prompt it was given."""

    model = "fake"

    def __init__(self, answers: dict[str, Any] | None = None, *, unavailable: bool = False):
        self.answers = answers or {}
        self.unavailable = unavailable
        self.prompts: list[tuple[str, str]] = []

    async def complete_json(
        self, *, system, user, schema, schema_name="answer", max_tokens=256, temperature=0.2
    ):
        self.prompts.append((schema_name, user))
        usage = Usage(
            model="fake",
            calls=1,
            prompt_tokens=len(user) // 4,
            completion_tokens=10,
            wall_seconds=0.01,
        )
        if self.unavailable:
            raise LlmUnavailable("fake endpoint down", usage=usage)
        answer = self.answers.get(schema_name)
        if callable(answer):
            answer = answer(user, schema)
        if answer is None:
            raise LlmUnavailable("no scripted answer", usage=usage)
        return JsonResult(data=answer, usage=usage, raw=json.dumps(answer))


def profile(cls: int = common_pb2.PARALLEL_BUILD, **features: float) -> profile_pb2.WorkloadProfile:
    p = profile_pb2.WorkloadProfile(
        profile_id="prof-1",
        node="vm-1",
        workload_class=cls,
        class_confidence=0.9,
        description="CPU-intensive parallel compilation with short-lived processes",
        workload=profile_pb2.WorkloadIdentity(
            name="make -j8", comm="make", cmdline=["make", "-j8"]
        ),
    )
    if cls in (common_pb2.LATENCY_SERVER, common_pb2.INTERACTIVE_BACKGROUND):
        p.goal.kind, p.goal.metric = common_pb2.GOAL_TAIL_LATENCY, "p99_latency_us"
    else:
        p.goal.kind, p.goal.metric = common_pb2.GOAL_MAKESPAN, "makespan_s"
    for k, v in features.items():
        setattr(p.features, k, v)
    return p
