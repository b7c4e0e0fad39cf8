"""The executor service on real micro-VM nodes: token gate, bake, circuit
breaker (a real ejection and a real regression), restart mid-rollout, and a
canary rollout across three nodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schedcp import tokens
from schedcp.digests import canonical_tunables_json, config_digest, sha256_digest
from schedcp.rpc import check_health, grpc_channel
from schedcp.v1 import common_pb2, deployment_pb2, services_pb2, services_pb2_grpc, verdict_pb2
from tests.conftest import free_port

pytestmark = [pytest.mark.vm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
PROGS = Path(__file__).parent / "progs"


@pytest.fixture(scope="module")
def objects() -> dict[str, bytes]:
    from schedcp.substrate.build import BpfBuilder
    from schedcp.substrate.kernel import ensure_kernel

    builder = BpfBuilder(btf=ensure_kernel().vmlinux)
    sources = {"fifo": ROOT / "bpf/fifo.bpf.c", "wvtime": ROOT / "bpf/wvtime.bpf.c",
               "serial": PROGS / "serial.bpf.c", "stall_true": PROGS / "stall_true.bpf.c"}
    return {name: builder.build_file(src).object_path.read_bytes() for name, src in sources.items()}


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> tokens.KeyRing:
    ring = tokens.KeyRing(tmp_path_factory.mktemp("verifier") / "keys")
    return ring


class Executor:
    """One executor service process owning one micro-VM node."""

    def __init__(self, *, node: str, env: dict[str, str], log: Path) -> None:
        self.node, self.env, self.log = node, env, log
        self.address = env["SCHEDCP_EXECUTOR_ADDR"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.executor"], env=self.env,
                                         stdout=out, stderr=out, cwd=ROOT)
        deadline = time.monotonic() + 240
        while not asyncio.run(check_health(self.address, deadline_s=2)):
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "executor not healthy in time"
            time.sleep(1)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def audit(self) -> list[dict[str, object]]:
        path = Path(self.env["SCHEDCP_DATA_DIR"]) / "executor" / self.node / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


def _env(service_env: dict[str, str], keys_file: Path, node: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(service_env)
    env.update({"SCHEDCP_NODE": node, "SCHEDCP_EXECUTOR_ADDR": f"127.0.0.1:{free_port()}",
                "SCHEDCP_DATA_DIR": str(data_dir), "SCHEDCP_EXECUTOR_TRUSTED_KEYS": str(keys_file),
                "SCHEDCP_EXECUTOR_VM_MEM_MB": "512", "SCHEDCP_EXECUTOR_BAKE_S": "1",
                "SCHEDCP_EXECUTOR_NODE_CHECK_S": "1"})
    env.update(extra)
    return env


def _verdict(keyring: tokens.KeyRing, artifact: bytes, *, policy: str, nodes: list[str],
             tunables: dict[str, object] | None = None, workload_class: int = 0) -> verdict_pb2.Verdict:
    tunables = tunables or {}
    token = tokens.issue_token(keyring, artifact_digest=sha256_digest(artifact), config_digest=config_digest(tunables),  # type: ignore[arg-type]
                               node_selector=common_pb2.NodeSelector(nodes=nodes), verdict_id=f"v-{policy}",
                               policy=common_pb2.PolicyRef(name=policy, version="1"))
    verdict = verdict_pb2.Verdict(verdict_id=f"v-{policy}", passed=True, artifact=artifact,
                                  artifact_digest=sha256_digest(artifact), config_digest=config_digest(tunables),  # type: ignore[arg-type]
                                  config_json=canonical_tunables_json(tunables))  # type: ignore[arg-type]
    verdict.token.CopyFrom(token)
    verdict.plan.policy.name = policy
    verdict.plan.policy.version = "1"
    verdict.plan.profile.workload_class = workload_class
    return verdict


async def _deploy(address: str, verdict: verdict_pb2.Verdict, *, nodes: list[str], bake: float = 1.0,
                  canary: float = 1, on_report=None) -> list[deployment_pb2.DeploymentReport]:  # type: ignore[no-untyped-def]
    reports = []
    async with grpc_channel(address) as channel:
        stub = services_pb2_grpc.ExecutorServiceStub(channel)
        request = services_pb2.DeployRequest(verdict=verdict, nodes=common_pb2.NodeSelector(nodes=nodes),
                                             bake_seconds=bake, canary=canary)
        async for report in stub.Deploy(request, timeout=900):
            reports.append(report)
            if on_report is not None:
                on_report(report)
    return reports


async def _status(address: str) -> services_pb2.StatusResponse:
    async with grpc_channel(address) as channel:
        return await services_pb2_grpc.ExecutorServiceStub(channel).Status(services_pb2.StatusRequest(), timeout=120)


def _phase(report: deployment_pb2.DeploymentReport) -> str:
    return deployment_pb2.DeploymentPhase.Name(report.phase).removeprefix("PHASE_")


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, keyring: tokens.KeyRing,
           nats_server) -> Iterator[Executor]:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("executor")
    keys_file = keyring.export_public(base / "public.json")
    env = dict(os.environ, SCHEDCP_NATS_URL=nats_server.url, SCHEDCP_SUBJECT_PREFIX="exec" + str(os.getpid()),
               SCHEDCP_LOG_FORMAT="text", SCHEDCP_LLM_URL="none")
    executor = Executor(node="n1", env=_env(env, Path(keys_file), "n1", base / "data"), log=base / "n1.log")
    executor.start()
    try:
        yield executor
    finally:
        executor.stop()


async def test_deploys_with_a_valid_token_and_refuses_every_bad_one(single: Executor, keyring: tokens.KeyRing,
                                                                    objects: dict[str, bytes]) -> None:
    good = _verdict(keyring, objects["fifo"], policy="fifo", nodes=["n1"], tunables={"slice_us": 5000})
    reports = await _deploy(single.address, good, nodes=["n1"])
    phases = [_phase(r) for r in reports if r.node == "n1"]
    assert phases[0] == "PENDING" and phases[-1] == "COMPLETE", [r.message for r in reports]
    status = await _status(single.address)
    assert status.nodes[0].running.name == "fifo" and status.nodes[0].sched_ext_state == "enabled"
    assert status.nodes[0].healthy

    replay = await _deploy(single.address, good, nodes=["n1"])
    assert _phase(replay[0]) == "REFUSED" and "already used" in replay[0].message

    forged = _verdict(keyring, objects["wvtime"], policy="wvtime", nodes=["n1"])
    forged.token.signature = bytes(reversed(forged.token.signature))
    assert "signature does not verify" in (await _deploy(single.address, forged, nodes=["n1"]))[0].message

    swapped = _verdict(keyring, objects["wvtime"], policy="wvtime", nodes=["n1"])
    swapped.artifact = objects["serial"]  # the bytes are not the ones verified
    assert "is not the one verified" in (await _deploy(single.address, swapped, nodes=["n1"]))[0].message

    other_node = _verdict(keyring, objects["wvtime"], policy="wvtime", nodes=["n7"])
    assert "does not cover node 'n1'" in (await _deploy(single.address, other_node, nodes=["n1"]))[0].message

    expired = _verdict(keyring, objects["wvtime"], policy="wvtime", nodes=["n1"])
    expired.token.CopyFrom(tokens.issue_token(keyring, artifact_digest=sha256_digest(objects["wvtime"]),
                                              config_digest=config_digest({}), node_selector=common_pb2.NodeSelector(nodes=["n1"]),
                                              verdict_id="old", ttl_s=60, now=time.time() - 7200))
    assert "expired" in (await _deploy(single.address, expired, nodes=["n1"]))[0].message

    refused = [e for e in single.audit() if e["outcome"] == "refused"]
    assert {e["error"] for e in refused} == {"ReplayedNonce", "BadSignature", "DigestMismatch", "WrongNode",
                                             "TokenExpired"}
    assert (await _status(single.address)).nodes[0].running.name == "fifo"  # nothing refused changed the node


async def test_a_watchdog_ejection_after_deploy_rolls_back(single: Executor, keyring: tokens.KeyRing,
                                                           objects: dict[str, bytes]) -> None:
    verdict = _verdict(keyring, objects["stall_true"], policy="stall_true", nodes=["n1"])
    reports = await _deploy(single.address, verdict, nodes=["n1"], bake=1)
    final = [r for r in reports if r.node == "n1"][-1]
    assert _phase(final) == "ROLLED_BACK", final.message
    assert final.breaker_events[0].kind == "ejected"
    assert "stall" in final.breaker_events[0].reason
    assert "restored known-good fifo" in final.message
    assert (await _status(single.address)).nodes[0].running.name == "fifo"


async def test_an_injected_regression_trips_the_breaker(single: Executor, keyring: tokens.KeyRing,
                                                        objects: dict[str, bytes]) -> None:
    verdict = _verdict(keyring, objects["serial"], policy="serial", nodes=["n1"],
                       workload_class=common_pb2.BATCH_LONG_TAIL)
    reports = await _deploy(single.address, verdict, nodes=["n1"], bake=1)
    final = [r for r in reports if r.node == "n1"][-1]
    assert _phase(final) == "ROLLED_BACK", final.message
    event = final.breaker_events[0]
    assert event.kind == "regression" and event.value < event.threshold
    assert final.metrics_before["makespan_s"] < final.metrics_after["makespan_s"]
    assert (await _status(single.address)).nodes[0].running.name == "fifo"


async def test_an_executor_killed_mid_rollout_restarts_and_rolls_back(single: Executor, keyring: tokens.KeyRing,
                                                                      objects: dict[str, bytes]) -> None:
    if (await _status(single.address)).nodes[0].running.name != "fifo":
        known_good = _verdict(keyring, objects["fifo"], policy="fifo", nodes=["n1"])
        assert _phase((await _deploy(single.address, known_good, nodes=["n1"]))[-1]) == "COMPLETE"
    verdict = _verdict(keyring, objects["wvtime"], policy="wvtime", nodes=["n1"])

    def kill_when_baking(report: deployment_pb2.DeploymentReport) -> None:
        if _phase(report) == "CANARY":
            single.kill()

    with pytest.raises(Exception):  # noqa: B017 - the stream breaks when the executor dies
        await _deploy(single.address, verdict, nodes=["n1"], bake=120, on_report=kill_when_baking)
    await asyncio.to_thread(single.start)  # a fresh VM: reconcile must bring back the known-good scheduler
    status = (await _status(single.address)).nodes[0]
    assert status.running.name == "fifo" and status.sched_ext_state == "enabled", status
    reconcile = [e for e in single.audit() if e["action"] == "reconcile"][-1]
    assert "interrupted deploy" in str(reconcile["message"]) and "restored known-good fifo" in str(reconcile["message"])


def _qemu_children(pid: int) -> list[int]:
    """qemu processes started by the process ``pid`` (each in its own session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"qemu-system" in cmdline.split(b"\0", 1)[0]:
            found.append(int(entry.name))
    return found


async def test_a_node_whose_vm_dies_is_booted_again_with_its_known_good_scheduler(
        single: Executor, keyring: tokens.KeyRing, objects: dict[str, bytes]) -> None:
    if (await _status(single.address)).nodes[0].running.name != "fifo":
        known_good = _verdict(keyring, objects["fifo"], policy="fifo", nodes=["n1"])
        assert _phase((await _deploy(single.address, known_good, nodes=["n1"]))[-1]) == "COMPLETE"
    assert single.proc is not None
    qemus = _qemu_children(single.proc.pid)
    assert len(qemus) == 1, qemus
    os.kill(qemus[0], signal.SIGKILL)  # the VM dies under the executor (OOM killer, crash, lifetime)
    deadline = time.monotonic() + 180
    while True:
        audit = single.audit()
        if any(e["action"] == "node-reboot" for e in audit) and audit[-1]["action"] == "reconcile":
            break
        assert single.proc.poll() is None, single.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no reboot and reconcile in time: {audit[-5:]}"
        await asyncio.sleep(1)
    reboot = [e for e in audit if e["action"] == "node-reboot"][-1]
    assert reboot["outcome"] == "ok", reboot
    assert "restored known-good fifo" in str(audit[-1]["message"]), audit[-1]
    status = (await _status(single.address)).nodes[0]
    assert status.running.name == "fifo" and status.sched_ext_state == "enabled" and status.healthy, status
    new = _qemu_children(single.proc.pid)
    assert len(new) == 1 and new != qemus, (qemus, new)


async def test_a_node_whose_guest_hangs_is_booted_again(single: Executor, keyring: tokens.KeyRing,
                                                       objects: dict[str, bytes]) -> None:
    if (await _status(single.address)).nodes[0].running.name != "fifo":
        known_good = _verdict(keyring, objects["fifo"], policy="fifo", nodes=["n1"])
        assert _phase((await _deploy(single.address, known_good, nodes=["n1"]))[-1]) == "COMPLETE"
    assert single.proc is not None
    qemus = _qemu_children(single.proc.pid)
    assert len(qemus) == 1, qemus
    reboots = sum(1 for e in single.audit() if e["action"] == "node-reboot")
    os.kill(qemus[0], signal.SIGSTOP)  # qemu still exists, the guest answers nothing
    try:
        deadline = time.monotonic() + 240
        while True:
            audit = single.audit()
            done = [e for e in audit if e["action"] == "node-reboot"][reboots:]
            if done and audit[-1]["action"] == "reconcile":
                break
            assert single.proc.poll() is None, single.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"no reboot of the hung VM in time: {audit[-5:]}"
            await asyncio.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(qemus[0], signal.SIGKILL)
    assert "did not answer ping" in str(done[0]["reason"]) and done[0]["outcome"] == "ok", done
    status = (await _status(single.address)).nodes[0]
    assert status.running.name == "fifo" and status.sched_ext_state == "enabled" and status.healthy, status
