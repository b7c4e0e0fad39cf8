"""Pure logic of the repository contract: validation, lifecycle, ranking, conversion, seeding."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from schedcp.digests import sha256_digest
from services.repository import convert
from services.repository.seed import policy_from_metadata
from services.repository.store import (
    IllegalTransition,
    InvalidPolicy,
    Limits,
    PerformanceRecord,
    Policy,
    PolicyMetadata,
    PolicyStatus,
    TunableSpec,
    TunableType,
    WorkloadClass,
    check_transition,
    content_digest,
    document_text,
    historical_ratio,
    keyword_fraction,
    normalise_policy,
    parse_ref,
    query_terms,
    rank_score,
    tunable_from_json,
    validate_tunables,
)

S = PolicyStatus


def make_policy(**kw: object) -> Policy:
    base = Policy(name="edf", version="1", source="int main;\n",
                  metadata=PolicyMetadata(description="Earliest deadline first", tags=("edf", "Latency"),
                                          target_workloads=(WorkloadClass.LATENCY_SERVER,)),
                  tunables=(TunableSpec("slice_us", TunableType.UINT, 5000, 100, 100000),))
    return replace(base, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------ validation


@pytest.mark.parametrize("spec, message", [
    (TunableSpec("x", TunableType.INT, 5, 10, 1), "min <= default <= max"),
    (TunableSpec("x", TunableType.INT, 50, 0, 10), "min <= default <= max"),
    (TunableSpec("x", TunableType.UINT, 1, -1, 10), "does not fit uint"),
    (TunableSpec("x", TunableType.INT, 1.5, 0, 10), "not a whole number"),
    (TunableSpec("x", TunableType.BOOL, 1), "true/false"),
    (TunableSpec("x", 9, 1, 0, 10), "unknown type"),  # type: ignore[arg-type]
    (TunableSpec("1bad", TunableType.INT, 1, 0, 10), "C identifier"),
    (TunableSpec("x", TunableType.FLOAT, math.nan, 0, 10), "finite"),
    (TunableSpec("x", TunableType.INT, "3", 0, 10), "not a number"),  # type: ignore[arg-type]
])
def test_invalid_tunables_are_refused_with_the_reason(spec: TunableSpec, message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        validate_tunables([spec])


def test_duplicate_tunable_names_are_refused() -> None:
    spec = TunableSpec("x", TunableType.INT, 1, 0, 10)
    with pytest.raises(InvalidPolicy, match="declared twice"):
        validate_tunables([spec, spec])


def test_valid_tunables_pass() -> None:
    validate_tunables([TunableSpec("a", TunableType.INT, -5, -10, 10), TunableSpec("b", TunableType.BOOL, True),
                       TunableSpec("c", TunableType.FLOAT, 0.5, 0.0, 1.0)])


def test_normalise_fills_digest_and_canonicalises_tags() -> None:
    p = normalise_policy(make_policy())
    assert p.source_digest == sha256_digest(b"int main;\n")
    assert p.metadata.tags == ("edf", "latency")


@pytest.mark.parametrize("change, message", [
    ({"name": "Bad Name"}, "policy name"),
    ({"version": ""}, "policy version"),
    ({"version": "1/2"}, "policy version"),
    ({"source": "  "}, "source is empty"),
    ({"source_digest": "sha256:" + "0" * 64}, "does not match the source"),
    ({"artifact_digest": "md5:abc"}, "artifact_digest"),
    ({"parent": "edf"}, "must be name@version"),
    ({"metadata": PolicyMetadata(description="")}, "description is empty"),
])
def test_normalise_refuses_bad_policies(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        normalise_policy(make_policy(**change))


def test_oversized_source_names_the_limit() -> None:
    with pytest.raises(InvalidPolicy, match="over the limit of 100 bytes"):
        normalise_policy(make_policy(source="x" * 101), limits=Limits(max_source_bytes=100))


def test_content_digest_covers_immutable_fields_only() -> None:
    p = normalise_policy(make_policy())
    assert content_digest(p) == content_digest(replace(p, status=S.PROMOTED, history=()))
    assert content_digest(p) != content_digest(normalise_policy(make_policy(source="int other;\n")))
    assert content_digest(p) != content_digest(normalise_policy(make_policy(patch="--- a\n")))


def test_parse_ref() -> None:
    assert parse_ref("edf@2") == ("edf", "2")
    assert parse_ref("edf") == ("edf", "")


# ------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("current, target", [
    (S.CANDIDATE, S.VERIFIED), (S.CANDIDATE, S.DEPRECATED), (S.VERIFIED, S.PROMOTED),
    (S.VERIFIED, S.DEPRECATED), (S.PROMOTED, S.DEPRECATED),
])
def test_legal_transitions(current: PolicyStatus, target: PolicyStatus) -> None:
    assert check_transition("p@1", current, target, reason="", was_verified=False) is True


@pytest.mark.parametrize("current, target", [
    (S.CANDIDATE, S.PROMOTED), (S.PROMOTED, S.VERIFIED), (S.PROMOTED, S.CANDIDATE),
    (S.DEPRECATED, S.VERIFIED), (S.VERIFIED, S.CANDIDATE),
])
def test_illegal_transitions(current: PolicyStatus, target: PolicyStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot go from {current.name} to {target.name}"):
        check_transition("p@1", current, target, reason="r", was_verified=True)


def test_same_status_is_a_no_op() -> None:
    assert check_transition("p@1", S.PROMOTED, S.PROMOTED, reason="", was_verified=True) is False


def test_repromotion_needs_reason_and_past_verification() -> None:
    with pytest.raises(IllegalTransition, match="needs a reason"):
        check_transition("p@1", S.DEPRECATED, S.PROMOTED, reason="", was_verified=True)
    with pytest.raises(IllegalTransition, match="without ever being verified"):
        check_transition("p@1", S.DEPRECATED, S.PROMOTED, reason="ok", was_verified=False)
    assert check_transition("p@1", S.DEPRECATED, S.PROMOTED, reason="regression fixed upstream",
                            was_verified=True)


# --------------------------------------------------------------- ranking


def rec(ratio: float, success: bool = True) -> PerformanceRecord:
    return PerformanceRecord(workload_class=WorkloadClass.BATCH_LONG_TAIL, metric="makespan_s", ratio=ratio,
                             success=success)


def test_history_moves_the_score_and_is_shrunk_toward_no_gain() -> None:
    base = rank_score(similarity=0.5, keyword=0.0, records=[], status=S.VERIFIED)
    assert base == pytest.approx(0.5)
    one_good = rank_score(similarity=0.5, keyword=0.0, records=[rec(2.0)], status=S.VERIFIED)
    many_good = rank_score(similarity=0.5, keyword=0.0, records=[rec(2.0)] * 10, status=S.VERIFIED)
    bad = rank_score(similarity=0.5, keyword=0.0, records=[rec(0.5)] * 10, status=S.VERIFIED)
    assert bad < base < one_good < many_good
    # One lucky run cannot beat a clearly better description match.
    assert one_good < rank_score(similarity=0.6, keyword=0.0, records=[], status=S.VERIFIED)


def test_failed_records_count_as_at_most_no_gain() -> None:
    assert historical_ratio([rec(3.0, success=False)]) == 1.0
    assert historical_ratio([rec(0.4, success=False)]) == 0.4
    assert historical_ratio([]) == 0.0


def test_keyword_fraction_and_query_terms() -> None:
    terms = query_terms("The tail latency of a web server")
    assert terms == ["latency", "server", "tail", "web"]
    assert keyword_fraction(terms, "low tail latency for servers") == 0.75
    assert keyword_fraction([], "anything") == 0.0


def test_document_text_mentions_targets_and_tags() -> None:
    text = document_text(normalise_policy(make_policy()))
    assert "Earliest deadline first" in text and "latency-sensitive servers" in text and "edf" in text


# ------------------------------------------------------ seeding metadata


def test_policy_from_metadata_parses_the_bpf_json_format() -> None:
    meta = {"name": "fifo", "description": "One queue.", "target_workloads": ["CPU_THROUGHPUT"],
            "tags": ["baseline"], "tunables": [
                {"name": "slice_us", "type": "uint", "default": 20000, "min": 100, "max": 1000000,
                 "description": "slice", "unit": "us"},
                {"name": "direct_idle", "type": "bool", "default": True, "description": "", "unit": ""}]}
    p = normalise_policy(policy_from_metadata(meta, "src"))
    assert p.version == "1" and p.metadata.target_workloads == (WorkloadClass.CPU_THROUGHPUT,)
    assert [t.type for t in p.tunables] == [TunableType.UINT, TunableType.BOOL]


def test_policy_from_metadata_rejects_unknown_workload_class() -> None:
    with pytest.raises(InvalidPolicy, match="unknown target workload 'GAMING'"):
        policy_from_metadata({"name": "x", "description": "d", "target_workloads": ["GAMING"]}, "src")


def test_tunable_from_json_rejects_unknown_type() -> None:
    with pytest.raises(InvalidPolicy, match="unknown"):
        tunable_from_json({"name": "x", "type": "string"})


# ------------------------------------------------------------- conversion


def test_policy_round_trips_through_proto() -> None:
    p = normalise_policy(make_policy(parent="base@1", patch="--- a\n+++ b\n",
                                     artifact_digest="sha256:" + "a" * 64))
    p = replace(p, tunables=(*p.tunables, TunableSpec("boost", TunableType.BOOL, True)),
                status=S.VERIFIED, history=(rec(1.5),))
    back = convert.policy_from_proto_full(convert.policy_to_proto(p))
    assert back == p


def test_proto_with_unset_workload_class_is_refused() -> None:
    from schedcp.v1 import policy_pb2

    msg = policy_pb2.PerformanceRecord(workload_class=0, metric="m", ratio=1.0)
    with pytest.raises(InvalidPolicy, match="workload class 0"):
        convert.record_from_proto(msg)
