"""Every kind of bus message has a one-line human summary in `schedcp watch`."""

from __future__ import annotations

from schedcp.cli.stack import WATCHED, describe
from schedcp.v1 import common_pb2, plan_pb2, profile_pb2, verdict_pb2


def test_every_watched_type_is_described() -> None:
    for kind, (subject, mtype) in WATCHED.items():
        if mtype is None:
            continue
        assert describe(subject, mtype()).strip(), kind


def test_profile_line_names_the_class_and_tier() -> None:
    p = profile_pb2.WorkloadProfile(node="n1", workload_class=common_pb2.BATCH_LONG_TAIL, class_confidence=0.8,
                                    tier=profile_pb2.TIER_SUMMARY)
    p.workload.name = "make -j8"
    line = describe("schedcp.v1.profiles.n1", p)
    assert "class=BATCH_LONG_TAIL" in line and "tier=TIER_SUMMARY" in line and "make -j8" in line


def test_verdict_line_shows_stage_outcomes() -> None:
    v = verdict_pb2.Verdict(passed=False)
    v.stages.add(name="build", status=verdict_pb2.STAGE_PASSED)
    v.stages.add(name="static", status=verdict_pb2.STAGE_FAILED)
    v.plan.CopyFrom(plan_pb2.Plan())
    assert "FAIL" in describe("schedcp.v1.verdicts", v) and "static=failed" in describe("schedcp.v1.verdicts", v)
