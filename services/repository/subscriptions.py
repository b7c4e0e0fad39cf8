"""Bus subscriptions of the repository: verdicts and outcomes feed history.

Decoding, dedupe by message id, retries and dead-lettering are the bus's job
(schedcp.bus); durable idempotency is the store's (event ids recorded in the
same transaction as the effect). The handlers only hop to a worker thread,
because the store does blocking I/O and embedding.
"""

from __future__ import annotations

import asyncio
import logging

from schedcp import subjects
from schedcp.bus import Bus
from schedcp.v1 import deployment_pb2, verdict_pb2

from .events import RepositoryEvents

log = logging.getLogger(__name__)


async def subscribe(bus: Bus, *, events: RepositoryEvents) -> None:
    """Start the durable consumers of verdicts and outcomes."""

    async def on_verdict(verdict: verdict_pb2.Verdict) -> None:
        done = await asyncio.to_thread(events.apply_verdict, verdict)
        log.info("verdict %s: %s", verdict.verdict_id, done)

    async def on_outcome(outcome: deployment_pb2.DeploymentOutcome) -> None:
        done = await asyncio.to_thread(events.apply_outcome, outcome)
        log.info("outcome %s: %s", outcome.outcome_id, done)

    await bus.subscribe(subjects.VERDICTS, message_type=verdict_pb2.Verdict, durable="repository-verdicts",
                        handler=on_verdict)
    await bus.subscribe(subjects.OUTCOMES, message_type=deployment_pb2.DeploymentOutcome,
                        durable="repository-outcomes", handler=on_outcome)
