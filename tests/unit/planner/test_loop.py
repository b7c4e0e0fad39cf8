"""The optimisation loop's control flow with in-memory stages (pure logic, no I/O)."""

from __future__ import annotations

from schedcp.digests import tunables_from_proto
from schedcp.errors import NotFound
from schedcp.v1 import common_pb2, plan_pb2, policy_pb2, services_pb2, verdict_pb2
from schedcp.workload_key import workload_key
from services.learner.learner import Learner
from services.planner.loop import Deployment, LoopSettings, OptimizationLoop
from services.planner.planner import Planner, PlannerSettings

from .fakes import ScriptedLlm, fifo, profile, wvtime


class SharedRepository:
    """Both the planner's and the learner's view of one in-memory library."""

    def __init__(self, policies):
        self.policies = {p.name: p for p in policies}
        self.antipatterns = []

    async def search(self, query, *, workload_classes, limit, workload_key=""):
        return [services_pb2.SearchHit(policy=p) for p in self.policies.values()][:limit]

    async def get(self, name, version=""):
        if name not in self.policies:
            raise NotFound(name)
        return self.policies[name]

    async def list_policies(self):
        return list(self.policies.values())

    async def list_antipatterns(self, *, workload_class, limit):
        return [a for a in self.antipatterns if a.workload_class == workload_class][:limit]

    async def record_antipattern(self, antipattern):
        self.antipatterns.append(antipattern)

    async def record_outcome(self, policy, record):
        p = self.policies[policy.name]
        p.history.add().CopyFrom(record)
        return p

    async def promote(self, policy, reason):
        self.policies[policy.name].status = policy_pb2.POLICY_PROMOTED

    async def deprecate(self, policy, reason):
        self.policies[policy.name].status = policy_pb2.POLICY_DEPRECATED


class Observer:
    """Observes `make -j8`; ``cls`` is what the classifier made of this (short) run."""

    def __init__(self, cls=common_pb2.PARALLEL_BUILD, profile_id="prof-1"):
        self.cls, self.profile_id = cls, profile_id

    async def observe(self):
        p = profile(self.cls)
        p.profile_id = self.profile_id
        return p


class Verifier:
    """Scores a configuration by its slice: the longer, the better for a build (a stand-in model)."""

    def __init__(self, *, passing=True, scale=50000.0):
        self.passing = passing
        self.scale = scale
        self.seen = []

    async def verify(self, plan, progress):
        self.seen.append(plan)
        v = verdict_pb2.Verdict(verdict_id=f"v{len(self.seen)}", plan=plan, passed=self.passing)
        if not self.passing:
            v.stages.add(name="dynamic", status=verdict_pb2.STAGE_FAILED).findings.add(rule="stall")
            return v
        slice_us = tunables_from_proto(plan.tunables).get("slice_us", 20000)
        v.performance.score = 0.9 + slice_us / self.scale
        v.performance.repetitions = 3
        v.performance.metrics.add(
            metric="makespan_s", baseline=10.0, candidate=10.0 / v.performance.score
        )
        return v


class Executor:
    def __init__(self):
        self.deployed = []

    async def deploy(self, verdict, progress):
        self.deployed.append(verdict)
        return Deployment(phase="PHASE_COMPLETE", message="ok", rollout_id="r1")


def loop(repo, verifier, executor, llm=None, observer=None, **planner_settings):
    return OptimizationLoop(
        observer=observer or Observer(),
        planner=Planner(
            repository=repo,
            llm=llm,
            history=Learner(repository=repo),
            settings=PlannerSettings(**planner_settings),
        ),
        verifier=verifier,
        executor=executor,
        learner=Learner(repository=repo),
        settings=LoopSettings(max_candidates=3),
    )


async def test_best_measured_candidate_is_deployed_and_the_second_run_reuses_it_for_free():
    repo = SharedRepository([fifo(), wvtime()])
    executor = Executor()
    llm = ScriptedLlm({"rank": {"choice": "c0", "rationale": "first"}})
    first = await loop(repo, Verifier(), executor, llm).run()
    doc = first.to_json()
    assert doc["deployed"]["policy"] == first.winner.plan.policy.name
    assert first.winner.performance.score == max(v.performance.score for v in first.verdicts)
    assert doc["llm_tokens"] > 0 and doc["improvement"] > 1.0
    assert doc["baseline"] == {"makespan_s": 10.0} and doc["result"]["makespan_s"] < 10.0
    assert {
        "profile",
        "plans",
        "verdicts",
        "deployed",
        "baseline",
        "result",
        "improvement",
        "llm_tokens",
        "wall_s",
    } <= set(doc)

    second = await loop(repo, Verifier(), executor, llm).run()
    assert second.llm_tokens == 0
    assert "reuse" in second.plans[0].rationale
    assert second.plans[0].tunables == first.winner.plan.tunables


async def test_a_rerun_classified_differently_still_reuses_the_win_for_free():
    # fifo targets BATCH_LONG_TAIL and PARALLEL_BUILD, wvtime LATENCY_SERVER:
    # the second run's class alone would point elsewhere.
    repo = SharedRepository([fifo(), wvtime()])
    llm = ScriptedLlm({"rank": {"choice": "c0", "rationale": "first"}})
    first = await loop(repo, Verifier(), Executor(), llm).run()
    assert first.llm_tokens > 0
    recorded = repo.policies[first.winner.plan.policy.name].history
    # Every record (verdicts and the deployment outcome) carries the workload's key.
    assert {r.workload_key for r in recorded} == {workload_key(["make", "-j8"])}
    assert {r.source for r in recorded} == {"verdict", "deployment"}

    rerun = Observer(common_pb2.LATENCY_SERVER, profile_id="prof-2")
    second = await loop(repo, Verifier(), Executor(), llm, observer=rerun).run()
    assert second.profile.workload_class == common_pb2.LATENCY_SERVER
    assert second.llm_tokens == 0
    assert "won on this workload (same workload key, recorded as PARALLEL_BUILD)" in (
        second.plans[0].rationale
    )
    assert second.plans[0].policy == first.winner.plan.policy
    # Measured as the class its win was measured under, so the verifier's cache applies.
    assert second.plans[0].profile.workload_class == common_pb2.PARALLEL_BUILD
    assert second.plans[0].tunables == first.winner.plan.tunables


async def test_nothing_beating_eevdf_deploys_nothing():
    executor = Executor()
    result = await loop(SharedRepository([fifo()]), Verifier(scale=10**9), executor).run()
    assert result.winner is not None and result.to_json()["deployed"] is None
    assert executor.deployed == [] and "nothing beats EEVDF" in result.message


async def test_verifier_rejections_refine_then_give_up_with_an_antipattern():
    repo = SharedRepository([fifo()])
    result = await loop(repo, Verifier(passing=False), Executor(), max_iterations=2).run()
    assert result.winner is None and result.to_json()["deployed"] is None
    assert [p.iteration for p in result.plans if p.iteration] == [1, 2]
    assert any(a.stage == "dynamic" for a in repo.antipatterns)
    assert result.plans[-1].path == plan_pb2.CONFIGURE_EXISTING
