"""The foundation end to end: observer and planner as separate processes on
the real nats-server; a WorkloadProfile published by the observer becomes a
Plan, and the whole loop is one trace across both processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from schedcp import subjects
from schedcp.bus import Bus
from schedcp.rpc import check_health, grpc_channel
from schedcp.v1 import plan_pb2, services_pb2, services_pb2_grpc


async def _wait_healthy(address: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"service exited early with {proc.returncode}"
        if await check_health(address, deadline_s=1):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{address} not healthy in {timeout}s")


async def test_profile_on_the_bus_becomes_a_plan_in_one_trace(service_env: dict[str, str], tmp_path: Path) -> None:
    procs = {svc: subprocess.Popen([sys.executable, "-m", f"services.{svc}"], env=service_env,
                                   stdout=open(tmp_path / f"{svc}.log", "wb"), stderr=subprocess.STDOUT)
             for svc in ("observer", "planner")}
    workload = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"])
    bus = await Bus.connect(url=service_env["SCHEDCP_NATS_URL"], service="test",
                            prefix=service_env["SCHEDCP_SUBJECT_PREFIX"])
    try:
        for svc, proc in procs.items():
            await _wait_healthy(service_env[f"SCHEDCP_{svc.upper()}_ADDR"], proc)
        plans: list[plan_pb2.Plan] = []

        async def on_plan(plan: plan_pb2.Plan) -> None:
            plans.append(plan)

        await bus.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="test-plans", handler=on_plan)

        async with grpc_channel(service_env["SCHEDCP_OBSERVER_ADDR"]) as channel:
            observer = services_pb2_grpc.ObserverServiceStub(channel)
            request = services_pb2.SummaryRequest(window_seconds=1.0, publish=True, correlation_id="loop-1")
            request.selector.pid = workload.pid
            profile = await observer.Summary(request, timeout=60)
        assert profile.workload.pids and profile.workload.pids[0] == workload.pid

        deadline = time.monotonic() + 90
        while not plans and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert plans, "no Plan was published for the profile: " + (tmp_path / "planner.log").read_text()[-3000:]
        plan = plans[0]
        assert plan.meta.correlation_id == "loop-1"
        assert plan.profile.profile_id == profile.profile_id
        assert plan.path != plan_pb2.DECISION_PATH_UNSPECIFIED and plan.policy.name
    finally:
        await bus.close()
        workload.kill()
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(30)

    spans = [json.loads(line) for line in Path(service_env["SCHEDCP_TRACE_FILE"]).read_text().splitlines()]
    by_service: dict[str, set[str]] = {}
    for span in spans:
        by_service.setdefault(span["service"], set()).add(span["trace_id"])
    shared = by_service["schedcp-observer"] & by_service["schedcp-planner"]
    assert shared, f"no trace spans both processes: {sorted(by_service)}"
    loop_spans = [s for s in spans if s["trace_id"] in shared]
    names = {(s["service"], s["name"]) for s in loop_spans}
    assert ("schedcp-observer", "publish WorkloadProfile") in names
    assert ("schedcp-planner", "consume WorkloadProfile") in names
    assert ("schedcp-planner", "publish Plan") in names
    # Parent links hold the trace together: the planner's consume span is a
    # child of the observer's publish span.
    ids = {s["span_id"]: s for s in loop_spans}
    consume = next(s for s in loop_spans if s["name"] == "consume WorkloadProfile")
    assert ids[consume["parent_id"]]["name"] == "publish WorkloadProfile"
