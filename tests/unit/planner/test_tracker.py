from schedcp.v1 import plan_pb2, profile_pb2, verdict_pb2
from services.planner.tracker import RefinementTracker


def plans(profile_id: str, n: int) -> list[plan_pb2.Plan]:
    return [
        plan_pb2.Plan(
            plan_id=f"{profile_id}-{i}",
            candidate_index=i,
            profile=profile_pb2.WorkloadProfile(profile_id=profile_id),
        )
        for i in range(n)
    ]


def verdict(plan: plan_pb2.Plan, passed: bool, score: float = 0.0) -> verdict_pb2.Verdict:
    v = verdict_pb2.Verdict(plan=plan, passed=passed)
    v.performance.score = score
    return v


def test_refines_the_best_failure_once_the_whole_round_failed():
    t = RefinementTracker()
    ps = plans("a", 3)
    t.expect(ps)
    assert t.observe(verdict(ps[0], False, 0.8)) is None
    assert t.observe(verdict(ps[1], False, 0.9)) is None
    chosen = t.observe(verdict(ps[2], False, 0.0))
    assert chosen is not None and chosen.plan.plan_id == "a-1"
    assert t.observe(verdict(ps[2], False)) is None  # redelivery: nothing new


def test_a_passing_sibling_means_no_refinement():
    t = RefinementTracker()
    ps = plans("b", 2)
    t.expect(ps)
    assert t.observe(verdict(ps[0], True, 1.2)) is None
    assert t.observe(verdict(ps[1], False)) is None


def test_foreign_verdicts_are_ignored():
    assert RefinementTracker().observe(verdict(plans("c", 1)[0], False)) is None
