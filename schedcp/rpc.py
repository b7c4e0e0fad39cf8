"""gRPC bootstrap shared by every service, and client helpers.

Servers get the standard health and reflection services and a tracing
interceptor that continues the caller's trace from gRPC metadata; channels get
the matching client interceptor. ``abort_for`` is the one place a
``SchedcpError`` becomes a gRPC status code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.trace import SpanKind, Status, StatusCode

from schedcp import tracing
from schedcp.errors import (
    AlreadyExists,
    ConfigError,
    ContractError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SchedcpError,
    Unavailable,
)
from schedcp.v1 import services_pb2

log = logging.getLogger(__name__)

_STATUS = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    ContractError: grpc.StatusCode.INVALID_ARGUMENT,
    ConfigError: grpc.StatusCode.FAILED_PRECONDITION,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(exc: BaseException) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return grpc.StatusCode.INTERNAL


async def abort_for(context: grpc.aio.ServicerContext, exc: SchedcpError) -> None:
    """End the RPC with the status code and message that fit ``exc``."""
    await context.abort(status_for(exc), str(exc))


def _carrier(metadata: Iterable[tuple[str, Any]] | None) -> dict[str, str]:
    return {k: v for k, v in (metadata or ()) if isinstance(v, str)}


class _ServerTracing(grpc.aio.ServerInterceptor):
    """Starts a SERVER span for every call, continuing the caller's trace."""

    async def intercept_service(self, continuation: Callable[..., Any],
                                handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        parent = tracing.extract(_carrier(handler_call_details.invocation_metadata))
        attrs = {"rpc.system": "grpc", "rpc.method": method.rsplit("/", 1)[-1],
                 "rpc.service": method.strip("/").split("/")[0]}

        def span():
            return tracing.tracer().start_as_current_span(method, context=parent, kind=SpanKind.SERVER,
                                                          attributes=attrs)

        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with span() as s:
                    try:
                        return await inner_uu(request, context)
                    except Exception as exc:
                        s.set_status(Status(StatusCode.ERROR, str(exc)))
                        raise

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with span() as s:
                    try:
                        async for item in inner_us(request, context):
                            yield item
                    except Exception as exc:
                        s.set_status(Status(StatusCode.ERROR, str(exc)))
                        raise

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler


class _ClientTracing(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Starts a CLIENT span and puts the trace context into the call metadata."""

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = list(details.metadata or ())
        metadata.extend(tracing.inject().items())
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata,
                                          details.credentials, details.wait_for_ready)

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        method = _method_name(client_call_details.method)
        with tracing.tracer().start_as_current_span(method, kind=SpanKind.CLIENT,
                                                    attributes={"rpc.system": "grpc"}):
            call = await continuation(self._details(client_call_details), request)
            return await call

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        # The span covers starting the stream; the server span covers the work.
        method = _method_name(client_call_details.method)
        with tracing.tracer().start_as_current_span(method, kind=SpanKind.CLIENT,
                                                    attributes={"rpc.system": "grpc"}):
            return await continuation(self._details(client_call_details), request)


def _method_name(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


def grpc_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel with tracing, for loopback and trusted networks."""
    return grpc.aio.insecure_channel(
        address, interceptors=[_ClientTracing()],
        options=[("grpc.max_receive_message_length", 16 * 1024 * 1024),
                 ("grpc.max_send_message_length", 16 * 1024 * 1024)])


Register = tuple[Callable[[Any, grpc.aio.Server], None], Any]


async def serve_grpc(*, service_name: str, address: str, register: Sequence[Register],
                     service_full_names: Sequence[str] = ()) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """Start a gRPC server with health, reflection and tracing on ``address``.

    Returns the server and its health servicer (set to SERVING once started).
    """
    server = grpc.aio.server(
        interceptors=[_ServerTracing()],
        options=[("grpc.max_receive_message_length", 16 * 1024 * 1024),
                 ("grpc.max_send_message_length", 16 * 1024 * 1024),
                 ("grpc.so_reuseport", 0)])
    for add, servicer in register:
        add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_full_names) or [
        s.full_name for s in services_pb2.DESCRIPTOR.services_by_name.values()
        if s.name.lower().startswith(service_name.lower())
    ]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise Unavailable(f"{service_name}: cannot listen on {address}: {exc}",
                          hint=f"the port is probably in use; set SCHEDCP_{service_name.upper()}_ADDR") from exc
    if port == 0:
        raise Unavailable(f"{service_name}: cannot listen on {address} (port in use?)",
                          hint=f"set SCHEDCP_{service_name.upper()}_ADDR to a free address")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("%s gRPC listening on %s", service_name, address)
    return server, health_servicer


async def check_health(address: str, *, deadline_s: float = 2.0, service: str = "") -> bool:
    """True when the server at ``address`` reports SERVING."""
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=deadline_s)
            return resp.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError:
        return False
