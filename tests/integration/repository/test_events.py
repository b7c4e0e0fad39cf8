"""Verdicts and outcomes applied to a real store: effects, lineage and idempotency."""

from __future__ import annotations

import pytest

from schedcp.digests import sha256_digest
from schedcp.v1 import plan_pb2
from schedcp.workload_key import workload_key
from services.repository.events import RepositoryEvents
from services.repository.store import (
    Policy,
    PolicyMetadata,
    PolicyNotFound,
    PolicyStatus,
    WorkloadClass,
)

from .messages import outcome, verdict

S = PolicyStatus


@pytest.fixture
def events(store) -> RepositoryEvents:  # type: ignore[no-untyped-def]
    store.put(Policy(name="edf", version="1", source="/* edf */\n",
                     metadata=PolicyMetadata(description="Earliest deadline first.",
                                             target_workloads=(WorkloadClass.LATENCY_SERVER,))),
              status=S.PROMOTED)
    store.put(Policy(name="cand", version="1", source="/* cand */\n",
                     metadata=PolicyMetadata(description="A candidate from the planner.")))
    return RepositoryEvents(store=store)


def test_passed_verdict_records_performance_and_verifies_a_candidate_once(store, events) -> None:  # type: ignore[no-untyped-def]
    v = verdict("v1", policy="cand", version="1", score=1.7)
    events.apply_verdict(v)
    events.apply_verdict(v)  # redelivered
    got = store.get("cand", "1")
    assert got.status is S.VERIFIED
    assert [(r.ratio, r.source, r.source_id, r.workload_class) for r in got.history] == \
        [(1.7, "verdict", "v1", WorkloadClass.LATENCY_SERVER)]
    assert got.history[0].tunables == {"budget_us": 1500} and got.history[0].metric == "p99_latency_us"
    assert got.history[0].workload_key == workload_key(["nginx", "-g", "daemon off;"])
    assert [c.to_status for c in store.status_history("cand", "1")] == [S.CANDIDATE, S.VERIFIED]


def test_passed_verdict_for_new_code_stores_it_as_a_verified_child(store, events) -> None:  # type: ignore[no-untyped-def]
    src = "/* edf with a tighter budget */\n"
    v = verdict("v2", policy="edf", version="1", source=src, patch="--- a\n+++ b\n", path=plan_pb2.PATCH)
    events.apply_verdict(v)
    events.apply_verdict(v)
    child = store.find_by_source_digest(sha256_digest(src.encode()))
    assert child is not None and child.name == "edf" and child.parent == "edf@1"
    assert child.status is S.VERIFIED and len(child.history) == 1 and child.patch == "--- a\n+++ b\n"
    assert [p.version for p in store.list(all_versions=True) if p.name == "edf"] == ["1", child.version]
    assert store.get("edf", "1").history == ()  # the parent's record is untouched


def test_failed_verdict_becomes_an_antipattern_once(store, events) -> None:  # type: ignore[no-untyped-def]
    v = verdict("v3", policy="edf", version="1", passed=False, source="/* broken */\n", path=plan_pb2.PATCH)
    events.apply_verdict(v)
    events.apply_verdict(v)
    (ap,) = store.list_antipatterns(name="edf")
    assert ap.stage == "kernel_verifier" and "map_value_or_null" in ap.reason
    assert ap.findings[0].line == 42 and ap.source_digest == sha256_digest(b"/* broken */\n")
    assert store.find_by_source_digest(ap.source_digest) is None  # failed code is not stored as a policy


def test_outcomes_record_history_and_failures_become_antipatterns(store, events) -> None:  # type: ignore[no-untyped-def]
    events.apply_outcome(outcome("o1", policy="edf", improvement=1.3))
    events.apply_outcome(outcome("o1", policy="edf", improvement=1.3))
    events.apply_outcome(outcome("o2", policy="edf", improvement=0.7, success=False, reason="breaker: p99 regressed"))
    history = store.get("edf").history
    assert [(r.ratio, r.success, r.source) for r in history] == [(1.3, True, "deployment"), (0.7, False, "deployment")]
    (ap,) = store.list_antipatterns(name="edf")
    assert ap.stage == "deployment" and ap.reason == "breaker: p99 regressed"


def test_outcome_for_an_unknown_policy_raises_so_the_bus_retries_then_dead_letters(store, events) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyNotFound):
        events.apply_outcome(outcome("o9", policy="ghost"))
    assert not store.is_processed("perf:deployment:o9")
