"""Feedback metrics for the circuit breaker, measured on the node itself.

The executor judges a deployment by the workload class's reference workload
(schedcp.workloads), run on the node under whatever scheduler is loaded:
once before the deployment (the baseline) and again during the bake. This is
the same measurement the verifier's performance check uses, so a regression
the verifier would have refused is caught the same way in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from schedcp.errors import SchedcpError
from schedcp.substrate.nodes import SchedNode
from schedcp.workloads import get_workload, prepare, workload_command, workloads_for_class
from schedcp.workloads.spec import parse_result

#: One repetition in a few seconds under TCG (same shape as the defaults).
QUICK_PARAMS: dict[str, dict[str, int]] = {
    "wakeup-server": {"runtime_s": 3, "warmup_s": 1},
    "interactive": {"runtime_s": 3, "warmup_s": 1},
    "hackbench": {"loops": 100},
    "parallel-build": {"units": 16, "libraries": 3},
    "batch-long-tail": {"short_tasks": 16, "short_kiter": 10000, "long_tasks": 2, "long_kiter": 200000},
}


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float
    higher_is_better: bool
    unit: str
    workload: str


class MetricsProbe(Protocol):
    async def measure(self, workload_class: str) -> Measurement | None:
        """The target metric now, or None when the class has no reference workload."""
        ...


class WorkloadProbe:
    """Runs the class's reference workload on a node and reads its primary metric."""

    def __init__(self, *, node: SchedNode, params: Mapping[str, Mapping[str, int]] | None = None,
                 repetitions: int = 1, timeout_s: float = 300.0) -> None:
        self._node = node
        self._params = dict(params or QUICK_PARAMS)
        self._repetitions = repetitions
        self._timeout_s = timeout_s

    async def measure(self, workload_class: str) -> Measurement | None:
        specs = workloads_for_class(workload_class)
        if not specs:
            return None
        spec = specs[0]
        await asyncio.to_thread(prepare, spec.name)
        argv = workload_command(spec.name, self._params.get(spec.name))
        values = []
        for _ in range(self._repetitions):
            result = await asyncio.to_thread(self._node.run, argv, timeout_s=self._timeout_s)
            if result.returncode != 0:
                raise SchedcpError(f"{spec.name} failed on the node (exit {result.returncode}): "
                                   f"{result.stderr[-500:]}")
            values.append(parse_result(result.stdout, get_workload(spec.name)).metrics[spec.primary_metric])
        values.sort()
        metric = spec.metric(spec.primary_metric)
        return Measurement(metric=spec.primary_metric, value=values[len(values) // 2],
                           higher_is_better=metric.higher_is_better, unit=metric.unit, workload=spec.name)
