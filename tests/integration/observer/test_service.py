"""The observer service as a real process: gRPC API, status codes, bus publishing, triggers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import spin_argv

from schedcp import subjects
from schedcp.rpc import check_health
from schedcp.v1 import common_pb2, profile_pb2, services_pb2, services_pb2_grpc

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
async def observer(service_env: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    env = {**service_env, "SCHEDCP_NODE": "obs-test", "SCHEDCP_OBSERVER_WINDOW": "0.5",
           "SCHEDCP_OBSERVER_SCAN_SECONDS": "0.5", "SCHEDCP_OBSERVER_TRIGGER_CPU": "0.05",
           "SCHEDCP_OBSERVER_MAX_DEEP_WINDOW": "2"}
    address = env["SCHEDCP_OBSERVER_ADDR"]
    log = open(tmp_path / "observer.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "services.observer"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            if proc.poll() is not None or await check_health(address, deadline_s=0.5):
                break
            await asyncio.sleep(0.25)
        if proc.poll() is not None:
            pytest.fail(f"observer exited: {(tmp_path / 'observer.log').read_text()[-3000:]}")
        yield address, env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
    assert code == 0, (tmp_path / "observer.log").read_text()[-3000:]


async def test_summary_deep_feedback_and_errors(observer, bus, spawn) -> None:  # type: ignore[no-untyped-def]
    address, _ = observer
    profiles: list[profile_pb2.WorkloadProfile] = []
    feedback: list[profile_pb2.FeedbackReport] = []

    async def on_profile(msg: profile_pb2.WorkloadProfile) -> None:
        profiles.append(msg)

    async def on_feedback(msg: profile_pb2.FeedbackReport) -> None:
        feedback.append(msg)

    await bus.subscribe(subjects.profile_subject("obs-test"), message_type=profile_pb2.WorkloadProfile,
                        durable="t-profiles", handler=on_profile)
    await bus.subscribe(subjects.feedback_subject("obs-test"), message_type=profile_pb2.FeedbackReport,
                        durable="t-feedback", handler=on_feedback)
    hog = spawn(spin_argv())
    async with grpc.aio.insecure_channel(address) as channel:
        stub = services_pb2_grpc.ObserverServiceStub(channel)
        prof = await stub.Summary(services_pb2.SummaryRequest(
            selector=services_pb2.WorkloadSelector(pid=hog.pid), window_seconds=1.0, publish=True,
            correlation_id="corr-1"), timeout=30)
        assert prof.workload_class == common_pb2.CPU_THROUGHPUT and prof.node == "obs-test"
        assert prof.tier == profile_pb2.TIER_SUMMARY and prof.costs[0].wall_seconds >= 1.0

        if os.geteuid() == 0:
            # A lone hog on a quiet host can run the whole window without a
            # switch, and a slice is only recorded when it ends: share its
            # CPU with a second spinner so it is switched out every few ms.
            cpu = min(os.sched_getaffinity(hog.pid))
            companion = spawn(spin_argv())
            for pid in (hog.pid, companion.pid):
                os.sched_setaffinity(pid, {cpu})
            deep = await stub.DeepProfile(services_pb2.DeepProfileRequest(
                selector=services_pb2.WorkloadSelector(pid=hog.pid), window_seconds=1.0,
                probes=["timeslice"]), timeout=60)
            assert deep.tier == profile_pb2.TIER_DEEP and deep.features.timeslice.samples > 0

        rep = await stub.Feedback(services_pb2.FeedbackRequest(
            selector=services_pb2.WorkloadSelector(pid=hog.pid), rollout_id="r-1",
            policy=common_pb2.PolicyRef(name="wvtime"), window_seconds=0.5,
            baseline={"runqueue_wait_fraction": 0.5, "cpu_utilization": 0.5}), timeout=30)
        assert {d.metric for d in rep.deltas} == {"runqueue_wait_fraction", "cpu_utilization"}
        assert rep.node_healthy is False  # a policy was expected, but this host has no sched_ext

        bad = [
            (stub.Summary(services_pb2.SummaryRequest(selector=services_pb2.WorkloadSelector()), timeout=10),
             grpc.StatusCode.INVALID_ARGUMENT),
            (stub.Summary(services_pb2.SummaryRequest(selector=services_pb2.WorkloadSelector(pid=2**31 - 1)),
                          timeout=10), grpc.StatusCode.NOT_FOUND),
            (stub.Summary(services_pb2.SummaryRequest(
                selector=services_pb2.WorkloadSelector(cgroup="/nonexistent/\udcff" .encode("utf-8", "surrogatepass")
                                                        .decode("utf-8", "replace"))), timeout=10),
             grpc.StatusCode.NOT_FOUND),
            (stub.DeepProfile(services_pb2.DeepProfileRequest(selector=services_pb2.WorkloadSelector(
                pid=hog.pid), probes=["rootkit"]), timeout=10), grpc.StatusCode.INVALID_ARGUMENT),
            (stub.Feedback(services_pb2.FeedbackRequest(selector=services_pb2.WorkloadSelector(pid=hog.pid)),
                           timeout=10), grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for call, code in bad:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == code, err.value.details()
        # Still serving after every bad request.
        again = await stub.Summary(services_pb2.SummaryRequest(
            selector=services_pb2.WorkloadSelector(node=True), window_seconds=0.3), timeout=30)
        assert again.features.node_cpus >= 1

    for _ in range(100):
        if any(p.meta.correlation_id == "corr-1" for p in profiles) and feedback:
            break
        await asyncio.sleep(0.1)
    mine = [p for p in profiles if p.meta.correlation_id == "corr-1"]
    assert mine and mine[0].workload.pids[0] == hog.pid
    assert feedback and feedback[0].rollout_id == "r-1" and feedback[0].meta.correlation_id == "r-1"
    # The trigger loop noticed the busy spinner by itself and published it as a new workload.
    for _ in range(100):
        if any(p.trigger == "new-workload" and hog.pid in p.workload.pids for p in profiles):
            break
        await asyncio.sleep(0.2)
    assert any(p.trigger == "new-workload" and hog.pid in p.workload.pids for p in profiles)
