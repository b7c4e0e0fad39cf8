"""The repository service as a real process: seeding, gRPC API and errors, bus consumers, CLI over gRPC."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from schedcp import subjects
from schedcp.rpc import check_health
from schedcp.v1 import common_pb2, policy_pb2, services_pb2, services_pb2_grpc

from .library import FIXTURE_LIBRARY
from .messages import outcome, verdict

REPO = Path(__file__).resolve().parents[3]


def write_library(bpf: Path) -> None:
    bpf.mkdir()
    for name, meta in FIXTURE_LIBRARY.items():
        (bpf / f"{name}.bpf.c").write_text(f"/* {name}: fixture scheduler */\nint {name}_x;\n")
        (bpf / f"{name}.json").write_text(json.dumps({"name": name, **meta}))


def _start_service(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        # The child keeps its own copy of the descriptor.
        return subprocess.Popen([sys.executable, "-m", "services.repository"], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "schedcp.cli.main", "policies", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
async def repository(service_env: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    write_library(tmp_path / "bpf")
    env = {**service_env, "SCHEDCP_REPOSITORY_SEED_DIR": str(tmp_path / "bpf")}
    address = env["SCHEDCP_REPOSITORY_ADDR"]
    proc = await asyncio.to_thread(_start_service, env, tmp_path / "repository.log")
    try:
        for _ in range(120):
            if proc.poll() is not None:
                break
            if await check_health(address, deadline_s=0.5):
                break
            await asyncio.sleep(0.25)
        else:
            pytest.fail("repository service did not become healthy in 30 s")
        if proc.poll() is not None:
            pytest.fail(f"repository service exited: {(tmp_path / 'repository.log').read_text()[-3000:]}")
        yield address, env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    assert code == 0, (tmp_path / "repository.log").read_text()[-3000:]


async def _eventually(check, within: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_service_end_to_end(repository, bus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    address, env = repository
    async with grpc.aio.insecure_channel(address) as channel:
        stub = services_pb2_grpc.RepositoryServiceStub(channel)

        # Seeded library, all PROMOTED.
        listed = await stub.List(services_pb2.ListPoliciesRequest())
        assert sorted(p.name for p in listed.policies) == sorted(FIXTURE_LIBRARY)
        assert {p.status for p in listed.policies} == {policy_pb2.POLICY_PROMOTED}

        found = await stub.Search(services_pb2.SearchRequest(query="nginx where p99 response time matters",
                                                             limit=3))
        assert found.hits[0].policy.name == "edf_latency" and found.hits[0].similarity > 0

        # Put a candidate; errors map to status codes.
        cand = policy_pb2.Policy(name="cand", version="1", source="/* cand */\n",
                                 metadata=policy_pb2.PolicyMetadata(description="EDF with a shorter budget.",
                                                                    target_workloads=[common_pb2.LATENCY_SERVER]))
        stored = await stub.Put(services_pb2.PutPolicyRequest(policy=cand))
        assert stored.status == policy_pb2.POLICY_CANDIDATE and stored.source_digest.startswith("sha256:")
        changed = policy_pb2.Policy()
        changed.CopyFrom(cand)
        changed.source = "/* other */\n"
        cases = [
            (stub.Put(services_pb2.PutPolicyRequest(policy=changed)), grpc.StatusCode.ALREADY_EXISTS),
            (stub.Get(services_pb2.GetPolicyRequest(name="ghost")), grpc.StatusCode.NOT_FOUND),
            (stub.Promote(services_pb2.SetStatusRequest(policy=common_pb2.PolicyRef(name="cand", version="1"))),
             grpc.StatusCode.FAILED_PRECONDITION),
            (stub.Search(services_pb2.SearchRequest(query="x", limit=1000)), grpc.StatusCode.INVALID_ARGUMENT),
        ]
        oversized = policy_pb2.Policy()
        oversized.CopyFrom(cand)
        oversized.version, oversized.source = "2", "x" * (600 * 1024)
        cases.append((stub.Put(services_pb2.PutPolicyRequest(policy=oversized)), grpc.StatusCode.INVALID_ARGUMENT))
        promoted = policy_pb2.Policy()
        promoted.CopyFrom(cand)
        promoted.version, promoted.status = "3", policy_pb2.POLICY_PROMOTED
        cases.append((stub.Put(services_pb2.PutPolicyRequest(policy=promoted)), grpc.StatusCode.INVALID_ARGUMENT))
        for call, code in cases:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == code, info.value.details()

        # Bus: a passed verdict (delivered twice, as separate messages) verifies the candidate once.
        v = verdict("v-e2e-1", policy="cand", version="1", score=1.6)
        await bus.publish(subjects.VERDICTS, v)
        v2 = verdict("v-e2e-1", policy="cand", version="1", score=1.6)
        await bus.publish(subjects.VERDICTS, v2)
        await bus.publish(subjects.VERDICTS, verdict("v-e2e-2", policy="edf_latency", version="1", passed=False,
                                                     source="/* broken edf */\n"))
        await bus.publish(subjects.OUTCOMES, outcome("o-e2e-1", policy="fifo", improvement=0.8, success=False,
                                                     reason="rolled back: throughput regressed"))

        async def verified() -> policy_pb2.Policy:
            got = await stub.Get(services_pb2.GetPolicyRequest(name="cand", version="1"))
            assert got.status == policy_pb2.POLICY_VERIFIED and len(got.history) == 1
            return got

        got = await _eventually(verified)
        assert got.history[0].ratio == pytest.approx(1.6) and got.history[0].source_id == "v-e2e-1"

        async def antipatterns() -> None:
            edf = await stub.ListAntipatterns(services_pb2.ListAntipatternsRequest(
                policy=common_pb2.PolicyRef(name="edf_latency")))
            fifo = await stub.ListAntipatterns(services_pb2.ListAntipatternsRequest(
                policy=common_pb2.PolicyRef(name="fifo")))
            assert len(edf.antipatterns) == 1 and edf.antipatterns[0].stage == "kernel_verifier"
            assert len(fifo.antipatterns) == 1 and fifo.antipatterns[0].stage == "deployment"

        await _eventually(antipatterns)
        fifo = await stub.Get(services_pb2.GetPolicyRequest(name="fifo"))
        assert [(r.ratio, r.success) for r in fifo.history] == [(pytest.approx(0.8), False)]

        # RecordOutcome over gRPC with the same source id as an existing record is applied once.
        rec = policy_pb2.PerformanceRecord(workload_class=common_pb2.LATENCY_SERVER, metric="p99_latency_us",
                                           ratio=1.6, source="verdict", source_id="v-e2e-1", success=True)
        again = await stub.RecordOutcome(services_pb2.RecordOutcomeRequest(
            policy=common_pb2.PolicyRef(name="cand", version="1"), record=rec))
        assert len(again.history) == 1
        promoted_now = await stub.Promote(services_pb2.SetStatusRequest(
            policy=common_pb2.PolicyRef(name="cand", version="1"), reason="beats edf_latency"))
        assert promoted_now.status == policy_pb2.POLICY_PROMOTED

    # The CLI goes to the service: point its embedded store elsewhere to prove it.
    cli_env = {**env, "SCHEDCP_REPOSITORY_DB": str(tmp_path / "elsewhere.db")}
    out = await asyncio.to_thread(_cli, cli_env, "show", "cand@1", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == "POLICY_PROMOTED" and doc["history"][0]["source_id"] == "v-e2e-1"
    out = await asyncio.to_thread(_cli, cli_env, "search", "make -j with thousands of short compiler processes",
                                  "--limit", "3")
    assert out.returncode == 0 and "las@1" in out.stdout, out.stdout + out.stderr
    assert not await asyncio.to_thread((tmp_path / "elsewhere.db").exists)
