"""Wiring of the executor service: its node, token gate, state and servicer.

The node is booted (a micro-VM) or opened (this host) before the gRPC server
reports healthy, and reconciled against the kernel's view before the first
request, so a restarted executor never serves from an unknown state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import grpc

from schedcp.errors import NotFound, Unavailable
from schedcp.rpc import grpc_channel
from schedcp.service import ServiceContext
from schedcp.substrate.nodes import HostSchedNode, RebootableVmNode, SchedNode
from schedcp.tokens import load_trusted_keys, public_keys_from_pairs
from schedcp.v1 import services_pb2, services_pb2_grpc, verdict_pb2
from services.executor.audit import AuditLog
from services.executor.breaker import CircuitBreaker
from services.executor.gate import PersistentNonceLedger, TokenGate
from services.executor.metrics import WorkloadProbe
from services.executor.node_executor import NodeExecutor
from services.executor.servicer import ExecutorServicer
from services.executor.settings import Settings
from services.executor.state import NodeStateStore

log = logging.getLogger(__name__)


class TrustedKeys:
    """The verifier's public keys: the exported file, else its PublicKeys RPC."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: dict[str, bytes] = {}

    def __call__(self, refresh: bool) -> Mapping[str, bytes]:
        if self._keys and not refresh:
            return self._keys
        path = self._settings.trusted_keys
        if path.exists():
            self._keys = load_trusted_keys(path)
        else:
            self._keys = self._fetch()
        return self._keys

    def _fetch(self) -> dict[str, bytes]:
        address = self._settings.verifier_address
        try:
            with grpc.insecure_channel(address) as channel:
                resp = services_pb2_grpc.VerifierServiceStub(channel).PublicKeys(
                    services_pb2.PublicKeysRequest(), timeout=10)
        except grpc.RpcError as exc:
            raise Unavailable(f"no trusted verifier keys: {self._settings.trusted_keys} is missing and the "
                              f"verifier at {address} did not answer ({exc.code().name})",
                              hint="set SCHEDCP_EXECUTOR_TRUSTED_KEYS or SCHEDCP_VERIFIER_ADDR") from exc
        return public_keys_from_pairs((k.key_id, k.public_key) for k in resp.keys)


async def _open_node(settings: Settings, ctx: ServiceContext) -> SchedNode:
    if settings.node_kind == "host":
        return HostSchedNode()
    node = RebootableVmNode(cpus=settings.vm_cpus, mem_mb=settings.vm_mem_mb, lifetime=settings.vm_lifetime_s)
    log.info("booting the micro-VM node (%d vCPUs, %d MiB)", settings.vm_cpus, settings.vm_mem_mb)
    await asyncio.to_thread(node.start)
    ctx.stack.callback(node.close)
    return node


async def _keep_node_up(executor: NodeExecutor, interval_s: float) -> None:
    """Boot the micro-VM node again whenever it dies, then reconcile.

    Without this an executor whose VM died (its lifetime ran out, qemu
    crashed) answers every call with an error until someone restarts it.
    """
    while True:
        await asyncio.sleep(interval_s)
        try:
            await executor.recover_node()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep watching; the next round retries the boot
            log.exception("could not boot the micro-VM node again; retrying in %.0fs", interval_s)


async def setup(ctx: ServiceContext) -> None:
    """Open the node, reconcile, then serve ExecutorService."""
    settings: Settings = ctx.settings
    node_name = ctx.common.node
    state_dir = settings.state_dir
    audit = AuditLog(state_dir / "audit.jsonl")
    node = await _open_node(settings, ctx)
    gate = TokenGate(node=node_name, labels=settings.labels, trusted_keys=TrustedKeys(settings),
                     ledger=PersistentNonceLedger(state_dir / "nonces.jsonl"), audit=audit)
    executor = NodeExecutor(node_name=node_name, node=node, gate=gate, store=NodeStateStore(state_dir / "state.json"),
                            audit=audit, artifacts_dir=state_dir / "artifacts",
                            breaker=CircuitBreaker(settings.regression_pct), metrics=WorkloadProbe(node=node, repetitions=settings.probe_repetitions))
    await executor.reconcile()
    if isinstance(node, RebootableVmNode):
        watch = asyncio.create_task(_keep_node_up(executor, settings.node_check_s), name="executor-node-watch")

        async def stop_watch() -> None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

        # Pushed after the node's close: stops before the VM is shut down.
        ctx.stack.push_async_callback(stop_watch)

    async def publish(subject: str, message: Any) -> object:
        return await ctx.bus.publish(subject, message)

    async def fetch_verdict(verdict_id: str) -> verdict_pb2.Verdict:
        async with grpc_channel(settings.verifier_address) as channel:
            try:
                return await services_pb2_grpc.VerifierServiceStub(channel).GetVerdict(
                    services_pb2.GetVerdictRequest(verdict_id=verdict_id), timeout=30)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise NotFound(f"the verifier has no verdict {verdict_id!r}") from exc
                raise Unavailable(f"verifier at {settings.verifier_address}: {exc.code().name}") from exc

    servicer = ExecutorServicer(local=executor, peers=settings.peers, labels=settings.labels, publish=publish,
                                fetch_verdict=fetch_verdict, default_canary=settings.canary,
                                default_bake_s=settings.bake_s, default_regression_pct=settings.regression_pct)
    ctx.registrations.append((services_pb2_grpc.add_ExecutorServiceServicer_to_server, servicer))
