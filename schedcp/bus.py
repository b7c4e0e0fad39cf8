"""The schedcp bus: NATS JetStream with contracts, dedupe, DLQ and tracing.

Delivery is at-least-once. Publishers set ``Nats-Msg-Id`` so JetStream drops
duplicates within its window; consumers additionally remember the ids they
have handled, so a redelivery after a crash is not processed twice by the same
process (services with durable state dedupe durably too).

Each subscription is a durable *pull* consumer. Every replica of a service
binds the same durable name, so the consumer acts as the service's queue
group: each message goes to one replica, and replicas can come and go.

A message that does not decode, or declares another schema version, is moved
to ``schedcp.v1.dlq`` with the reason in its headers; a handler that keeps
failing sends the message there after ``max_deliver`` attempts. Nothing is
dropped silently and nothing crashes the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats
import nats.errors
import nats.js.errors
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api as js_api
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from schedcp import codec, subjects, tracing
from schedcp.errors import ContractError, Unavailable

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Handler = Callable[[M], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerLag:
    durable: str
    subject: str
    pending: int
    ack_pending: int
    redelivered: int


class _SeenIds:
    """A bounded memory of handled message ids."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def add(self, key: str) -> None:
        self._ids[key] = None
        self._ids.move_to_end(key)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class Subscription(Generic[M]):
    """A running consumer loop; ``stop`` lets in-flight work finish."""

    def __init__(self, bus: Bus, *, subject: str, durable: str, message_type: type[M],
                 handler: Handler[M], max_deliver: int, concurrency: int, ack_wait: float,
                 cancel_on_stop: bool = False) -> None:
        self._bus = bus
        self._cancel_on_stop = cancel_on_stop
        self.subject = subject
        self.durable = durable
        self._type = message_type
        self._handler = handler
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait
        self._seen = _SeenIds()
        self._stopping = asyncio.Event()
        self._psub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._concurrency = concurrency
        self.handled = 0
        self.dead_lettered = 0

    async def start(self) -> None:
        config = js_api.ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.subject,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_deliver=self._max_deliver,
            deliver_policy=js_api.DeliverPolicy.ALL,
            max_ack_pending=max(64, self._concurrency * 4),
        )
        for attempt in range(8):
            try:
                self._psub = await self._bus.js.pull_subscribe(
                    self.subject, durable=self.durable, stream=self._bus.stream, config=config
                )
                break
            except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError,
                    nats.js.errors.NoStreamResponseError) as exc:
                # A busy or electing cluster answers the consumer lookup late.
                if attempt == 7:
                    raise Unavailable(f"cannot create consumer {self.durable} on {self.subject}: {exc!r}") from exc
                await asyncio.sleep(0.5 * (attempt + 1))
        for i in range(self._concurrency):
            self._tasks.append(asyncio.create_task(self._loop(), name=f"bus:{self.durable}:{i}"))

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop fetching; wait for the message being handled to finish.

        With ``grace_s``, a handler still running after it is cancelled and
        its message nak'ed, so JetStream redelivers it at once to another
        replica (or to this service when it is back) instead of after
        ack_wait: a drain is bounded and nothing is lost.
        """
        self._stopping.set()
        if self._cancel_on_stop:
            grace_s = 0.0
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("%s: %d handler(s) still busy after %.0fs; their messages go back "
                            "to the stream", self.durable, len(pending), grace_s or 0)
                await asyncio.gather(*pending, return_exceptions=True)
        if self._psub is not None:
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await self._psub.fetch(batch=1, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.DrainTimeoutError):
                return
            except Exception as exc:  # noqa: BLE001 - keep consuming through transient errors
                log.warning("fetch on %s failed: %s", self.durable, exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self._process(msg)

    async def _process(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        try:
            message = codec.decode(msg.data, headers, self._type)
        except ContractError as exc:
            await self._dead_letter(msg, f"contract: {exc}")
            return
        meta = message.meta  # type: ignore[attr-defined]
        if meta.message_id in self._seen:
            log.info("duplicate %s %s ignored", self._type.DESCRIPTOR.name, meta.message_id)
            await msg.ack()
            return
        parent = tracing.extract(dict(meta.trace_context) or headers)
        token = codec.current_correlation_id.set(meta.correlation_id)
        heartbeat = asyncio.create_task(self._keep_alive(msg))
        try:
            with tracing.tracer().start_as_current_span(
                f"consume {self._type.DESCRIPTOR.name}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": msg.subject,
                    "messaging.message.id": meta.message_id,
                    "messaging.consumer.group.name": self.durable,
                    "schedcp.correlation_id": meta.correlation_id,
                },
            ) as span:
                try:
                    await self._handler(message)
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    raise
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the consumer
            delivered = msg.metadata.num_delivered if msg.metadata else 1
            if delivered >= self._max_deliver or isinstance(exc, ContractError):
                log.error("handler for %s failed %d times, dead-lettering: %s", msg.subject, delivered, exc)
                await self._dead_letter(msg, f"handler failed after {delivered} deliveries: {exc}")
            else:
                log.warning("handler for %s failed (delivery %d/%d), will retry: %s",
                            msg.subject, delivered, self._max_deliver, exc)
                with contextlib.suppress(Exception):
                    await msg.nak(delay=min(30.0, 0.5 * 2 ** delivered))
            return
        except asyncio.CancelledError:
            # Abandoned by a bounded drain: hand the message back now.
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        finally:
            heartbeat.cancel()
            codec.current_correlation_id.reset(token)
        self._seen.add(meta.message_id)
        self.handled += 1
        with contextlib.suppress(Exception):
            await msg.ack()

    async def _keep_alive(self, msg: Msg) -> None:
        # Long handlers (a verification boots VMs) must not be redelivered
        # to another replica while still working.
        while True:
            await asyncio.sleep(max(1.0, self._ack_wait / 3))
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        self.dead_lettered += 1
        log.error("dead-lettering message on %s: %s", msg.subject, reason)
        headers = {k: v for k, v in (msg.headers or {}).items() if k != codec.HEADER_MSG_ID}
        headers[codec.HEADER_DLQ_REASON] = reason[:1000]
        headers[codec.HEADER_DLQ_SUBJECT] = msg.subject
        headers[codec.HEADER_DLQ_CONSUMER] = self.durable
        try:
            await self._bus.js.publish(self._bus.subject(subjects.DLQ), msg.data, headers=headers)
        except Exception as exc:  # noqa: BLE001
            # Not acking means JetStream redelivers: the message is not lost.
            log.error("could not publish to the DLQ (%s); leaving message for redelivery", exc)
            return
        with contextlib.suppress(Exception):
            await msg.ack()


class Bus:
    """A connection to NATS JetStream speaking schedcp.v1 messages."""

    #: How long publish keeps retrying a stream that has no leader. A
    #: clustered stream whose leader's server died elects a new one in a few
    #: seconds, and the client first has to notice and reconnect; measured
    #: failovers here took up to ~8 s, so a short fixed retry count lost
    #: messages that a short wait would have delivered.
    publish_retry_s: float = 30.0

    def __init__(self, *, nc: NatsClient, service: str, prefix: str = "", replicas: int = 1) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.service = service
        self.prefix = prefix
        self.stream = subjects.stream_name(prefix)
        self.replicas = replicas
        self._subscriptions: list[Subscription[Any]] = []

    @classmethod
    async def connect(cls, *, url: str, service: str, prefix: str = "", replicas: int = 1,
                      connect_timeout: float = 5.0) -> Bus:
        """Connect, and create the stream if it does not exist yet."""
        servers = [u.strip() for u in url.split(",") if u.strip()]
        nc = NatsClient()
        try:
            # Reconnects are unlimited once connected (a NATS restart must
            # not kill a service), so the first connection needs its own
            # deadline or an absent server would be retried forever.
            # nats.py annotates the two timeouts as int but uses them as
            # seconds in asyncio timeouts, where fractions work.
            await asyncio.wait_for(nc.connect(
                servers=servers, name=f"schedcp-{service}", connect_timeout=connect_timeout,  # type: ignore[arg-type]
                max_reconnect_attempts=-1, reconnect_time_wait=0.5,  # type: ignore[arg-type]
                allow_reconnect=True,
                error_cb=_log_error, disconnected_cb=_log_disconnect, reconnected_cb=_log_reconnect,
            ), timeout=connect_timeout * 2)
        except (TimeoutError, Exception) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise Unavailable(f"cannot connect to NATS at {url}: {exc!r}",
                              hint="start it with `schedcp up` or set SCHEDCP_NATS_URL") from exc
        bus = cls(nc=nc, service=service, prefix=prefix, replicas=replicas)
        await bus.ensure_stream()
        return bus

    def subject(self, subject: str) -> str:
        return subjects.with_prefix(subject, self.prefix)

    async def ensure_stream(self) -> None:
        config = js_api.StreamConfig(
            name=self.stream,
            subjects=[self.subject(f"{subjects.ROOT}.>")],
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE,
            max_age=7 * 24 * 3600,
            max_msgs=1_000_000,
            duplicate_window=120,
            num_replicas=self.replicas,
        )
        for attempt in range(10):
            try:
                await self.js.stream_info(self.stream)
                return
            except nats.js.errors.NotFoundError:
                pass
            except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            try:
                await self.js.add_stream(config)
                return
            except nats.js.errors.BadRequestError:
                # Another service created it concurrently.
                return
            except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                await asyncio.sleep(0.5 * (attempt + 1))
        raise Unavailable(f"JetStream stream {self.stream} could not be created",
                          hint="is JetStream enabled on the NATS server (-js)?")

    async def publish(self, subject: str, message: Message, *, correlation_id: str | None = None,
                      message_id: str | None = None) -> str:
        """Stamp, trace and publish a message; returns its message id."""
        full = self.subject(subject)
        with tracing.tracer().start_as_current_span(
            f"publish {message.DESCRIPTOR.name}", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.destination.name": full},
        ) as span:
            codec.stamp(message, producer=self.service, correlation_id=correlation_id,
                        message_id=message_id, trace_context=tracing.inject())
            data, headers = codec.encode(message)
            meta = message.meta  # type: ignore[attr-defined]
            span.set_attribute("messaging.message.id", meta.message_id)
            span.set_attribute("schedcp.correlation_id", meta.correlation_id)
            deadline = time.monotonic() + self.publish_retry_s
            attempt = 0
            while True:
                try:
                    await self.js.publish(full, data, headers=headers, timeout=5.0)
                    return str(meta.message_id)
                except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError,
                        nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError,
                        nats.errors.ConnectionReconnectingError) as exc:
                    # NoStreamResponse is what a cluster failover looks like.
                    # Same Nats-Msg-Id on retry: JetStream dedupes if the
                    # first attempt did land.
                    attempt += 1
                    if time.monotonic() >= deadline:
                        raise Unavailable(
                            f"publish to {full} failed after {attempt} attempts in "
                            f"{self.publish_retry_s:.0f}s: {exc!r}",
                            hint="is the NATS server (or a quorum of the cluster) up?") from exc
                    span.add_event("publish retry", {"attempt": attempt, "error": repr(exc)})
                    await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Publish bytes as they are (tests of bad input, bridges)."""
        await self.js.publish(self.subject(subject), data, headers=headers)

    async def subscribe(self, subject: str, *, message_type: type[M], durable: str, handler: Handler[M],
                        max_deliver: int = 5, concurrency: int = 1, ack_wait: float = 30.0,
                        cancel_on_stop: bool = False) -> Subscription[M]:
        """Start a durable, queue-grouped consumer of ``subject`` (wildcards allowed).

        ``cancel_on_stop``: the handler's work is safe to redo (no side effect
        but idempotent publishes), so a stopping service cancels it at once and
        its message goes back to the stream, instead of waiting up to the
        drain time for, say, a minute-long LLM call.
        """
        durable = "".join(c if c.isalnum() or c in "-_" else "_" for c in durable)
        sub: Subscription[M] = Subscription(
            self, subject=self.subject(subject), durable=durable, message_type=message_type,
            handler=handler, max_deliver=max_deliver, concurrency=concurrency, ack_wait=ack_wait,
            cancel_on_stop=cancel_on_stop,
        )
        await sub.start()
        self._subscriptions.append(sub)
        return sub

    async def watch(self, subject_filters: Sequence[str], *, deliver_all: bool = False,
                    ) -> AsyncIterator[tuple[str, bytes, dict[str, str]]]:
        """Follow subjects live with an ephemeral ordered consumer.

        Yields (subject without prefix, payload, headers). ``deliver_all``
        replays what the stream still holds first.
        """
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            await queue.put(msg)

        subs = []
        policy = js_api.DeliverPolicy.ALL if deliver_all else js_api.DeliverPolicy.NEW
        for flt in subject_filters:
            subs.append(await self.js.subscribe(self.subject(flt), cb=on_msg, ordered_consumer=True,
                                                config=js_api.ConsumerConfig(deliver_policy=policy)))
        cut = len(self.prefix) + 1 if self.prefix else 0
        try:
            while True:
                msg = await queue.get()
                yield msg.subject[cut:], msg.data, dict(msg.headers or {})
        finally:
            for s in subs:
                with contextlib.suppress(Exception):
                    await s.unsubscribe()

    async def consumer_lag(self) -> list[ConsumerLag]:
        """Pending and unacknowledged counts of every durable consumer on the stream."""
        out = []
        for info in await self.js.consumers_info(self.stream):
            cfg = info.config
            out.append(ConsumerLag(
                durable=cfg.durable_name or info.name, subject=cfg.filter_subject or "",
                pending=info.num_pending or 0, ack_pending=info.num_ack_pending or 0,
                redelivered=info.num_redelivered or 0,
            ))
        return out

    async def stream_messages(self) -> int:
        info = await self.js.stream_info(self.stream)
        return int(info.state.messages)

    async def stop_consuming(self, grace_s: float | None = None) -> None:
        """Stop every consumer, letting the message in hand finish (for at
        most ``grace_s`` seconds in all); publishing still works."""
        subs, self._subscriptions = self._subscriptions, []
        deadline = None if grace_s is None else time.monotonic() + grace_s
        for sub in subs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            await sub.stop(left)

    async def close(self) -> None:
        """Stop consumers (letting in-flight handlers finish), then drain."""
        await self.stop_consuming()
        with contextlib.suppress(Exception):
            await self.nc.drain()

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _log_error(exc: Exception) -> None:
    log.warning("nats: %s", exc)


async def _log_disconnect() -> None:
    log.info("nats: disconnected")


async def _log_reconnect() -> None:
    log.info("nats: reconnected")


def span_in_handler() -> trace.Span:
    """The current consume span (for handlers adding decision attributes)."""
    return trace.get_current_span()
