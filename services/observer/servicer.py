"""Thin gRPC servicer of the observer: wire <-> domain, errors -> status codes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import grpc

from schedcp.errors import InvalidArgument, SchedcpError
from schedcp.rpc import abort_for
from schedcp.v1 import profile_pb2, services_pb2, services_pb2_grpc
from services.observer.agent import ObservationAgent
from services.observer.feedback import FeedbackChannel
from services.observer.tier1 import Target

log = logging.getLogger(__name__)


class Publisher(Protocol):
    async def profile(self, profile: profile_pb2.WorkloadProfile, correlation_id: str | None) -> None: ...
    async def feedback(self, report: profile_pb2.FeedbackReport, correlation_id: str | None) -> None: ...


def target_from_selector(sel: services_pb2.WorkloadSelector) -> Target:
    """A domain Target from the wire selector (exactly one of pid, cgroup, node)."""
    which = sel.WhichOneof("target")
    if sel.node and which is None:
        return Target(node=True)
    if which == "pid" and not sel.node:
        return Target(pid=sel.pid)
    if which == "cgroup" and not sel.node:
        return Target(cgroup=sel.cgroup)
    raise InvalidArgument("the selector must name exactly one of pid, cgroup or node",
                          hint="set selector.pid, selector.cgroup, or selector.node=true")


class ObserverServicer(services_pb2_grpc.ObserverServiceServicer):
    """Summary (tier 1), DeepProfile (tier 2) and Feedback (tier 3)."""

    def __init__(self, *, agent: ObservationAgent, feedback: FeedbackChannel, publisher: Publisher | None,
                 default_window: float) -> None:
        self.agent = agent
        self.feedback_channel = feedback
        self.publisher = publisher
        self.default_window = default_window

    async def _guard(self, context: grpc.aio.ServicerContext, coro: Any) -> Any:
        try:
            return await coro
        except SchedcpError as exc:
            await abort_for(context, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad request must never take the service down
            log.exception("observer request failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"observer internal error: {type(exc).__name__}: {exc}")

    async def Summary(self, request: services_pb2.SummaryRequest, context: grpc.aio.ServicerContext
                      ) -> profile_pb2.WorkloadProfile:
        async def run() -> profile_pb2.WorkloadProfile:
            target = target_from_selector(request.selector)
            prof = await self.agent.observe(target, window=request.window_seconds or self.default_window,
                                            deep=False)
            if request.publish and self.publisher is not None:
                await self.publisher.profile(prof, request.correlation_id or None)
            return prof
        return await self._guard(context, run())

    async def DeepProfile(self, request: services_pb2.DeepProfileRequest, context: grpc.aio.ServicerContext
                          ) -> profile_pb2.WorkloadProfile:
        async def run() -> profile_pb2.WorkloadProfile:
            target = target_from_selector(request.selector)
            prof = await self.agent.observe(target, window=request.window_seconds or self.default_window,
                                            deep=True, probes=tuple(request.probes),
                                            max_overhead_pct=request.max_overhead_pct or None)
            if request.publish and self.publisher is not None:
                await self.publisher.profile(prof, request.correlation_id or None)
            return prof
        return await self._guard(context, run())

    async def Feedback(self, request: services_pb2.FeedbackRequest, context: grpc.aio.ServicerContext
                       ) -> profile_pb2.FeedbackReport:
        async def run() -> profile_pb2.FeedbackReport:
            target = target_from_selector(request.selector)
            policy = request.policy if request.HasField("policy") else None
            rep = await asyncio.to_thread(
                self.feedback_channel.report, target, window=request.window_seconds or self.default_window,
                baseline=dict(request.baseline), rollout_id=request.rollout_id, policy=policy)
            if self.publisher is not None:
                await self.publisher.feedback(rep, request.rollout_id or None)
            return rep
        return await self._guard(context, run())
