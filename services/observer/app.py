"""Wiring of the observer service: its servicer, the trigger loop and the bus publisher."""

from __future__ import annotations

import asyncio
import contextlib
import os

from schedcp.llm.settings import open_llm
from schedcp.service import ServiceContext
from schedcp.v1 import services_pb2_grpc
from services.observer.agent import AgentOptions, ObservationAgent
from services.observer.feedback import FeedbackChannel
from services.observer.servicer import ObserverServicer
from services.observer.settings import Settings
from services.observer.subscriptions import BusPublisher
from services.observer.tier1 import Target, Tier1Sampler
from services.observer.tier2 import ProbeLimits, Tier2Profiler
from services.observer.triggers import TriggerConfig, TriggerEngine, TriggerLoop, WorkloadScanner


def build_agent(settings: Settings, *, llm: object | None = None) -> ObservationAgent:
    """The agent as the service configures it (tier 2 only where it can work: root)."""
    tier2 = None
    if os.geteuid() == 0:
        tier2 = Tier2Profiler(limits=ProbeLimits(max_window=settings.max_deep_window,
                                                 max_overhead_pct=settings.max_overhead_pct))
    return ObservationAgent(
        node=settings.common.node, tier1=Tier1Sampler(), tier2=tier2, llm=llm,  # type: ignore[arg-type]
        options=AgentOptions(confidence_threshold=settings.confidence_threshold
                             if settings.auto_deep else 0.0,
                             max_overhead_pct=settings.max_overhead_pct))


async def setup(ctx: ServiceContext) -> None:
    """Register the servicer in ctx.registrations and start the trigger loop."""
    settings: Settings = ctx.settings
    llm = await ctx.stack.enter_async_context(open_llm(settings.llm))
    agent = build_agent(settings, llm=llm)
    publisher = BusPublisher(bus=ctx.bus, node=settings.common.node)
    feedback = FeedbackChannel(node=settings.common.node)
    ctx.registrations.append((services_pb2_grpc.add_ObserverServiceServicer_to_server,
                              ObserverServicer(agent=agent, feedback=feedback, publisher=publisher,
                                               default_window=settings.window_seconds)))
    if settings.triggers:
        async def profile(target: Target, trigger: str):  # type: ignore[no-untyped-def]
            return await agent.observe(target, window=settings.window_seconds, deep=False, trigger=trigger)

        loop = TriggerLoop(scanner=WorkloadScanner(), profile=profile, publish=publisher.profile,
                           engine=TriggerEngine(TriggerConfig(cpu_threshold=settings.trigger_cpu)),
                           scan_seconds=settings.scan_seconds, recheck_seconds=settings.recheck_seconds)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop), name="observer-triggers")

        async def stop_triggers() -> None:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        ctx.stack.push_async_callback(stop_triggers)
