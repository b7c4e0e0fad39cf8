"""Bus message contract: stamping, encoding and the refusals that lead to the DLQ."""

from __future__ import annotations

import pytest

from schedcp import SCHEMA_VERSION, codec
from schedcp.errors import ContractError
from schedcp.v1 import plan_pb2, profile_pb2


def _profile() -> profile_pb2.WorkloadProfile:
    p = profile_pb2.WorkloadProfile(node="n1", profile_id="p1")
    p.workload.cmdline.extend(["make", "-j8"])
    return p


def test_stamp_fills_meta_and_roundtrips() -> None:
    msg = codec.stamp(_profile(), producer="observer", trace_context={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    data, headers = codec.encode(msg)
    assert headers[codec.HEADER_TYPE] == "schedcp.v1.WorkloadProfile"
    assert headers[codec.HEADER_MSG_ID] == msg.meta.message_id
    assert headers["traceparent"].startswith("00-111")
    back = codec.decode(data, headers, profile_pb2.WorkloadProfile)
    assert back.meta.schema_version == SCHEMA_VERSION
    assert back.meta.correlation_id == msg.meta.correlation_id
    assert list(back.workload.cmdline) == ["make", "-j8"]


def test_correlation_id_is_inherited_from_the_message_being_handled() -> None:
    token = codec.current_correlation_id.set("loop-42")
    try:
        msg = codec.stamp(plan_pb2.Plan(), producer="planner")
    finally:
        codec.current_correlation_id.reset(token)
    assert msg.meta.correlation_id == "loop-42"


def test_explicit_ids_win() -> None:
    msg = codec.stamp(_profile(), producer="x", correlation_id="c", message_id="m")
    assert (msg.meta.correlation_id, msg.meta.message_id) == ("c", "m")


def test_wrong_schema_header_is_refused() -> None:
    data, headers = codec.encode(codec.stamp(_profile(), producer="x"))
    headers[codec.HEADER_SCHEMA] = "schedcp.v2"
    with pytest.raises(ContractError, match="schema version"):
        codec.decode(data, headers, profile_pb2.WorkloadProfile)


def test_wrong_meta_version_is_refused_even_without_headers() -> None:
    msg = codec.stamp(_profile(), producer="x")
    msg.meta.schema_version = "schedcp.v0"
    with pytest.raises(ContractError, match="schema_version"):
        codec.decode(msg.SerializeToString(), {}, profile_pb2.WorkloadProfile)


def test_wrong_type_is_refused() -> None:
    data, headers = codec.encode(codec.stamp(plan_pb2.Plan(), producer="x"))
    with pytest.raises(ContractError, match="expected"):
        codec.decode(data, headers, profile_pb2.WorkloadProfile)


def test_garbage_is_refused() -> None:
    with pytest.raises(ContractError, match="not a valid"):
        codec.decode(b"\xff\xff\xff\x07garbage", {}, profile_pb2.WorkloadProfile)


def test_unstamped_message_is_refused() -> None:
    unstamped = _profile()
    with pytest.raises(ContractError, match="schema_version"):
        codec.decode(unstamped.SerializeToString(), {}, profile_pb2.WorkloadProfile)
    unstamped.meta.schema_version = SCHEMA_VERSION
    with pytest.raises(ContractError, match="message_id"):
        codec.decode(unstamped.SerializeToString(), {}, profile_pb2.WorkloadProfile)
    with pytest.raises(ContractError, match="not stamped"):
        codec.encode(_profile())


def test_oversized_message_is_refused() -> None:
    msg = codec.stamp(_profile(), producer="x")
    msg.description = "x" * (codec.MAX_MESSAGE_BYTES + 1)
    with pytest.raises(ContractError, match="bus limit"):
        codec.encode(msg)
