"""Tier 3 arithmetic: directions, ratios, deltas, bad baselines."""

import pytest

from schedcp.errors import InvalidArgument
from services.observer.feedback import MAX_RATIO, FeedbackChannel, compute_deltas, metric_def, ratio
from services.observer.tier1 import Target


def test_ratio_directions_and_edges() -> None:
    assert ratio(100.0, 50.0, higher_is_better=False) == 2.0  # latency halved
    assert ratio(100.0, 50.0, higher_is_better=True) == 0.5  # throughput halved
    assert ratio(0.0, 0.0, higher_is_better=True) == 1.0
    assert ratio(0.0, 5.0, higher_is_better=True) == MAX_RATIO
    assert ratio(float("nan"), 1.0, higher_is_better=True) == 1.0


def test_metric_directions() -> None:
    assert metric_def("makespan_s").higher_is_better is False
    assert metric_def("runqueue_wait_us_mean").higher_is_better is False
    assert metric_def("requests_per_s").higher_is_better is True
    assert metric_def("wakeup_p99_us") is None or metric_def("wakeup_p99_us").higher_is_better is False
    assert metric_def("favourite_colour") is None


def test_deltas_only_for_measurable_metrics() -> None:
    deltas = compute_deltas({"makespan_s": 10.0, "cpu_utilization": 1.0}, {"makespan_s": 8.0})
    assert [(d.metric, round(d.ratio, 3)) for d in deltas] == [("makespan_s", 1.25)]


def test_unknown_or_missing_baseline_is_a_clear_error_before_measuring() -> None:
    ch = FeedbackChannel(node="n")
    with pytest.raises(InvalidArgument, match="no baseline"):
        ch.report(Target(node=True), window=0.1)
    with pytest.raises(InvalidArgument, match="unknown metric"):
        ch.report(Target(node=True), window=0.1, baseline={"favourite_colour": 1.0})
