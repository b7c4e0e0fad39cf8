"""The process shape every schedcp service shares.

``run_service`` configures structured logging and tracing, installs signal
handlers that set a stop event, runs the service's async ``main(stop)`` and
exits non-zero with a clear message when start-up fails (for example a
setting that does not parse). ``main`` keeps its resources in an
``AsyncExitStack`` so SIGTERM drains in-flight work in reverse order of
start-up: stop taking new messages, finish the current ones, stop gRPC.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace

from schedcp import tracing
from schedcp.bus import Bus
from schedcp.errors import ConfigError, SchedcpError
from schedcp.rpc import Register, serve_grpc
from schedcp.settings import CommonSettings

Main = Callable[[asyncio.Event], Awaitable[None]]


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the trace id when inside a span."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str) -> None:
    level_name = os.environ.get("SCHEDCP_LOG_LEVEL", "info").upper()
    level = getattr(logging, level_name, None)
    if not isinstance(level, int):
        raise ConfigError("SCHEDCP_LOG_LEVEL", f"{level_name!r} is not a log level",
                          hint="use debug, info, warning or error")
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("SCHEDCP_LOG_FORMAT", "json") == "text":
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonLogFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries stay at warning unless debugging.
    for name in ("nats", "grpc", "asyncio"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def run_service(name: str, main: Main) -> int:
    """Run a service process to completion; returns its exit code."""
    try:
        configure_logging(name)
    except ConfigError as exc:
        print(f"schedcp-{name}: {exc}", file=sys.stderr)
        return 2
    tracing.setup_tracing(f"schedcp-{name}")
    log = logging.getLogger(f"schedcp.{name}")

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        started = time.monotonic()
        log.info("starting", extra={})
        await main(stop)
        log.info("stopped after %.1fs", time.monotonic() - started)
        busy = _busy_worker_threads(loop)
        if busy:
            # asyncio.run would now join the default executor, i.e. wait for
            # a verification or a VM run in a worker thread to finish, which
            # can take minutes; the drain is over and the messages were handed
            # back, so exit now. VMs die with us (PR_SET_PDEATHSIG).
            log.warning("exiting with %d worker thread(s) still busy after the drain", busy)
            tracing.shutdown_tracing()
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    try:
        asyncio.run(runner())
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        print(f"schedcp-{name}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except SchedcpError as exc:
        log.error("failed: %s", exc)
        print(f"schedcp-{name}: {exc}", file=sys.stderr)
        return 1
    finally:
        tracing.shutdown_tracing()
    return 0


def _busy_worker_threads(loop: asyncio.AbstractEventLoop) -> int:
    """Threads of the loop's default executor (asyncio.to_thread) still
    running a job. Reads ThreadPoolExecutor's idle semaphore, so an idle
    pool counts as 0; unknown internals count as 0 (the old, waiting path)."""
    pool = getattr(loop, "_default_executor", None)
    threads = getattr(pool, "_threads", None)
    idle = getattr(getattr(pool, "_idle_semaphore", None), "_value", None)
    if not threads or idle is None:
        return 0
    return max(0, sum(t.is_alive() for t in threads) - idle)


# ---------------------------------------------------------------------------
# The common body of a service: bus + gRPC + the service's own set-up.



@dataclass
class ServiceContext:
    """What a service's ``setup`` receives to wire itself."""

    common: CommonSettings
    settings: Any
    bus: Bus
    stack: AsyncExitStack
    registrations: list[Register] = field(default_factory=list)


class Setup(Protocol):
    async def __call__(self, ctx: ServiceContext) -> None: ...


async def serve(stop: asyncio.Event, *, common: CommonSettings, settings: Any, setup: Setup) -> None:
    """Connect the bus, let ``setup`` add subscriptions and servicers, serve until ``stop``."""
    log = logging.getLogger(f"schedcp.{common.service}")
    async with AsyncExitStack() as stack:
        bus = await Bus.connect(url=common.nats_url, service=common.service,
                                prefix=common.subject_prefix, replicas=common.nats_replicas)
        # Registered first so it closes last: consumers stop (finishing the
        # message in hand) before the connection drains.
        stack.push_async_callback(bus.close)
        ctx = ServiceContext(common=common, settings=settings, bus=bus, stack=stack)
        await setup(ctx)
        # Runs first on the way out: consumers finish the message in hand
        # while everything setup opened (stores, nodes) is still there.
        stack.push_async_callback(bus.stop_consuming, common.drain_seconds)
        server, health_servicer = await serve_grpc(service_name=common.service,
                                                   address=common.grpc_address,
                                                   register=ctx.registrations)

        async def stop_grpc() -> None:
            await health_servicer.enter_graceful_shutdown()
            await server.stop(common.drain_seconds)

        stack.push_async_callback(stop_grpc)
        log.info("ready: grpc %s, nats %s, node %s", common.grpc_address, common.nats_url, common.node)
        await stop.wait()
        log.info("stopping: draining in-flight work (up to %.0fs)", common.drain_seconds)
