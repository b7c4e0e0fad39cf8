"""The runnable examples in examples/ work against the real services and bus."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from schedcp import subjects
from schedcp.bus import Bus
from schedcp.rpc import check_health
from schedcp.v1 import plan_pb2

REPO = Path(__file__).resolve().parents[3]


async def _start(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not await check_health(env[f"SCHEDCP_{name.upper()}_ADDR"], deadline_s=1):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{name} not healthy"
        await asyncio.sleep(0.2)
    return proc


async def test_grpc_client_example(service_env: dict[str, str], tmp_path: Path) -> None:
    procs = [await _start(name, service_env, tmp_path / f"{name}.log") for name in ("repository", "observer")]
    try:
        run = await asyncio.to_thread(
            subprocess.run, [sys.executable, "examples/grpc_client.py"], cwd=REPO, env=service_env,
            capture_output=True, text=True, timeout=180)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "SERVING" in out
    assert "serves schedcp.v1.RepositoryService" in out and "serves grpc.health.v1.Health" in out
    assert "rpc Search(schedcp.v1.SearchRequest) returns (schedcp.v1.SearchResponse)" in out
    assert "fifo@" in out
    assert "Get(no-such-scheduler) -> NOT_FOUND" in out
    assert "node profile" in out and "cpu_utilization=" in out


async def test_subscribe_example_prints_published_events(nats_server, subject_prefix: str) -> None:
    bus = await Bus.connect(url=nats_server.url, service="test", prefix=subject_prefix)
    try:
        for i in range(2):
            plan = plan_pb2.Plan(plan_id=f"plan-{i}", path=plan_pb2.CONFIGURE_EXISTING)
            plan.policy.name = "fifo"
            await bus.publish(subjects.PLANS, plan, correlation_id=f"loop-{i}")
    finally:
        await bus.close()
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "examples/subscribe.py", "plans", "--from-start", "--count", "2",
                         "--json", "--url", nats_server.url, "--prefix", subject_prefix],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["correlation_id"] for e in events] == ["loop-0", "loop-1"]
    assert {e["type"] for e in events} == {"schedcp.v1.Plan"}
    assert events[0]["message"]["policy"]["name"] == "fifo"
    assert events[0]["subject"] == f"{subject_prefix}.{subjects.PLANS}"

    # Human format, and a bad kind is refused with the valid ones listed.
    bad = await asyncio.to_thread(subprocess.run, [sys.executable, "examples/subscribe.py", "gossip"], cwd=REPO,
                                  capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "plans" in bad.stderr
