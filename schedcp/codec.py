"""Encoding and validation of bus messages (no transport here).

A bus message is a schedcp.v1 protobuf whose first field is ``Meta``. On the
wire it travels as binary protobuf with headers naming its type and schema
version; ``decode`` refuses anything that does not match what a consumer
expects, with a reason fit for the dead-letter subject.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Mapping
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from schedcp import SCHEMA_VERSION
from schedcp.errors import ContractError

HEADER_TYPE = "Schedcp-Type"
HEADER_SCHEMA = "Schedcp-Schema"
HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_CORRELATION = "Schedcp-Correlation-Id"
HEADER_DLQ_REASON = "Schedcp-Dlq-Reason"
HEADER_DLQ_SUBJECT = "Schedcp-Dlq-Subject"
HEADER_DLQ_CONSUMER = "Schedcp-Dlq-Consumer"

#: Largest message accepted from the bus; NATS' own default limit is 1 MiB.
MAX_MESSAGE_BYTES = 1024 * 1024

M = TypeVar("M", bound=Message)

#: The correlation id of the message being handled, so anything a handler
#: publishes belongs to the same optimisation loop without passing it around.
current_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "schedcp_correlation_id", default=None
)


def new_id() -> str:
    return uuid.uuid4().hex


def stamp(message: Message, *, producer: str, correlation_id: str | None = None,
          message_id: str | None = None, trace_context: Mapping[str, str] | None = None) -> Message:
    """Fill ``message.meta`` (id, correlation id, version, time, producer, trace)."""
    if "meta" not in message.DESCRIPTOR.fields_by_name:
        raise ContractError(f"{message.DESCRIPTOR.full_name} has no meta field and cannot cross the bus")
    meta = message.meta  # type: ignore[attr-defined]
    meta.message_id = message_id or meta.message_id or new_id()
    meta.correlation_id = (correlation_id or meta.correlation_id or current_correlation_id.get()
                           or new_id())
    meta.schema_version = SCHEMA_VERSION
    if not meta.HasField("created_at"):
        meta.created_at.GetCurrentTime()
    meta.producer = producer
    if trace_context:
        meta.trace_context.clear()
        meta.trace_context.update(trace_context)
    return message


def encode(message: Message) -> tuple[bytes, dict[str, str]]:
    """Bytes and headers for a stamped message."""
    meta = message.meta  # type: ignore[attr-defined]
    if not meta.message_id:
        raise ContractError("message is not stamped: meta.message_id is empty")
    data = message.SerializeToString()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ContractError(
            f"{message.DESCRIPTOR.full_name} is {len(data)} bytes, over the {MAX_MESSAGE_BYTES}-byte bus limit",
            hint="send large artifacts by reference",
        )
    headers = {
        HEADER_TYPE: message.DESCRIPTOR.full_name,
        HEADER_SCHEMA: SCHEMA_VERSION,
        HEADER_MSG_ID: meta.message_id,
        HEADER_CORRELATION: meta.correlation_id,
    }
    headers.update(dict(meta.trace_context))
    return data, headers


def decode(data: bytes, headers: Mapping[str, str] | None, message_type: type[M]) -> M:
    """Parse and validate a bus message, or raise ContractError with the reason."""
    headers = headers or {}
    expected = message_type.DESCRIPTOR.full_name
    declared_schema = headers.get(HEADER_SCHEMA)
    if declared_schema is not None and declared_schema != SCHEMA_VERSION:
        raise ContractError(f"schema version {declared_schema!r} is not {SCHEMA_VERSION!r}")
    declared_type = headers.get(HEADER_TYPE)
    if declared_type is not None and declared_type != expected:
        raise ContractError(f"message type {declared_type!r} where {expected!r} was expected")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ContractError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    message = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise ContractError(f"payload is not a valid {expected}: {exc}") from exc
    meta = getattr(message, "meta", None)
    if meta is None:
        raise ContractError(f"{expected} has no meta field")
    if meta.schema_version != SCHEMA_VERSION:
        raise ContractError(
            f"meta.schema_version is {meta.schema_version!r}, expected {SCHEMA_VERSION!r}"
        )
    if not meta.message_id:
        raise ContractError("meta.message_id is empty; every bus message needs a unique id")
    if not meta.correlation_id:
        raise ContractError("meta.correlation_id is empty")
    return message
