"""Fleet rollout: canary first, bake, then widen; halt and roll back on a trip.

The coordinator talks to nodes through ``NodeHandle`` (the local executor
in-process, or a peer executor over gRPC). Each node deploys with its own
bake and circuit breaker; the coordinator decides the order and what to do
when a node does not complete: roll back every node this rollout touched
and halt, so a bad scheduler never reaches the rest of the fleet.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from services.executor.node_executor import DeployRequest, Report


class NodeHandle(Protocol):
    name: str

    def deploy(self, req: DeployRequest) -> AsyncIterator[Report]: ...

    def rollback(self, *, rollout_id: str, reason: str) -> AsyncIterator[Report]: ...


@dataclass(frozen=True)
class RolloutPlan:
    canary: list[str]
    rest: list[str]


def plan_rollout(nodes: Sequence[str], canary: float) -> RolloutPlan:
    """Canary size is a count when >= 1, a fraction of the nodes when < 1 (at least one)."""
    ordered = sorted(nodes)
    if not ordered:
        return RolloutPlan([], [])
    if canary <= 0:
        n = 1
    elif canary < 1:
        n = max(1, math.ceil(canary * len(ordered)))
    else:
        n = min(len(ordered), int(canary))
    return RolloutPlan(canary=ordered[:n], rest=ordered[n:])


class RolloutCoordinator:
    def __init__(self, *, nodes: dict[str, NodeHandle]) -> None:
        self._nodes = nodes

    async def run(self, req: DeployRequest, *, node_names: Sequence[str], canary: float) -> AsyncIterator[Report]:
        rollout_id = req.rollout_id or uuid.uuid4().hex
        unknown = [n for n in node_names if n not in self._nodes]
        if unknown:
            yield Report(node=",".join(unknown), rollout_id=rollout_id, phase="REFUSED",
                         message=f"unknown nodes {unknown}; known: {sorted(self._nodes)}")
            return
        plan = plan_rollout(node_names, canary)
        touched: list[str] = []
        for label, wave in (("CANARY", plan.canary), ("FLEET", plan.rest)):
            if not wave:
                continue
            finals: dict[str, Report] = {}
            async for report in self._wave(wave, replace(req, rollout_id=rollout_id, label=label), finals):
                yield report
            touched.extend(wave)
            failed = {n: r for n, r in finals.items() if r.phase != "COMPLETE"}
            if failed:
                why = "; ".join(f"{n}: {r.phase} {r.message}" for n, r in sorted(failed.items()))
                # Roll back everything this rollout changed, including the
                # nodes that completed: a fleet runs one known state. All at
                # once: one after another, a large fleet would take N rollbacks.
                undo = [n for n in touched
                        if not (failed.get(n) and failed[n].phase in ("ROLLED_BACK", "REFUSED", "FAILED"))]
                async for report in self._rollbacks(undo, rollout_id=rollout_id, reason=f"rollout halted: {why}"):
                    yield report
                yield Report(node="*", rollout_id=rollout_id, phase="HALTED", policy=req.policy,
                             version=req.version, message=f"{label} wave failed, rollout halted: {why}")
                return
        yield Report(node="*", rollout_id=rollout_id, phase="COMPLETE", policy=req.policy, version=req.version,
                     message=f"deployed to {len(touched)} nodes (canary {len(plan.canary)})")

    async def _wave(self, nodes: Sequence[str], req: DeployRequest, finals: dict[str, Report]) -> AsyncIterator[Report]:
        async for report in _merged({n: self._nodes[n].deploy(req) for n in nodes}, rollout_id=req.rollout_id,
                                    what="node unreachable"):
            finals[report.node] = report
            yield report

    async def _rollbacks(self, nodes: Sequence[str], *, rollout_id: str, reason: str) -> AsyncIterator[Report]:
        async for report in _merged({n: self._nodes[n].rollback(rollout_id=rollout_id, reason=reason) for n in nodes},
                                    rollout_id=rollout_id, what="rollback failed, node unreachable"):
            yield report


async def _merged(streams: dict[str, AsyncIterator[Report]], *, rollout_id: str, what: str) -> AsyncIterator[Report]:
    """Run every node's report stream at once and yield reports as they come."""
    queue: asyncio.Queue[Report | None] = asyncio.Queue()

    async def one(name: str, stream: AsyncIterator[Report]) -> None:
        try:
            async for report in stream:
                await queue.put(report)
        except Exception as exc:  # noqa: BLE001 - a lost node is a failed node, not a crashed rollout
            await queue.put(Report(node=name, rollout_id=rollout_id, phase="FAILED", message=f"{what}: {exc}"))
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(one(n, s)) for n, s in streams.items()]
    done = 0
    try:
        while done < len(tasks):
            item = await queue.get()
            if item is None:
                done += 1
            else:
                yield item
    finally:
        for t in tasks:
            t.cancel()
