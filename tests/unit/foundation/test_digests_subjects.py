"""Digests the tokens depend on, and subject naming."""

from __future__ import annotations

import pytest

from schedcp import digests, subjects
from schedcp.errors import InvalidArgument
from schedcp.v1 import plan_pb2


def test_config_digest_is_order_independent_and_type_sensitive() -> None:
    a = digests.config_digest({"slice_us": 5000, "boost": True})
    b = digests.config_digest({"boost": True, "slice_us": 5000})
    assert a == b and a.startswith("sha256:") and len(a) == 7 + 64
    assert digests.config_digest({"slice_us": 5000}) != digests.config_digest({"slice_us": "5000"})
    assert digests.config_digest({}) == digests.sha256_digest(b"{}")


@pytest.mark.parametrize("bad", [{"x": float("inf")}, {"x": [1]}, {"": 1}])
def test_canonical_json_refuses_what_cannot_be_a_tunable(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidArgument):
        digests.canonical_tunables_json(bad)


def test_tunables_proto_roundtrip() -> None:
    plan = plan_pb2.Plan()
    values = {"slice_us": 20000, "ratio": 0.5, "boost": False, "mode": "fifo"}
    digests.tunables_to_proto(values, plan.tunables)
    assert digests.tunables_from_proto(plan.tunables) == values


def test_subjects_sanitise_node_names_and_apply_prefix() -> None:
    assert subjects.profile_subject("web-1.example.com") == "schedcp.v1.profiles.web-1_example_com"
    assert subjects.deployment_subject("a b*>") == "schedcp.v1.deployments.a_b__"
    assert subjects.with_prefix(subjects.PLANS, "t1") == "t1.schedcp.v1.plans"
    assert subjects.stream_name("") == "SCHEDCP" and subjects.stream_name("t1") == "SCHEDCP_T1"


def test_trace_file_template_names_one_file_per_service() -> None:
    from schedcp.tracing import trace_file_for

    assert trace_file_for("/t/{service}.jsonl", "schedcp-planner") == "/t/planner.jsonl"
    assert trace_file_for("/t/spans.jsonl", "schedcp-planner") == "/t/spans.jsonl"
