"""OpenTelemetry set-up and context propagation for schedcp.

One optimisation loop is one trace: the context travels in gRPC metadata and
NATS headers (W3C ``traceparent``/``tracestate``) and is mirrored into each bus
message's ``Meta.trace_context`` so it survives anything that keeps only the
payload. Telemetry never breaks the host program: exporter failures are logged
by the SDK, never raised.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

log = logging.getLogger(__name__)

TRACER_NAME = "schedcp"
_configured_lock = threading.Lock()
_configured: TracerProvider | None = None


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans as JSON lines to a file.

    Several processes may share one file (O_APPEND writes of one line each),
    which lets a test or ``schedcp trace`` see a whole loop across services.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            if ctx is None:
                continue
            parent = span.parent
            lines.append(json.dumps({
                "name": span.name,
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
                "parent_id": format(parent.span_id, "016x") if parent else None,
                "service": span.resource.attributes.get("service.name"),
                "kind": span.kind.name,
                "start_ns": span.start_time,
                "end_ns": span.end_time,
                "status": span.status.status_code.name,
                "attributes": {k: _jsonable(v) for k, v in (span.attributes or {}).items()},
            }, sort_keys=True))
        if not lines:
            return SpanExportResult.SUCCESS
        try:
            with self._lock:
                fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, ("\n".join(lines) + "\n").encode())
                finally:
                    os.close(fd)
        except OSError as exc:  # telemetry never breaks the host program
            log.warning("could not write spans to %s: %s", self._path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return list(value)


def trace_file_for(template: str, service_name: str) -> str:
    """``SCHEDCP_TRACE_FILE`` with ``{service}`` replaced by the service name.

    One file per process: services sharing a traces volume run as different
    users, and a file a root verifier created is not writable by the
    unprivileged planner.
    """
    return template.replace("{service}", service_name.removeprefix("schedcp-"))


def setup_tracing(service_name: str, *, extra_exporters: Sequence[SpanExporter] = ()) -> TracerProvider:
    """Install the global tracer provider for this process (idempotent).

    Exports over OTLP/gRPC when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and to a
    JSON-lines file when ``SCHEDCP_TRACE_FILE`` is set.
    """
    global _configured
    with _configured_lock:
        if _configured is not None:
            for exporter in extra_exporters:
                _configured.add_span_processor(SimpleSpanProcessor(exporter))
            return _configured
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint:
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            except Exception as exc:  # noqa: BLE001 - a broken exporter must not stop the service
                log.warning("OTLP export to %s disabled: %s", endpoint, exc)
        trace_file = os.environ.get("SCHEDCP_TRACE_FILE")
        if trace_file:
            trace_file = trace_file_for(trace_file, service_name)
            provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
        for exporter in extra_exporters:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _configured = provider
        return provider


def shutdown_tracing() -> None:
    """Flush and stop exporters (called on service shutdown)."""
    if _configured is not None:
        try:
            _configured.shutdown()
        except Exception as exc:  # noqa: BLE001
            log.warning("tracing shutdown failed: %s", exc)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def inject(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The current context as W3C headers."""
    out: dict[str, str] = dict(carrier or {})
    propagate.inject(out)
    return out


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """A context from W3C headers (empty context when there are none)."""
    return propagate.extract(dict(carrier or {}))


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
