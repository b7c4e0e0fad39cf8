"""Planner, learner and repository as real processes on a real NATS.

A profile published on the bus becomes Plans (no LLM, seeded library); a
redelivered profile yields the same plan ids, which the bus drops; deployment
outcomes flow through the repository and the learner, which promotes the
winner; the next plan for the same workload reuses it with 0 tokens even when
that run was classified differently; drift feedback makes the learner
re-publish the profile.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from schedcp import subjects
from schedcp.rpc import grpc_channel
from schedcp.v1 import (
    common_pb2,
    deployment_pb2,
    plan_pb2,
    policy_pb2,
    profile_pb2,
    services_pb2,
    services_pb2_grpc,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def _healthy(address: str) -> bool:
    # Synchronous on purpose: this fixture runs outside the test's event loop.
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=0.5
            )
        except grpc.RpcError:
            return False
    return resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def services(service_env, tmp_path):
    procs = []
    env = dict(service_env)
    env["SCHEDCP_LEARNER_PROMOTE_MIN_WINS"] = "2"
    env["SCHEDCP_LEARNER_DRIFT_REPORTS"] = "1"
    for name in ("repository", "learner", "planner"):
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append(
            (
                name,
                subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    env=env,
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )
    try:
        for name, proc, _ in procs:
            address = env[f"SCHEDCP_{name.upper()}_ADDR"]
            for _ in range(300):
                if proc.poll() is not None:
                    break
                if _healthy(address):
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"{name} did not become healthy")
            if proc.poll() is not None:
                pytest.fail(f"{name} exited: {(tmp_path / f'{name}.log').read_text()[-2000:]}")
        yield {**env, "log_dir": tmp_path}
    finally:
        for _, proc, _log in procs:
            proc.terminate()
        for _, proc, log in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def build_profile(
    node: str, workload_class: int = common_pb2.PARALLEL_BUILD, jobs: int = 8
) -> profile_pb2.WorkloadProfile:
    return profile_pb2.WorkloadProfile(
        profile_id=uuid.uuid4().hex,
        node=node,
        workload_class=workload_class,
        description="CPU-intensive parallel compilation with short-lived processes",
        workload=profile_pb2.WorkloadIdentity(
            name=f"make -j{jobs}", comm="make", cmdline=["/usr/bin/make", f"-j{jobs}"]
        ),
        goal=profile_pb2.OptimizationGoal(kind=common_pb2.GOAL_MAKESPAN, metric="makespan_s"),
        features=profile_pb2.WorkloadFeatures(cpu_utilization=1.9, node_cpus=2),
    )


async def collect(bus, subject, message_type, durable):
    box: asyncio.Queue = asyncio.Queue()

    async def handler(msg):
        await box.put(msg)

    await bus.subscribe(subject, message_type=message_type, durable=durable, handler=handler)
    return box


async def test_profile_to_plans_then_learning_then_reuse(bus, services):
    env = services
    plans_box = await collect(bus, subjects.PLANS, plan_pb2.Plan, "t-plans")
    profiles_box = await collect(
        bus, f"{subjects.PROFILES}.>", profile_pb2.WorkloadProfile, "t-prof"
    )

    profile = build_profile("node-a")
    await bus.publish(subjects.profile_subject("node-a"), profile)
    first = await asyncio.wait_for(plans_box.get(), 60)
    plans = [first]
    while len(plans) < first.candidate_count:
        plans.append(await asyncio.wait_for(plans_box.get(), 30))
    assert {p.profile.profile_id for p in plans} == {profile.profile_id}
    assert all(p.path == plan_pb2.CONFIGURE_EXISTING for p in plans)
    library = {f.name.removesuffix(".json") for f in (REPO_ROOT / "bpf").glob("*.json")}
    assert {p.policy.name for p in plans} <= library
    assert sum(p.llm.prompt_tokens + p.llm.completion_tokens for p in plans) == 0
    await asyncio.wait_for(profiles_box.get(), 10)  # our own publication

    # The same profile again, as a new message (a producer's retry after a crash,
    # which the bus cannot dedupe): the planner plans it again under the same
    # plan ids, and the bus drops those duplicates.
    retried = profile_pb2.WorkloadProfile()
    retried.CopyFrom(profile)
    retried.ClearField("meta")
    await bus.publish(subjects.profile_subject("node-a"), retried)
    await asyncio.wait_for(profiles_box.get(), 10)
    planner_log = services["log_dir"] / "planner.log"
    for _ in range(300):
        if planner_log.read_text().count(f"planned profile {profile.profile_id}") >= 2:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the planner did not plan the redelivered profile")
    await asyncio.sleep(1.0)  # publications would have arrived by now
    assert plans_box.empty(), "a redelivered profile produced new plans"

    # Two winning deployments of fifo on this class -> repository records, learner promotes.
    assert len({p.policy.name for p in plans}) == 2  # more than one policy to compare
    best = plans[0]
    for i in range(2):
        outcome = deployment_pb2.DeploymentOutcome(
            outcome_id=f"o-{uuid.uuid4().hex}",
            profile_id=profile.profile_id,
            workload_class=common_pb2.PARALLEL_BUILD,
            workload_key=best.profile.workload_key,  # as the executor reports it
            policy=best.policy,
            improvement=1.3 + i / 10,
            metric="makespan_s",
            success=True,
            source="deployment",
            node="node-a",
        )
        outcome.tunables.MergeFrom(best.tunables)
        await bus.publish(subjects.OUTCOMES, outcome)

    async with grpc_channel(env["SCHEDCP_REPOSITORY_ADDR"]) as ch:
        repo = services_pb2_grpc.RepositoryServiceStub(ch)
        for _ in range(100):
            policy = await repo.Get(services_pb2.GetPolicyRequest(name=best.policy.name))
            if policy.status == policy_pb2.POLICY_PROMOTED:
                break
            await asyncio.sleep(0.2)
        assert policy.status == policy_pb2.POLICY_PROMOTED

    async with grpc_channel(env["SCHEDCP_LEARNER_ADDR"]) as ch:
        history = await services_pb2_grpc.LearnerServiceStub(ch).History(
            services_pb2.HistoryRequest(workload_class=common_pb2.PARALLEL_BUILD, limit=5)
        )
    assert history.summary.startswith(f"PARALLEL_BUILD: {best.policy.name} promoted")
    assert len(history.records) == 2

    # The same workload (other -j) again, but this short run was classified
    # CPU_THROUGHPUT: the win recorded for the workload is still reused, free.
    assert best.profile.workload_key.startswith("sha256:")
    async with grpc_channel(env["SCHEDCP_PLANNER_ADDR"]) as ch:
        again = await services_pb2_grpc.PlannerServiceStub(ch).Plan(
            services_pb2.PlanRequest(
                profile=build_profile("node-a", common_pb2.CPU_THROUGHPUT, jobs=4)
            )
        )
    top = again.plans[0]
    assert top.profile.workload_key == best.profile.workload_key
    assert top.policy.name == best.policy.name
    assert "won on this workload (same workload key, recorded as PARALLEL_BUILD)" in top.rationale
    assert dict(top.tunables) == dict(best.tunables)
    assert top.profile.workload_class == common_pb2.PARALLEL_BUILD  # measured where it won
    assert sum(p.llm.prompt_tokens + p.llm.completion_tokens for p in again.plans) == 0

    # Drift: feedback below the baseline makes the learner re-publish the profile.
    report = profile_pb2.FeedbackReport(
        node="node-a", workload="make -j8", policy=best.policy, node_healthy=True
    )
    report.deltas.add(metric="makespan_s", baseline=10.0, current=14.0, ratio=0.7)
    await bus.publish(subjects.feedback_subject("node-a"), report)
    replanned = await asyncio.wait_for(profiles_box.get(), 30)
    assert replanned.trigger == "drift" and replanned.node == "node-a"
