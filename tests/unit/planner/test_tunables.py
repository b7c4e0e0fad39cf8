import math

import pytest

from schedcp.v1 import common_pb2, policy_pb2
from services.planner.tunables import (
    InvalidTunable,
    coerce,
    ranges,
    sanitize_tunables,
    search_tunables,
)

from .fakes import fifo, profile, wvtime


def test_llm_values_are_clamped_typed_and_unknown_names_dropped():
    specs = ranges(wvtime().tunables)
    values, notes = sanitize_tunables(
        {"slice_us": 0, "max_lag_slices": 99.7, "rm -rf": 1, "slice_us_extra": True}, specs
    )
    assert values == {"slice_us": 100, "max_lag_slices": 8}
    assert any("unknown" in n for n in notes) and any("slice_us: 0 -> 100" in n for n in notes)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "5000", None, True])
def test_non_numbers_are_rejected_for_numeric_tunables(bad):
    r = ranges(wvtime().tunables)["slice_us"]
    with pytest.raises(InvalidTunable):
        coerce(r, bad)


def test_rejected_value_falls_back_to_default():
    values, notes = sanitize_tunables({"slice_us": "zero"}, ranges(wvtime().tunables))
    assert values["slice_us"] == 5000 and notes


def test_bool_tunable_needs_a_bool():
    r = ranges(fifo().tunables)["direct_idle"]
    assert coerce(r, False) is False
    with pytest.raises(InvalidTunable):
        coerce(r, 1)


def test_search_moves_slices_by_workload_direction_and_stays_in_range():
    build = search_tunables(fifo().tunables, profile(common_pb2.PARALLEL_BUILD), limit=8)
    latency = search_tunables(wvtime().tunables, profile(common_pb2.LATENCY_SERVER), limit=8)
    assert build[0]["slice_us"] > 20000  # throughput: longer slices first
    assert latency[0]["slice_us"] < 5000  # latency: shorter slices first
    for values in build + latency:
        assert 100 <= values["slice_us"] <= 100000
    assert len({tuple(sorted(v.items())) for v in build}) == len(build)  # no duplicates


def test_search_is_deterministic_and_bounded():
    p = profile(common_pb2.PARALLEL_BUILD)
    assert search_tunables(fifo().tunables, p, limit=3) == search_tunables(
        fifo().tunables, p, limit=3
    )
    assert len(search_tunables(fifo().tunables, p, limit=3)) == 3
    assert search_tunables([], p, limit=3) == [{}]
    empty_range = policy_pb2.TunableSpec(name="x", type=policy_pb2.TUNABLE_INT)
    empty_range.default.int_value = 7
    assert all(v["x"] == 7 for v in search_tunables([empty_range], p, limit=5))
