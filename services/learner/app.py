"""Wiring of the learner service: its servicer and bus subscriptions."""

from __future__ import annotations

from schedcp.service import ServiceContext
from schedcp.v1 import services_pb2_grpc
from services.learner import subscriptions
from services.learner.learner import Learner
from services.learner.servicer import LearnerServicer
from services.learner.settings import Settings
from services.planner.clients import RepositoryClient


async def setup(ctx: ServiceContext) -> None:
    """Register servicers in ctx.registrations and start subscriptions on ctx.bus."""
    settings: Settings = ctx.settings
    repository = RepositoryClient(settings.repository_address)
    ctx.stack.push_async_callback(repository.close)
    learner = Learner(
        repository=repository,
        replanner=subscriptions.BusReplanner(ctx.bus),
        settings=settings.learner,
    )
    ctx.registrations.append(
        (services_pb2_grpc.add_LearnerServiceServicer_to_server, LearnerServicer(learner=learner))
    )
    await subscriptions.start(ctx.bus, learner=learner)
