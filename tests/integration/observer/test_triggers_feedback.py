"""Triggers on real process groups (new workload, phase change) and tier-3 feedback on real contention."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from schedcp.errors import InvalidArgument
from schedcp.v1 import common_pb2, profile_pb2
from services.observer.agent import ObservationAgent
from services.observer.feedback import FeedbackChannel
from services.observer.tier1 import Target
from services.observer.triggers import TriggerConfig, TriggerEngine, TriggerLoop, WorkloadScanner

# Spins for 5 s, then turns into a sleep/wake loop: one workload, two phases.
PHASED = ("import time\nend=time.monotonic()+5\nwhile time.monotonic()<end: pass\n"
          "while True:\n    time.sleep(0.002)\n")


def test_new_workload_then_phase_change(spawn) -> None:
    agent = ObservationAgent(node="t")
    published: list[profile_pb2.WorkloadProfile] = []

    async def profile(target: Target, trigger: str) -> profile_pb2.WorkloadProfile:
        return await agent.observe(target, window=0.5, deep=False, trigger=trigger)

    async def publish(p: profile_pb2.WorkloadProfile) -> None:
        published.append(p)

    pid = 0

    async def scenario() -> None:
        nonlocal pid
        class OnlyOurs(WorkloadScanner):
            """The real scan, narrowed to this test's process group (other helpers share the machine)."""

            def scan(self):  # type: ignore[no-untyped-def]
                return {k: v for k, v in super().scan().items() if k.startswith(f"pgid:{pid}:")}

        loop = TriggerLoop(scanner=OnlyOurs(include_cgroups=False), profile=profile, publish=publish,
                           engine=TriggerEngine(TriggerConfig(cpu_threshold=0.05, confirm_scans=2,
                                                              confirm_changes=2)),
                           scan_seconds=0.2, recheck_seconds=0.5)
        p = spawn([sys.executable, "-c", PHASED])
        pid = p.pid
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            await loop.step()
            mine = [(k, t) for k, t in loop.published if k.startswith(f"pgid:{p.pid}:")]
            if ("phase-change" in {t for _, t in mine}):
                break
            await asyncio.sleep(0.2)

    asyncio.run(scenario())
    # Other processes on the machine may be published too; look at ours.
    mine = [p for p in published if p.workload.pids and p.workload.pids[0] == pid]
    triggers = [p.trigger for p in mine]
    assert triggers and triggers[0] == "new-workload", triggers
    assert "phase-change" in triggers, triggers
    first = next(p for p in mine if p.trigger == "new-workload")
    change = next(p for p in mine if p.trigger == "phase-change")
    assert first.workload_class == common_pb2.CPU_THROUGHPUT
    assert change.features.cpu_utilization < first.features.cpu_utilization / 2


def test_feedback_sees_contention(spawn) -> None:
    spin = [sys.executable, "-c", "import time\nend=time.monotonic()+60\nwhile time.monotonic()<end: pass\n"]
    w = spawn(["taskset", "-c", "0", *spin])
    ch = FeedbackChannel(node="t")
    base = ch.record_baseline("roll-1", Target(pid=w.pid), 1.0)
    assert set(base) >= {"runqueue_wait_fraction", "cpu_utilization"}
    for _ in range(6):
        spawn(["taskset", "-c", "0", *spin])
    time.sleep(0.3)
    rep = ch.report(Target(pid=w.pid), window=1.0, rollout_id="roll-1",
                    app_metrics={"throughput_ops_per_s": 10.0})
    by = {d.metric: d for d in rep.deltas}
    # Six more hogs on its CPU: the workload waits far more and gets less CPU: both ratios < 1.
    assert by["runqueue_wait_fraction"].ratio < 1.0 and by["cpu_utilization"].ratio < 1.0
    assert not by["runqueue_wait_fraction"].higher_is_better
    assert "throughput_ops_per_s" not in by  # no baseline for it
    assert rep.node_healthy and rep.rollout_id == "roll-1" and rep.window_seconds >= 1.0
    with pytest.raises(InvalidArgument):
        ch.report(Target(pid=w.pid), window=0.2, rollout_id="never-recorded")


def test_new_cgroup_workload(spawn, cgroup) -> None:
    """A container-like cgroup that starts using CPU is noticed and profiled by its cgroup."""
    agent = ObservationAgent(node="t")
    published: list[profile_pb2.WorkloadProfile] = []

    async def profile(target: Target, trigger: str) -> profile_pb2.WorkloadProfile:
        return await agent.observe(target, window=0.5, deep=False, trigger=trigger)

    async def publish(p: profile_pb2.WorkloadProfile) -> None:
        published.append(p)

    class OnlyThisCgroup(WorkloadScanner):
        def scan(self):  # type: ignore[no-untyped-def]
            return {k: v for k, v in super().scan().items() if k == f"cgroup:{cgroup}"}

    async def scenario() -> None:
        loop = TriggerLoop(scanner=OnlyThisCgroup(), profile=profile, publish=publish,
                           engine=TriggerEngine(TriggerConfig(cpu_threshold=0.05)), scan_seconds=0.2)
        await loop.step()  # the cgroup exists but is idle: nothing yet
        assert not published
        p = spawn([sys.executable, "-c", "import time\nend=time.monotonic()+60\nwhile time.monotonic()<end: pass\n"])
        (cgroup / "cgroup.procs").write_text(str(p.pid))
        deadline = time.monotonic() + 15
        while not published and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            await loop.step()

    asyncio.run(scenario())
    assert published and published[0].trigger == "new-workload"
    assert published[0].workload.cgroup == str(cgroup)
    assert published[0].workload_class == common_pb2.CPU_THROUGHPUT
