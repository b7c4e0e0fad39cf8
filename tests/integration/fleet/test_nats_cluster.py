"""A 3-host fleet on a 3-node NATS cluster: a server dies mid-loop, nothing is lost or duplicated.

Hosts are network namespaces on a private bridge, one nats-server each
(clustered, JetStream streams replicated 3 ways). Two planner replicas on two
hosts share the durable consumer; the repository they search runs on a third
host. Profiles are published through the bus; half-way through, the NATS
server of the first host is SIGKILLed. Every profile must still be planned
exactly once, and the stream must hold every profile and plan exactly once.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import nats
import pytest
from nats.js.api import DeliverPolicy

from schedcp import subjects
from schedcp.bus import Bus
from schedcp.rpc import check_health
from schedcp.v1 import common_pb2, plan_pb2, profile_pb2

from .cluster import ClusterNode
from .netns import Fleet, Host

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
PROFILES = 24


def profile(i: int, node: str) -> profile_pb2.WorkloadProfile:
    classes = [common_pb2.PARALLEL_BUILD, common_pb2.LATENCY_SERVER, common_pb2.BATCH_LONG_TAIL]
    return profile_pb2.WorkloadProfile(
        profile_id=f"p{i:03d}-{uuid.uuid4().hex[:6]}", node=node, workload_class=classes[i % 3],
        description="fleet test workload",
        workload=profile_pb2.WorkloadIdentity(name=f"job-{i}", comm="job"),
        goal=profile_pb2.OptimizationGoal(kind=common_pb2.GOAL_MAKESPAN, metric="makespan_s"),
        features=profile_pb2.WorkloadFeatures(cpu_utilization=1.5, node_cpus=2))


class Service:
    def __init__(self, name: str, host: Host, env: dict[str, str], log: Path) -> None:
        self.name, self.host, self.log = name, host, log
        self.address = env[f"SCHEDCP_{name.upper()}_ADDR"]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(host.command([sys.executable, "-m", f"services.{name}"]), cwd=REPO,
                                         env=env, stdout=out, stderr=subprocess.STDOUT)

    async def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not await check_health(self.address, deadline_s=1):
            assert self.proc.poll() is None, f"{self.name}@{self.host.name} exited:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{self.name}@{self.host.name} not healthy in {timeout}s"
            await asyncio.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


async def stream_messages(url: str, subject: str) -> list[nats.aio.msg.Msg]:
    """Every message the stream holds on ``subject`` (an ordered replay; no consumer state left behind)."""
    nc = await nats.connect(servers=url.split(","))
    try:
        js = nc.jetstream()
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        out: list[nats.aio.msg.Msg] = []
        while True:
            try:
                out.append(await sub.next_msg(timeout=3))
            except nats.errors.TimeoutError:
                return out
    finally:
        await nc.close()


async def test_a_nats_server_killed_mid_loop_loses_and_duplicates_nothing(
        fleet: Fleet, nats_cluster: list[ClusterNode], tmp_path: Path, subject_prefix: str) -> None:
    urls = ",".join(n.url for n in nats_cluster)
    base_env = {**os.environ, "SCHEDCP_NATS_URL": urls, "SCHEDCP_NATS_REPLICAS": "3",
                "SCHEDCP_SUBJECT_PREFIX": subject_prefix, "SCHEDCP_LLM_URL": "none",
                # The assertions read the planners' info lines ("planned profile").
                "SCHEDCP_LOG_FORMAT": "text", "SCHEDCP_LOG_LEVEL": "info",
                "SCHEDCP_REPOSITORY_ADDR": f"{fleet.hosts[2].address}:50066",
                # The planner asks the learner for history; it runs nowhere here, so that is
                # the "learner down" path, which must not stop planning.
                "SCHEDCP_LEARNER_ADDR": f"{fleet.hosts[2].address}:50065"}

    def env_for(host: Host, name: str) -> dict[str, str]:
        return {**base_env, "SCHEDCP_NODE": host.name, "SCHEDCP_DATA_DIR": str(tmp_path / f"{name}-{host.name}"),
                "SCHEDCP_TRACE_FILE": str(tmp_path / "spans.jsonl"),
                f"SCHEDCP_{name.upper()}_ADDR": base_env.get(f"SCHEDCP_{name.upper()}_ADDR")
                or f"{host.address}:50062"}

    bus = await Bus.connect(url=urls, service="fleet-test", prefix=subject_prefix, replicas=3)
    services: list[Service] = []
    try:
        info = await bus.js.stream_info(bus.stream)
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2, info.cluster

        repository = Service("repository", fleet.hosts[2], env_for(fleet.hosts[2], "repository"),
                             tmp_path / "repository.log")
        services.append(repository)
        await repository.wait_healthy()
        planners = [Service("planner", h, env_for(h, "planner"), tmp_path / f"planner-{h.name}.log")
                    for h in fleet.hosts[:2]]
        services.extend(planners)
        for p in planners:
            await p.wait_healthy()

        plans: dict[str, list[plan_pb2.Plan]] = defaultdict(list)

        async def on_plan(plan: plan_pb2.Plan) -> None:
            plans[plan.profile.profile_id].append(plan)

        await bus.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="fleet-test-plans",
                            handler=on_plan)

        published: list[str] = []
        killed_at = None
        for i in range(PROFILES):
            p = profile(i, fleet.hosts[i % 3].name)
            await bus.publish(subjects.profile_subject(p.node), p, correlation_id=f"loop-{p.profile_id}")
            published.append(p.profile_id)
            if i == PROFILES // 2:
                # Wait until the loop is demonstrably flowing, then take a server down hard.
                deadline = time.monotonic() + 120
                while not plans and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                assert plans, "no plan before the failure: " + planners[0].log.read_text()[-2000:]
                nats_cluster[0].kill()
                killed_at = len(plans)
            await asyncio.sleep(0.05)
        assert killed_at is not None and killed_at < PROFILES

        deadline = time.monotonic() + 240
        while set(plans) < set(published) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        missing = set(published) - set(plans)
        assert not missing, (f"{len(missing)} profiles never planned after the failover\n"
                             + "\n".join(s.log.read_text()[-1500:] for s in planners))
        # Let any late duplicate arrive before counting.
        await asyncio.sleep(5)

        for profile_id, got in plans.items():
            indexes = Counter(p.candidate_index for p in got)
            count = got[0].candidate_count or 1
            assert max(indexes.values()) == 1, (
                f"profile {profile_id} planned more than once: {[(p.plan_id, p.candidate_index) for p in got]}")
            assert sorted(indexes) == list(range(count)), (
                f"profile {profile_id}: candidates {sorted(indexes)} of {count} arrived")
        # Each replica logs every profile it planned: together exactly the published ones, each once.
        handled = Counter(m.group(1) for s in planners
                          for m in re.finditer(r"planned profile (\S+):", s.log.read_text()))
        assert set(handled) == set(published) and max(handled.values()) == 1, handled
        per_replica = [len(re.findall(r"planned profile ", s.log.read_text())) for s in planners]
        assert all(per_replica), f"both planner replicas should share the durable consumer: {per_replica}"

        survivors = ",".join(n.url for n in nats_cluster[1:])
        stored_profiles = await stream_messages(survivors, bus.subject(f"{subjects.PROFILES}.>"))
        stored_plans = await stream_messages(survivors, bus.subject(subjects.PLANS))
        profile_ids = Counter(profile_pb2.WorkloadProfile.FromString(m.data).profile_id for m in stored_profiles)
        assert set(profile_ids) == set(published) and max(profile_ids.values()) == 1, profile_ids
        stored = Counter((plan_pb2.Plan.FromString(m.data).profile.profile_id,
                          plan_pb2.Plan.FromString(m.data).candidate_index) for m in stored_plans)
        assert sum(stored.values()) == sum(len(v) for v in plans.values()), "the stream holds extra plans"
        assert max(stored.values()) == 1, [k for k, v in stored.items() if v > 1]
    finally:
        await bus.close()
        for s in services:
            s.stop()
