"""Statistics of the A/B engine: medians, spreads and ratio orientation."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcp.bench.stats import (
    format_ratio,
    improvement_ratio,
    median,
    quantile,
    ratio_bounds,
    relative_iqr,
    relative_spread,
)


def test_median_odd_and_even():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_quantile_matches_linear_interpolation():
    values = [10.0, 20.0, 30.0, 40.0]
    assert quantile(values, 0.0) == 10.0
    assert quantile(values, 1.0) == 40.0
    assert quantile(values, 0.5) == 25.0
    assert quantile(values, 0.25) == pytest.approx(17.5)


def test_relative_spread_is_range_over_median():
    assert relative_spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)
    assert relative_spread([5.0]) == 0.0
    assert relative_spread([0.0, 0.0]) == 0.0
    assert math.isinf(relative_spread([-1.0, 0.0, 1.0]))


def test_relative_iqr_ignores_a_single_outlier():
    values = [10.0, 10.0, 10.0, 10.0, 100.0]
    assert relative_iqr(values) == 0.0
    assert relative_spread(values) == pytest.approx(9.0)


def test_ratio_is_oriented_so_above_one_is_better():
    # Lower is better (latency): halving it is a 2x improvement.
    assert improvement_ratio(200.0, 100.0, higher_is_better=False) == 2.0
    assert improvement_ratio(100.0, 200.0, higher_is_better=False) == 0.5
    # Higher is better (throughput): doubling it is a 2x improvement.
    assert improvement_ratio(100.0, 200.0, higher_is_better=True) == 2.0
    assert improvement_ratio(200.0, 100.0, higher_is_better=True) == 0.5


def test_ratio_with_zero_values():
    assert improvement_ratio(0.0, 0.0, higher_is_better=False) == 1.0
    assert math.isinf(improvement_ratio(5.0, 0.0, higher_is_better=False))
    assert math.isinf(improvement_ratio(0.0, 5.0, higher_is_better=True))


def test_ratio_bounds_cover_every_pairing():
    lo, hi = ratio_bounds([10.0, 12.0], [5.0, 6.0], higher_is_better=False)
    assert lo == pytest.approx(10.0 / 6.0)
    assert hi == pytest.approx(12.0 / 5.0)


def test_format_ratio_says_which_way():
    assert format_ratio(1.5) == "1.50x better"
    assert "worse" in format_ratio(0.8)


@given(st.lists(st.floats(min_value=0.001, max_value=1e6), min_size=1, max_size=30),
       st.booleans())
def test_ratio_of_a_sample_against_itself_is_one(values, higher):
    m = median(values)
    assert improvement_ratio(m, m, higher_is_better=higher) == pytest.approx(1.0)


@given(st.floats(min_value=0.001, max_value=1e6), st.floats(min_value=0.001, max_value=1e6))
def test_orientation_is_symmetric(a, b):
    up = improvement_ratio(a, b, higher_is_better=True)
    down = improvement_ratio(a, b, higher_is_better=False)
    assert up * down == pytest.approx(1.0)
