"""The bus against the real nats-server: delivery, dedupe, DLQ, queue groups, tracing."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schedcp import codec, subjects, tracing
from schedcp.bus import Bus
from schedcp.natsserver import NatsServer
from schedcp.v1 import plan_pb2, profile_pb2


async def _eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _dlq(bus: Bus, count: int) -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []

    async def collect() -> None:
        async for subject, _data, headers in bus.watch([subjects.DLQ], deliver_all=True):
            out.append((subject, headers))
            if len(out) >= count:
                return

    await asyncio.wait_for(collect(), 10)
    return out


async def test_publish_subscribe_roundtrip(bus: Bus) -> None:
    got: list[profile_pb2.WorkloadProfile] = []

    async def handler(msg: profile_pb2.WorkloadProfile) -> None:
        got.append(msg)

    await bus.subscribe(f"{subjects.PROFILES}.>", message_type=profile_pb2.WorkloadProfile,
                        durable="planner-profiles", handler=handler)
    sent = profile_pb2.WorkloadProfile(node="n1", description="make -j2")
    mid = await bus.publish(subjects.profile_subject("n1"), sent)
    await _eventually(lambda: len(got) == 1)
    assert got[0].meta.message_id == mid
    assert got[0].description == "make -j2"


async def test_duplicate_message_ids_are_handled_once(bus: Bus) -> None:
    got: list[str] = []

    async def handler(msg: plan_pb2.Plan) -> None:
        got.append(msg.plan_id)

    await bus.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="v", handler=handler)
    for _ in range(3):
        await bus.publish(subjects.PLANS, plan_pb2.Plan(plan_id="p1"), message_id="same-id")
    await bus.publish(subjects.PLANS, plan_pb2.Plan(plan_id="p2"))
    await _eventually(lambda: "p2" in got)
    await asyncio.sleep(0.3)
    assert sorted(got) == ["p1", "p2"]


async def test_malformed_and_wrong_version_messages_go_to_the_dlq(bus: Bus) -> None:
    got: list[plan_pb2.Plan] = []

    async def handler(msg: plan_pb2.Plan) -> None:
        got.append(msg)

    sub = await bus.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="verifier-plans", handler=handler)
    await bus.publish_raw(subjects.PLANS, b"\xff\xffnot protobuf")
    wrong = codec.stamp(plan_pb2.Plan(plan_id="old"), producer="x")
    wrong.meta.schema_version = "schedcp.v0"
    await bus.publish_raw(subjects.PLANS, wrong.SerializeToString())
    await bus.publish(subjects.PLANS, plan_pb2.Plan(plan_id="good"))
    await _eventually(lambda: len(got) == 1)
    dead = await _dlq(bus, 2)
    reasons = sorted(h[codec.HEADER_DLQ_REASON] for _, h in dead)
    assert any("not a valid" in r for r in reasons)
    assert any("schema_version" in r for r in reasons)
    assert all(h[codec.HEADER_DLQ_CONSUMER] == "verifier-plans" for _, h in dead)
    assert got[0].plan_id == "good"
    assert sub.dead_lettered == 2


async def test_a_failing_handler_is_retried_then_dead_lettered(bus: Bus) -> None:
    attempts: list[int] = []

    async def handler(msg: plan_pb2.Plan) -> None:
        attempts.append(1)
        raise RuntimeError("boom")

    await bus.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="flaky", handler=handler, max_deliver=2)
    await bus.publish(subjects.PLANS, plan_pb2.Plan(plan_id="p"))
    dead = await _dlq(bus, 1)
    assert len(attempts) == 2
    assert "handler failed after 2 deliveries: boom" in dead[0][1][codec.HEADER_DLQ_REASON]


async def test_replicas_sharing_a_durable_split_the_work(nats_server: NatsServer, subject_prefix: str) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}
    buses = [await Bus.connect(url=nats_server.url, service=f"planner-{n}", prefix=subject_prefix) for n in "ab"]
    try:
        for name, b in zip("ab", buses, strict=True):
            async def handler(msg: plan_pb2.Plan, name: str = name) -> None:
                seen[name].append(msg.plan_id)
                await asyncio.sleep(0.02)

            await b.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="planner", handler=handler)
        for i in range(40):
            await buses[0].publish(subjects.PLANS, plan_pb2.Plan(plan_id=str(i)))
        await _eventually(lambda: len(seen["a"]) + len(seen["b"]) >= 40)
        await asyncio.sleep(0.3)
        everything = seen["a"] + seen["b"]
        assert sorted(everything, key=int) == [str(i) for i in range(40)]  # each exactly once
        assert seen["a"] and seen["b"]  # both replicas took work
    finally:
        for b in buses:
            await b.close()


async def test_a_bounded_drain_hands_a_stuck_message_to_another_replica(
        nats_server: NatsServer, subject_prefix: str) -> None:
    """A replica stopping while its handler is stuck (a long verification)
    gives the message back at the end of its grace period; the other replica
    handles it right away, long before the 600 s ack wait would expire."""
    started, finished = asyncio.Event(), []
    stuck = await Bus.connect(url=nats_server.url, service="verifier-a", prefix=subject_prefix)
    other = await Bus.connect(url=nats_server.url, service="verifier-b", prefix=subject_prefix)
    try:
        async def hang(msg: plan_pb2.Plan) -> None:
            started.set()
            await asyncio.sleep(3600)

        await stuck.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="verifier",
                              handler=hang, ack_wait=600.0)
        await other.publish(subjects.PLANS, plan_pb2.Plan(plan_id="long"))
        await asyncio.wait_for(started.wait(), 10)

        t0 = asyncio.get_running_loop().time()
        await stuck.stop_consuming(grace_s=0.5)
        assert asyncio.get_running_loop().time() - t0 < 5

        async def finish(msg: plan_pb2.Plan) -> None:
            finished.append(msg.plan_id)

        await other.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="verifier",
                              handler=finish, ack_wait=600.0)
        await _eventually(lambda: finished == ["long"], timeout=15)
    finally:
        for b in (stuck, other):
            await b.close()


async def test_redoable_work_is_cancelled_at_once_on_stop_and_redelivered(
        nats_server: NatsServer, subject_prefix: str) -> None:
    """A cancel_on_stop consumer (the planner's LLM calls) does not hold a
    stop for the drain time: its handler is cancelled at once and the
    message goes back to the stream for whoever consumes next."""
    started, finished = asyncio.Event(), []
    stopping = await Bus.connect(url=nats_server.url, service="planner-a", prefix=subject_prefix)
    other = await Bus.connect(url=nats_server.url, service="planner-b", prefix=subject_prefix)
    try:
        async def hang(msg: plan_pb2.Plan) -> None:
            started.set()
            await asyncio.sleep(3600)

        await stopping.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="planner",
                                 handler=hang, ack_wait=600.0, cancel_on_stop=True)
        await other.publish(subjects.PLANS, plan_pb2.Plan(plan_id="redo"))
        await asyncio.wait_for(started.wait(), 10)

        t0 = asyncio.get_running_loop().time()
        await stopping.stop_consuming(grace_s=60.0)
        assert asyncio.get_running_loop().time() - t0 < 5

        async def finish(msg: plan_pb2.Plan) -> None:
            finished.append(msg.plan_id)

        await other.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="planner",
                              handler=finish, ack_wait=600.0)
        await _eventually(lambda: finished == ["redo"], timeout=15)
    finally:
        for b in (stopping, other):
            await b.close()


async def test_trace_continues_from_publisher_to_consumer(bus: Bus) -> None:
    exporter = InMemorySpanExporter()
    tracing.setup_tracing("schedcp-test", extra_exporters=[exporter])
    done = asyncio.Event()

    async def handler(msg: profile_pb2.WorkloadProfile) -> None:
        with tracing.tracer().start_as_current_span("decide"):
            done.set()

    await bus.subscribe(f"{subjects.PROFILES}.>", message_type=profile_pb2.WorkloadProfile,
                        durable="traced", handler=handler)
    with tracing.tracer().start_as_current_span("loop") as root:
        await bus.publish(subjects.profile_subject("n"), profile_pb2.WorkloadProfile(node="n"))
    await asyncio.wait_for(done.wait(), 10)
    await asyncio.sleep(0.1)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    trace_id = root.get_span_context().trace_id
    assert spans["publish WorkloadProfile"].context.trace_id == trace_id
    consume = spans["consume WorkloadProfile"]
    assert consume.context.trace_id == trace_id
    assert consume.parent.span_id == spans["publish WorkloadProfile"].context.span_id
    assert spans["decide"].parent.span_id == consume.context.span_id


@pytest.mark.parametrize("url", ["nats://127.0.0.1:1"])
async def test_unreachable_nats_is_a_clear_error(url: str) -> None:
    from schedcp.errors import Unavailable

    with pytest.raises(Unavailable, match="cannot connect to NATS"):
        await Bus.connect(url=url, service="x", connect_timeout=1)


def test_a_killed_caller_leaves_no_nats_server_behind(tmp_path) -> None:
    """A test run or benchmark killed with SIGKILL must not leak its server."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from schedcp.natsserver import pid_alive

    script = ("import sys, pathlib; from schedcp.natsserver import start_nats_server; "
              f"s = start_nats_server(store_dir=pathlib.Path({str(tmp_path)!r})); "
              "print(s.process.pid, flush=True); sys.stdin.read()")
    caller = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    server_pid = 0
    try:
        server_pid = int(caller.stdout.readline())
        assert pid_alive(server_pid)
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait(timeout=10)
        deadline = time.monotonic() + 10
        while pid_alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(server_pid), "nats-server outlived its SIGKILLed caller"
    finally:
        caller.kill()
        if server_pid and pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
