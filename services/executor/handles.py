"""Ways the rollout coordinator reaches a node: in-process, or a peer executor over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from schedcp.rpc import grpc_channel
from schedcp.v1 import common_pb2, services_pb2, services_pb2_grpc, verdict_pb2
from services.executor import convert
from services.executor.node_executor import DeployRequest, NodeExecutor, Report


class LocalNodeHandle:
    """This executor's own node."""

    def __init__(self, executor: NodeExecutor) -> None:
        self.name = executor.node_name
        self._executor = executor

    async def deploy(self, req: DeployRequest) -> AsyncIterator[Report]:
        async for report in _streamed(lambda emit: self._executor.deploy(req, emit)):
            yield report

    async def rollback(self, *, rollout_id: str, reason: str) -> AsyncIterator[Report]:
        async for report in _streamed(lambda emit: self._executor.rollback(rollout_id=rollout_id, reason=reason,
                                                                           emit=emit)):
            yield report


async def _streamed(run) -> AsyncIterator[Report]:  # type: ignore[no-untyped-def]
    """Turn an ``emit``-callback operation into an async stream of its reports."""
    queue: asyncio.Queue[Report | None] = asyncio.Queue()

    async def emit(report: Report) -> None:
        await queue.put(report)

    async def runner() -> None:
        try:
            await run(emit)
        finally:
            await queue.put(None)

    task = asyncio.create_task(runner())
    try:
        while (item := await queue.get()) is not None:
            yield item
        await task  # surface an exception from the operation
    finally:
        if not task.done():
            task.cancel()


class RemoteNodeHandle:
    """A peer node's executor, driven through its ExecutorService."""

    def __init__(self, name: str, address: str, *, timeout_s: float = 1800.0) -> None:
        self.name = name
        self.address = address
        self._timeout_s = timeout_s

    async def deploy(self, req: DeployRequest) -> AsyncIterator[Report]:
        verdict = verdict_pb2.Verdict(artifact=req.artifact, config_json=convert.tunables_json(req.tunables))
        verdict.token.CopyFrom(req.token)
        verdict.plan.policy.name = req.policy
        verdict.plan.policy.version = req.version
        verdict.performance.workload = req.workload_class
        request = services_pb2.DeployRequest(verdict=verdict, nodes=common_pb2.NodeSelector(nodes=[self.name]),
                                             canary=1, bake_seconds=req.bake_s,
                                             regression_threshold_pct=req.regression_pct or 0.0)
        request.rollout_id = req.rollout_id
        request.phase_label = req.label
        async with grpc_channel(self.address) as channel:
            stub = services_pb2_grpc.ExecutorServiceStub(channel)
            async for pb in stub.Deploy(request, timeout=self._timeout_s):
                if pb.node == self.name:
                    yield convert.report_from_proto(pb)

    async def rollback(self, *, rollout_id: str, reason: str) -> AsyncIterator[Report]:
        request = services_pb2.RollbackRequest(nodes=common_pb2.NodeSelector(nodes=[self.name]), reason=reason)
        request.rollout_id = rollout_id
        async with grpc_channel(self.address) as channel:
            stub = services_pb2_grpc.ExecutorServiceStub(channel)
            async for pb in stub.Rollback(request, timeout=self._timeout_s):
                yield convert.report_from_proto(pb)

    async def status(self) -> services_pb2.StatusResponse:
        async with grpc_channel(self.address) as channel:
            stub = services_pb2_grpc.ExecutorServiceStub(channel)
            return await stub.Status(services_pb2.StatusRequest(nodes=common_pb2.NodeSelector(nodes=[self.name])),
                                     timeout=60)
