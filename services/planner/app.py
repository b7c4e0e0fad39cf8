"""Wiring of the planner service: its servicer and bus subscriptions."""

from __future__ import annotations

from schedcp.llm.settings import open_llm
from schedcp.service import ServiceContext
from schedcp.v1 import services_pb2_grpc
from services.planner import subscriptions
from services.planner.clients import HistoryClient, RepositoryClient
from services.planner.planner import Planner
from services.planner.servicer import PlannerServicer
from services.planner.settings import Settings


async def setup(ctx: ServiceContext) -> None:
    """Register servicers in ctx.registrations and start subscriptions on ctx.bus."""
    settings: Settings = ctx.settings
    repository = RepositoryClient(settings.repository_address)
    ctx.stack.push_async_callback(repository.close)
    history = HistoryClient(settings.learner_address)
    ctx.stack.push_async_callback(history.close)
    llm = await ctx.stack.enter_async_context(open_llm(settings.llm))
    planner = Planner(repository=repository, llm=llm, history=history, settings=settings.planner)
    ctx.registrations.append(
        (services_pb2_grpc.add_PlannerServiceServicer_to_server, PlannerServicer(planner=planner))
    )
    await subscriptions.start(ctx.bus, planner=planner, refine=settings.refine)
