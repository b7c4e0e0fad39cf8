"""Wiring of the verifier service: its servicer and bus subscriptions."""

from __future__ import annotations

import asyncio

from schedcp.service import ServiceContext
from schedcp.v1 import services_pb2_grpc
from services.verifier import subscriptions
from services.verifier.servicer import VerifierServicer
from services.verifier.settings import Settings
from services.verifier.verifier import default_verifier


async def setup(ctx: ServiceContext) -> None:
    """Register servicers in ctx.registrations and start subscriptions on ctx.bus."""
    s: Settings = ctx.settings
    # Fetching the kernel and generating vmlinux.h can take seconds: off the loop.
    verifier = await asyncio.to_thread(
        default_verifier, s.common.data_dir, judge=s.judge, use_vm=s.use_vm)
    verifier.token_ttl_s = s.token_ttl_s
    verifier.set_parallel(s.parallel)
    verifier.keyring.export_public(s.keys_export)
    ctx.registrations.append((services_pb2_grpc.add_VerifierServiceServicer_to_server,
                              VerifierServicer(verifier=verifier, keys_export=s.keys_export)))
    await subscriptions.start(ctx.bus, verifier=verifier, concurrency=s.parallel)
