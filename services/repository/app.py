"""Wiring of the repository service: its store, servicer and bus subscriptions."""

from __future__ import annotations

import asyncio
import logging

from schedcp.service import ServiceContext
from schedcp.v1 import services_pb2_grpc

from .backends import open_store
from .events import RepositoryEvents
from .seed import seed_from_library
from .servicer import RepositoryServicer
from .subscriptions import subscribe

log = logging.getLogger(__name__)


async def setup(ctx: ServiceContext) -> None:
    """Open the store, seed the library, register the servicer and start consuming events."""
    store = await asyncio.to_thread(open_store, ctx.settings.store)
    ctx.stack.callback(store.close)
    if ctx.settings.seed_dir is not None:
        report = await asyncio.to_thread(seed_from_library, store, ctx.settings.seed_dir)
        log.info("seeded from %s: %d new, %d unchanged, %d skipped", ctx.settings.seed_dir,
                 len(report.stored), len(report.unchanged), len(report.skipped))
        for path, why in report.skipped:
            log.warning("library file skipped: %s: %s", path, why)
    ctx.registrations.append((services_pb2_grpc.add_RepositoryServiceServicer_to_server,
                              RepositoryServicer(store=store)))
    await subscribe(ctx.bus, events=RepositoryEvents(store=store))
