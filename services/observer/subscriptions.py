"""Bus side of the observer: it only publishes (profiles and feedback), never consumes."""

from __future__ import annotations

from typing import Protocol

from google.protobuf.message import Message

from schedcp import subjects
from schedcp.v1 import profile_pb2


class BusLike(Protocol):
    async def publish(self, subject: str, message: Message, *, correlation_id: str | None = None,
                      message_id: str | None = None) -> str: ...


class BusPublisher:
    """Publishes profiles on schedcp.v1.profiles.<node> and feedback on schedcp.v1.feedback.<node>."""

    def __init__(self, *, bus: BusLike, node: str) -> None:
        self.bus = bus
        self.node = node

    async def profile(self, profile: profile_pb2.WorkloadProfile, correlation_id: str | None = None) -> None:
        await self.bus.publish(subjects.profile_subject(self.node), profile, correlation_id=correlation_id)

    async def feedback(self, report: profile_pb2.FeedbackReport, correlation_id: str | None = None) -> None:
        await self.bus.publish(subjects.feedback_subject(self.node), report, correlation_id=correlation_id)
