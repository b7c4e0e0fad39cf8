"""A fleet-wide canary rollout with rollback across three hosts, each executor on its own micro-VM node.

The verifier (on node0) verifies two schedulers and signs them for the three
nodes. The executor of node0 coordinates: canary on node0, then the fleet on
node1 and node2 through their executors (SCHEDCP_EXECUTOR_PEERS), over the
namespaces' own network. A verified scheduler rolls out everywhere, canary
first. A second one, verified and signed only for node1 and node2, is offered
to the whole fleet: the canary's token gate refuses it, the rollout halts and
the fleet is never touched. Finally a fleet-wide rollback.

(A scheduler that regresses in the bake would be the other way to fail a
canary, but the verifier rejects the test's serialising scheduler in its
dynamic stage, so it can never be signed; tests/integration/executor covers
the breaker with a test key ring.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedcp.rpc import check_health, grpc_channel
from schedcp.v1 import (
    common_pb2,
    deployment_pb2,
    plan_pb2,
    services_pb2,
    services_pb2_grpc,
    verdict_pb2,
)

from .cluster import ClusterNode
from .netns import Fleet, Host

pytestmark = [pytest.mark.fleet, pytest.mark.vm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
EXECUTOR_PORT = 50064
VERIFIER_PORT = 50063


def _spawn(host: Host, service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(host.command([sys.executable, "-m", f"services.{service}"]), cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def _healthy(address: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check_health(address, deadline_s=2):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{address} not healthy in {timeout}s:\n{log.read_text()[-2000:]}"
        await asyncio.sleep(1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def _verify(address: str, plan: plan_pb2.Plan) -> verdict_pb2.Verdict:
    """The verifier's verdict; retried once when a stage could not run at all (a VM died: infrastructure,
    not the scheduler, as bench/verifier.py does too)."""
    for _attempt in range(2):
        async with grpc_channel(address) as channel:
            stub = services_pb2_grpc.VerifierServiceStub(channel)
            async for update in stub.Verify(services_pb2.VerifyRequest(plan=plan, skip_performance=True),
                                            timeout=900):
                if update.HasField("verdict"):
                    verdict = update.verdict
        if not any("could not run" in f.message for s in verdict.stages for f in s.findings):
            break
    return verdict


async def _deploy(address: str, verdict: verdict_pb2.Verdict, nodes: list[str]) -> list[deployment_pb2.DeploymentReport]:
    async with grpc_channel(address) as channel:
        stub = services_pb2_grpc.ExecutorServiceStub(channel)
        request = services_pb2.DeployRequest(verdict=verdict, nodes=common_pb2.NodeSelector(nodes=nodes),
                                             canary=1, bake_seconds=1)
        return [r async for r in stub.Deploy(request, timeout=1200)]


async def _status(address: str) -> dict[str, services_pb2.NodeStatus]:
    async with grpc_channel(address) as channel:
        resp = await services_pb2_grpc.ExecutorServiceStub(channel).Status(services_pb2.StatusRequest(), timeout=120)
    return {n.node: n for n in resp.nodes}


def _phases(reports: list[deployment_pb2.DeploymentReport]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in reports:
        out.setdefault(r.node, []).append(deployment_pb2.DeploymentPhase.Name(r.phase).removeprefix("PHASE_"))
    return out


def _plan(name: str, nodes: list[str], *, source: str = "", workload: int = 0) -> plan_pb2.Plan:
    plan = plan_pb2.Plan(plan_id=f"fleet-{name}", path=plan_pb2.COMPOSE_NEW if source else plan_pb2.CONFIGURE_EXISTING,
                         source=source)
    plan.policy.name = name
    plan.profile.workload_class = workload  # type: ignore[assignment]
    plan.target.nodes.extend(nodes)
    return plan


async def test_canary_rollout_and_rollback_across_three_executors(
        fleet: Fleet, nats_cluster: list[ClusterNode], tmp_path: Path, subject_prefix: str) -> None:
    names = [h.name for h in fleet.hosts]
    verifier_addr = f"{fleet.hosts[0].address}:{VERIFIER_PORT}"
    executors = {h.name: f"{h.address}:{EXECUTOR_PORT}" for h in fleet.hosts}
    base = {**os.environ, "SCHEDCP_NATS_URL": ",".join(n.url for n in nats_cluster), "SCHEDCP_NATS_REPLICAS": "3",
            "SCHEDCP_SUBJECT_PREFIX": subject_prefix, "SCHEDCP_LLM_URL": "none", "SCHEDCP_LOG_FORMAT": "text",
            "SCHEDCP_VERIFIER_ADDR": verifier_addr, "SCHEDCP_EXECUTOR_VM_MEM_MB": "512",
            "SCHEDCP_EXECUTOR_BAKE_S": "1", "SCHEDCP_EXECUTOR_PROBE_REPETITIONS": "1",
            # grpc's at-fork handlers crash the forked child (before it execs qemu) while other
            # threads are in gRPC: "qemu exited with -11". The services do not rely on fork support.
            "GRPC_ENABLE_FORK_SUPPORT": "0",
            # bench/fleet.py --loop-trace turns this into the per-service latency of verify + rollout.
            "SCHEDCP_TRACE_FILE": str(tmp_path / "spans.jsonl")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        log = tmp_path / "verifier.log"
        verifier = _spawn(fleet.hosts[0], "verifier", {**base, "SCHEDCP_NODE": "node0",
                                                       "SCHEDCP_DATA_DIR": str(tmp_path / "verifier")}, log)
        procs.append(verifier)
        await _healthy(verifier_addr, verifier, log, 180)
        good = await _verify(verifier_addr, _plan("fifo", names))
        not_for_node0 = await _verify(verifier_addr, _plan("wvtime", names[1:]))
        for verdict in (good, not_for_node0):
            assert verdict.passed and verdict.HasField("token"), [
                (s.name, s.status, [f.message for f in s.findings]) for s in verdict.stages]

        # One executor per host, each booting its own micro-VM node; node0 coordinates.
        for host in fleet.hosts:
            peers = ",".join(f"{n}={a}" for n, a in executors.items() if n != host.name)
            env = {**base, "SCHEDCP_NODE": host.name, "SCHEDCP_DATA_DIR": str(tmp_path / f"data-{host.name}"),
                   "SCHEDCP_EXECUTOR_ADDR": executors[host.name], "SCHEDCP_EXECUTOR_PEERS": peers}
            procs.append(_spawn(host, "executor", env, tmp_path / f"executor-{host.name}.log"))
        for host, proc in zip(fleet.hosts, procs[1:], strict=True):
            await _healthy(executors[host.name], proc, tmp_path / f"executor-{host.name}.log", 600)

        coordinator = executors["node0"]
        reports = await _deploy(coordinator, good, names)
        phases = _phases(reports)
        assert all(phases[n][-1] == "COMPLETE" for n in names), phases
        canary_done = next(i for i, r in enumerate(reports) if r.node == "node0" and r.phase == deployment_pb2.PHASE_COMPLETE)
        first_fleet = min(i for i, r in enumerate(reports) if r.node in ("node1", "node2"))
        assert canary_done < first_fleet, "the fleet wave started before the canary completed"
        assert len({r.rollout_id for r in reports}) == 1
        status = await _status(coordinator)
        assert {n: s.running.name for n, s in status.items()} == dict.fromkeys(names, "fifo"), status
        assert all(s.sched_ext_state == "enabled" for s in status.values())

        reports = await _deploy(coordinator, not_for_node0, names)
        phases = _phases(reports)
        assert phases["node0"][-1] == "REFUSED", phases
        refusal = [r for r in reports if r.node == "node0"][-1].message
        assert "node0" in refusal, refusal
        assert "node1" not in phases and "node2" not in phases, f"the fleet was touched after a failed canary: {phases}"
        assert phases.get("*", [""])[-1] == "HALTED", phases
        status = await _status(coordinator)
        assert {n: s.running.name for n, s in status.items()} == dict.fromkeys(names, "fifo"), status

        async with grpc_channel(coordinator) as channel:
            stub = services_pb2_grpc.ExecutorServiceStub(channel)
            back = [r async for r in stub.Rollback(services_pb2.RollbackRequest(
                nodes=common_pb2.NodeSelector(nodes=names), reason="fleet test"), timeout=600)]
        assert {r.node for r in back} == set(names)
        status = await _status(coordinator)
        assert all(not s.running.name for s in status.values()), status
    finally:
        for proc in reversed(procs):
            _stop(proc)
