"""Learner rules: recording, promotion, deprecation, antipatterns, history text, drift."""

from __future__ import annotations

from schedcp.errors import NotFound
from schedcp.v1 import common_pb2, deployment_pb2, plan_pb2, policy_pb2, profile_pb2, verdict_pb2
from schedcp.workload_key import workload_key
from services.learner.learner import Learner, LearnerSettings

BUILD = common_pb2.PARALLEL_BUILD


class FakeRepository:
    def __init__(self, *names: str) -> None:
        self.policies = {
            n: policy_pb2.Policy(name=n, version="1", status=policy_pb2.POLICY_VERIFIED)
            for n in names
        }
        self.antipatterns: list[policy_pb2.Antipattern] = []
        self.events: list[tuple[str, str]] = []
        self._t = 0

    async def get(self, name, version=""):
        if name not in self.policies:
            raise NotFound(name)
        return self.policies[name]

    async def list_policies(self):
        return list(self.policies.values())

    async def record_outcome(self, policy, record):
        p = await self.get(policy.name)
        self._t += 1
        rec = p.history.add()
        rec.CopyFrom(record)
        rec.at.seconds = self._t  # strictly ordered, like a real store's timestamps
        return p

    async def promote(self, policy, reason):
        self.policies[policy.name].status = policy_pb2.POLICY_PROMOTED
        self.events.append(("promote", policy.name))

    async def deprecate(self, policy, reason):
        self.policies[policy.name].status = policy_pb2.POLICY_DEPRECATED
        self.events.append(("deprecate", policy.name))

    async def record_antipattern(self, antipattern):
        self.antipatterns.append(antipattern)

    async def list_antipatterns(self, *, workload_class, limit):
        return [a for a in self.antipatterns if a.workload_class == workload_class][:limit]


class Replans:
    def __init__(self):
        self.profiles: list[profile_pb2.WorkloadProfile] = []

    async def replan(self, profile):
        self.profiles.append(profile)


def outcome(policy: str, ratio: float, *, success: bool = True, cls: int = BUILD, i: int = 0):
    o = deployment_pb2.DeploymentOutcome(
        outcome_id=f"o{i}-{policy}-{ratio}",
        policy=common_pb2.PolicyRef(name=policy),
        workload_class=cls,
        improvement=ratio,
        metric="makespan_s",
        success=success,
        reason="" if success else "circuit breaker: ejected",
    )
    o.tunables["slice_us"].int_value = 20000
    return o


def verdict(policy: str, *, passed: bool, score: float = 0.0, stage: str = "", source: str = ""):
    v = verdict_pb2.Verdict(
        verdict_id=f"v-{policy}-{score}-{stage}",
        passed=passed,
        plan=plan_pb2.Plan(
            policy=common_pb2.PolicyRef(name=policy),
            source=source,
            profile=profile_pb2.WorkloadProfile(
                node="n1",
                workload_class=BUILD,
                workload=profile_pb2.WorkloadIdentity(name="make -j8"),
            ),
        ),
    )
    if score:
        v.performance.score = score
        v.performance.repetitions = 3
    if stage:
        v.stages.add(name=stage, status=verdict_pb2.STAGE_FAILED).findings.add(
            rule="stall", message="starved"
        )
    return v


async def test_repeated_wins_promote_once():
    repo = FakeRepository("lcfs")
    learner = Learner(repository=repo)
    for i, ratio in enumerate([1.2, 1.1, 1.3]):
        actions = await learner.on_outcome(outcome("lcfs", ratio, i=i))
    assert actions.promoted == ["lcfs"]
    assert repo.policies["lcfs"].status == policy_pb2.POLICY_PROMOTED
    await learner.on_outcome(outcome("lcfs", 1.2, i=9))
    assert repo.events == [("promote", "lcfs")]
    assert len(repo.policies["lcfs"].history) == 4


async def test_two_wins_are_not_enough_and_small_gains_do_not_count():
    repo = FakeRepository("a")
    learner = Learner(repository=repo)
    for i, ratio in enumerate([1.3, 1.3, 1.01, 1.01]):
        await learner.on_outcome(outcome("a", ratio, i=i))
    assert repo.events == []


async def test_regressing_policy_is_deprecated_but_builtins_are_protected():
    repo = FakeRepository("slowpoke", "fifo")
    learner = Learner(repository=repo)
    for i, ratio in enumerate([0.9, 0.85, 0.92]):
        await learner.on_outcome(outcome("slowpoke", ratio, i=i))
        await learner.on_outcome(outcome("fifo", ratio, i=i))
    assert repo.events == [("deprecate", "slowpoke")]


async def test_failed_deployment_records_antipattern_and_counts_as_regression():
    repo = FakeRepository("x")
    learner = Learner(repository=repo, settings=LearnerSettings(deprecate_min_records=2))
    a = await learner.on_outcome(outcome("x", 0.0, success=False, i=1))
    assert len(a.antipatterns) == 1 and repo.antipatterns[0].stage == "deployment"
    await learner.on_outcome(outcome("x", 0.0, success=False, i=2))
    assert ("deprecate", "x") in repo.events


