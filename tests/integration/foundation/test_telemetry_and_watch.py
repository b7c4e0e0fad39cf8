"""OTLP export from a real service process, and `schedcp watch` on the real bus."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from schedcp import subjects
from schedcp.bus import Bus
from schedcp.rpc import check_health
from schedcp.v1 import plan_pb2


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A minimal OTLP/gRPC trace receiver: records the service names it is sent."""

    def __init__(self) -> None:
        self.services: list[str] = []
        self.span_names: list[str] = []

    async def Export(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802 - gRPC name
        for rs in request.resource_spans:
            name = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
            self.services.append(name)
            for ss in rs.scope_spans:
                self.span_names.extend(s.name for s in ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_a_service_exports_its_spans_over_otlp(service_env: dict[str, str]) -> None:
    collector = _Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    env = dict(service_env, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
               OTEL_EXPORTER_OTLP_INSECURE="true", OTEL_BSP_SCHEDULE_DELAY="200")
    proc = subprocess.Popen([sys.executable, "-m", "services.learner"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        address = env["SCHEDCP_LEARNER_ADDR"]
        deadline = time.monotonic() + 60
        while not await check_health(address, deadline_s=1):
            assert proc.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.2)
        # A traced RPC: the server interceptor makes a span for it.
        from schedcp.rpc import grpc_channel
        from schedcp.v1 import services_pb2, services_pb2_grpc

        async with grpc_channel(address) as channel:
            await services_pb2_grpc.LearnerServiceStub(channel).History(services_pb2.HistoryRequest(limit=1),
                                                                       timeout=30)
        deadline = time.monotonic() + 30
        while "schedcp-learner" not in collector.services and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)
        await server.stop(0)
    assert "schedcp-learner" in collector.services
    assert any(name.endswith("/History") for name in collector.span_names)


async def test_watch_prints_bus_messages_as_json(nats_server, subject_prefix: str, service_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    bus = await Bus.connect(url=nats_server.url, service="planner", prefix=subject_prefix)
    try:
        plan = plan_pb2.Plan(plan_id="p-watch", path=plan_pb2.CONFIGURE_EXISTING)
        plan.policy.name = "wvtime"
        await bus.publish(subjects.PLANS, plan, correlation_id="c-watch")
        await bus.publish_raw(subjects.PLANS, b"\xffjunk")
    finally:
        await bus.close()
    env = dict(service_env, SCHEDCP_DATA_DIR=service_env["SCHEDCP_DATA_DIR"] + "-watch")
    out = subprocess.run([sys.executable, "-m", "schedcp.cli.main", "watch", "--json", "--all", "--limit", "1",
                          "--only", "plans"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    entry = json.loads(out.stdout.splitlines()[0])
    assert entry["type"] == "schedcp.v1.Plan"
    assert entry["message"]["plan_id"] == "p-watch"
    assert entry["message"]["meta"]["correlation_id"] == "c-watch"
    human = subprocess.run([sys.executable, "-m", "schedcp.cli.main", "watch", "--all", "--limit", "2",
                            "--only", "plans"], env=env, capture_output=True, text=True, timeout=60)
    lines = human.stdout.splitlines()
    assert "plan     CONFIGURE_EXISTING wvtime@latest" in lines[0]
    assert "undecodable" in lines[1]

