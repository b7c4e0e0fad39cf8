"""The verifier as a real process on a real NATS: PublicKeys, streaming Verify
and plans -> verdicts on the bus. Candidates here fail at static analysis, so
no micro-VM is booted (the VM path is covered by test_pipeline_vm.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from schedcp import subjects, tokens
from schedcp.rpc import grpc_channel
from schedcp.v1 import common_pb2, plan_pb2, services_pb2, services_pb2_grpc, verdict_pb2

ROOT = Path(__file__).resolve().parents[3]
BAD = (ROOT / "tests/corpus/broken/slice_unbounded.bpf.c").read_text()


def _healthy(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                             timeout=0.5)
        except grpc.RpcError:
            return False
    return resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def verifier_proc(service_env, tmp_path):
    log = open(tmp_path / "verifier.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "services.verifier"], env=service_env,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    address = service_env["SCHEDCP_VERIFIER_ADDR"]
    try:
        for _ in range(600):
            if proc.poll() is not None or _healthy(address):
                break
            time.sleep(0.1)
        assert proc.poll() is None, (tmp_path / "verifier.log").read_text()
        yield address, Path(service_env["SCHEDCP_DATA_DIR"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _plan() -> plan_pb2.Plan:
    plan = plan_pb2.Plan(plan_id=str(uuid.uuid4()), source=BAD, path=plan_pb2.COMPOSE_NEW,
                         policy=common_pb2.PolicyRef(name="slice_unbounded"))
    plan.target.nodes.append("node-a")
    return plan


async def test_public_keys_and_streaming_verify(verifier_proc):
    address, data_dir = verifier_proc
    async with grpc_channel(address) as channel:
        stub = services_pb2_grpc.VerifierServiceStub(channel)
        keys = await stub.PublicKeys(services_pb2.PublicKeysRequest())
        assert len(keys.keys) == 1 and keys.keys[0].active
        exported = tokens.load_trusted_keys(data_dir / "keys" / "public.json")
        assert exported == {k.key_id: k.public_key for k in keys.keys}

        updates = [u async for u in stub.Verify(services_pb2.VerifyRequest(plan=_plan()))]
    stages = [(u.stage.name, u.stage.status) for u in updates if u.HasField("stage")]
    assert ("build", verdict_pb2.STAGE_RUNNING) in stages
    assert ("static", verdict_pb2.STAGE_FAILED) in stages
    assert ("kernel_verifier", verdict_pb2.STAGE_SKIPPED) in stages
    assert ("dynamic", verdict_pb2.STAGE_SKIPPED) in stages
    final = updates[-1].verdict
    assert not final.passed and not final.HasField("token")
    static = next(s for s in final.stages if s.name == "static")
    assert static.findings[0].rule == "slice-too-long" and static.findings[0].line > 0

    async with grpc_channel(address) as channel:
        stub = services_pb2_grpc.VerifierServiceStub(channel)
        again = await stub.GetVerdict(services_pb2.GetVerdictRequest(verdict_id=final.verdict_id))
    assert again.verdict_id == final.verdict_id and not again.passed


async def test_plans_in_verdicts_out(verifier_proc, bus):
    got: asyncio.Queue[verdict_pb2.Verdict] = asyncio.Queue()

    async def on_verdict(v: verdict_pb2.Verdict) -> None:
        await got.put(v)

    await bus.subscribe(subjects.VERDICTS, message_type=verdict_pb2.Verdict,
                        durable=f"t-{uuid.uuid4().hex[:8]}", handler=on_verdict)
    plan = _plan()
    await bus.publish(subjects.PLANS, plan, correlation_id="corr-1")
    bad = plan_pb2.Plan(plan_id=str(uuid.uuid4()))  # neither source nor policy
    await bus.publish(subjects.PLANS, bad, correlation_id="corr-2")
    seen = {}
    for _ in range(2):
        v = await asyncio.wait_for(got.get(), timeout=120)
        seen[v.plan.plan_id] = v
    assert not seen[plan.plan_id].passed
    assert seen[plan.plan_id].meta.correlation_id == "corr-1"
    assert seen[bad.plan_id].stages[0].findings[0].rule == "invalid-plan"
