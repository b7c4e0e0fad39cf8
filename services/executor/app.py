"""Wiring of the executor service: its servicer and bus subscriptions."""

from __future__ import annotations

from schedcp.service import ServiceContext


async def setup(ctx: ServiceContext) -> None:
    """Register servicers in ctx.registrations and start subscriptions on ctx.bus."""
