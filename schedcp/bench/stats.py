"""Statistics of an A/B comparison: medians, spreads and oriented ratios.

Medians rather than means because scheduler measurements have heavy tails
(one run that collides with a host hiccup must not move the result). The
ratio is always oriented so that > 1 means the candidate is better than the
baseline, whatever the metric's direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median; the mean of the middle two for an even count."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method), q in [0, 1]."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / median: how far apart the repetitions landed.

    This is the ``spread`` of ``schedcp.v1.MetricComparison``; 0.1 means the
    repetitions spanned 10% of their median. 0 for a single value.
    """
    if len(values) < 2:
        return 0.0
    mid = median(values)
    width = max(values) - min(values)
    if mid == 0:
        return 0.0 if width == 0 else math.inf
    return width / abs(mid)


def relative_iqr(values: Sequence[float]) -> float:
    """Interquartile range over the median (robust to one outlier)."""
    if len(values) < 2:
        return 0.0
    mid = median(values)
    width = quantile(values, 0.75) - quantile(values, 0.25)
    if mid == 0:
        return 0.0 if width == 0 else math.inf
    return width / abs(mid)


def improvement_ratio(baseline: float, candidate: float, *, higher_is_better: bool) -> float:
    """How many times better the candidate is than the baseline (> 1 better).

    For a higher-is-better metric that is candidate / baseline; for a
    lower-is-better one (latency, makespan) baseline / candidate. A zero
    denominator gives inf when the other side is positive, 1 when both are 0.
    """
    num, den = (candidate, baseline) if higher_is_better else (baseline, candidate)
    if den <= 0:
        return 1.0 if num <= 0 else math.inf
    return num / den


def ratio_bounds(baseline: Sequence[float], candidate: Sequence[float], *,
                 higher_is_better: bool) -> tuple[float, float]:
    """The worst and best ratio any baseline/candidate pairing of runs gives.

    A deliberately pessimistic interval: if even the worst pairing is > 1 the
    candidate won in every combination of runs.
    """
    ratios = [improvement_ratio(b, c, higher_is_better=higher_is_better)
              for b in baseline for c in candidate]
    return min(ratios), max(ratios)


def format_ratio(ratio: float) -> str:
    """'1.23x better' / '0.81x (worse)': a ratio as people read it."""
    if math.isinf(ratio):
        return "inf (baseline 0)"
    if ratio >= 1:
        return f"{ratio:.2f}x better"
    return f"{ratio:.2f}x (worse)"