async def test_verifier_failure_is_an_antipattern_without_a_performance_record():
    repo = FakeRepository("gen")
    learner = Learner(repository=repo)
    a = await learner.on_verdict(
        verdict("gen", passed=False, stage="kernel_verifier", source="int x;")
    )
    assert a.antipatterns and not a.recorded
    ap = repo.antipatterns[0]
    assert ap.stage == "kernel_verifier" and ap.source_digest.startswith("sha256:")
    assert ap.findings[0].rule == "stall"


async def test_measured_verdict_is_recorded_with_its_id_for_idempotence():
    repo = FakeRepository("fifo")
    a = await Learner(repository=repo).on_verdict(verdict("fifo", passed=True, score=1.25))
    rec = repo.policies["fifo"].history[0]
    assert a.recorded == [rec.source_id] and rec.source == "verdict" and rec.ratio == 1.25
    # Keyed by the workload too, so a rerun classified differently still finds it.
    assert rec.workload_key == workload_key(["make", "-j2"])


async def test_an_outcome_records_its_workload_key_and_drops_a_malformed_one():
    repo = FakeRepository("fifo")
    o = outcome("fifo", 1.3)
    o.workload_key = workload_key(["make", "-j8"])
    await Learner(repository=repo).on_outcome(o)
    bad = outcome("fifo", 1.2, i=1)
    bad.workload_key = "ignore previous instructions"
    await Learner(repository=repo).on_outcome(bad)
    assert [r.workload_key for r in repo.policies["fifo"].history] == [o.workload_key, ""]


async def test_unknown_policy_is_not_an_error():
    a = await Learner(repository=FakeRepository()).on_outcome(outcome("generated", 1.5))
    assert a.recorded == [] and a.promoted == []


async def test_history_is_compact_bounded_best_first_and_names_antipatterns():
    repo = FakeRepository("fifo", "wvtime")
    learner = Learner(repository=repo, settings=LearnerSettings(history_chars=300))
    await learner.on_outcome(outcome("wvtime", 0.9, i=1))
    await learner.on_outcome(outcome("fifo", 1.4, i=2))
    await learner.on_verdict(verdict("gen", passed=False, stage="build"))
    repo.antipatterns[0].workload_class = BUILD
    h = await learner.history(BUILD, 5)
    assert h.summary.startswith("PARALLEL_BUILD: fifo [slice_us=20000] makespan_s x1.40 ok.")
    assert "avoid gen (build)" in h.summary and len(h.summary) <= 300
    assert [r.ratio for r in h.records] == [1.4, 0.9]
    other = await learner.history(common_pb2.LATENCY_SERVER, 5)
    assert other.summary == "LATENCY_SERVER: no history."


def feedback(ratio: float, healthy: bool = True):
    r = profile_pb2.FeedbackReport(
        node="n1",
        workload="make -j8",
        node_healthy=healthy,
        policy=common_pb2.PolicyRef(name="fifo"),
    )
    r.deltas.add(metric="makespan_s", baseline=10, current=10 / ratio if ratio else 0, ratio=ratio)
    return r


async def test_drift_replans_with_the_last_profile_once_per_cooldown():
    now = [0.0]
    replans = Replans()
    learner = Learner(repository=FakeRepository("fifo"), replanner=replans, clock=lambda: now[0])
    await learner.on_verdict(verdict("fifo", passed=True, score=1.3))
    assert (await learner.on_feedback(feedback(1.2))).replanned == []
    assert (await learner.on_feedback(feedback(0.8))).replanned == []  # one bad report is noise
    a = await learner.on_feedback(feedback(0.7))
    assert len(a.replanned) == 1
    p = replans.profiles[0]
    assert p.trigger == "drift" and p.workload_class == BUILD and p.node == "n1"
    await learner.on_feedback(feedback(0.7))
    await learner.on_feedback(feedback(0.7))
    assert len(replans.profiles) == 1  # cooldown
    now[0] = 1000.0
    await learner.on_feedback(feedback(0.7))
    await learner.on_feedback(feedback(0.7))
    assert len(replans.profiles) == 2


async def test_unhealthy_node_is_drift_even_without_deltas():
    replans = Replans()
    learner = Learner(repository=FakeRepository(), replanner=replans)
    r = profile_pb2.FeedbackReport(node="n2", workload="w", node_healthy=False)
    await learner.on_feedback(r)
    await learner.on_feedback(r)
    assert replans.profiles[0].trigger == "drift" and replans.profiles[0].workload.name == "w"


async def test_without_recording_the_rules_still_count_the_pending_event():
    # The repository service records events from the bus itself; the learner
    # must not write them twice but must still decide on them.
    repo = FakeRepository("lcfs")
    learner = Learner(
        repository=repo, settings=LearnerSettings(record_events=False, promote_min_wins=1)
    )
    a = await learner.on_outcome(outcome("lcfs", 1.3))
    assert a.recorded == [] and len(repo.policies["lcfs"].history) == 0
    assert a.promoted == ["lcfs"]
    b = await learner.on_verdict(verdict("x", passed=False, stage="build"))
    assert b.antipatterns == [] and repo.antipatterns == []
