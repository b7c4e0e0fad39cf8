"""The circuit breaker: when a deployment must be reverted, and why.

It trips on the first of: the kernel ejected the scheduler (or sched_ext is
no longer enabled with it), the node failed a health check, or the target
metric regressed against the baseline measured before the deployment by more
than the threshold. Metrics are compared as improvement ratios oriented so
that above 1 is better, whatever the metric's direction.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trip:
    kind: str  # "ejected" | "health" | "regression"
    reason: str
    metric: str = ""
    value: float = 0.0
    threshold: float = 0.0


def ratio(baseline: float, current: float, *, higher_is_better: bool) -> float:
    """Improvement factor of ``current`` over ``baseline`` (>1 is better)."""
    if baseline <= 0 or current <= 0:
        return 1.0 if baseline == current else (float("inf") if (current > baseline) == higher_is_better else 0.0)
    return current / baseline if higher_is_better else baseline / current


@dataclass(frozen=True)
class CircuitBreaker:
    #: Largest tolerated regression of the target metric, percent.
    regression_threshold_pct: float = 10.0

    def check_state(self, *, expected_ops: str, sched_ext_state: str, root_ops: str, ejected: bool,
                    exit_reason: str = "") -> Trip | None:
        if ejected or sched_ext_state != "enabled" or root_ops != expected_ops:
            why = exit_reason or f"sched_ext state {sched_ext_state!r}, root ops {root_ops!r}"
            return Trip(kind="ejected", reason=f"the kernel no longer runs {expected_ops}: {why}")
        return None

    def check_health(self, *, healthy: bool, detail: str) -> Trip | None:
        return None if healthy else Trip(kind="health", reason=f"node health check failed: {detail}")

    def check_metric(self, *, metric: str, baseline: float, current: float, higher_is_better: bool) -> Trip | None:
        r = ratio(baseline, current, higher_is_better=higher_is_better)
        floor = 1.0 - self.regression_threshold_pct / 100.0
        if r < floor:
            return Trip(kind="regression",
                        reason=(f"{metric} regressed to {r:.3f}x of the baseline "
                                f"({baseline:.4g} -> {current:.4g}); the limit is {floor:.3f}x"),
                        metric=metric, value=r, threshold=floor)
        return None
