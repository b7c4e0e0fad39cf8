"""Tier 3: the feedback channel after a deployment.

Compares the workload's metrics now against a baseline recorded before the
deployment and reports each as a ratio (>1 is better, whatever the metric's
direction). The learner uses the report to judge an outcome; the executor's
circuit breaker uses it to roll back. Metrics come from tier 1 (proxies the
observer can always measure: run-queue wait, involuntary switches, completion
rate, CPU delivered) and, when the caller has them, application metrics the
workload itself reported (makespan, p99 latency, throughput).

Baselines are either passed in, or recorded earlier with ``record_baseline``
under a key (the rollout id) and looked up by it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from schedcp.errors import InvalidArgument
from schedcp.v1 import common_pb2, profile_pb2
from services.observer.tier1 import Target, Tier1Sampler
from services.observer.untrusted import clean_text

#: Ratios are capped so one metric going from ~0 to something cannot dominate.
MAX_RATIO = 1000.0


@dataclass(frozen=True)
class MetricDef:
    higher_is_better: bool
    unit: str


#: Metrics tier 1 measures (feature name -> direction).
PROXY_METRICS: dict[str, MetricDef] = {
    "cpu_utilization": MetricDef(True, "CPUs"),
    "runqueue_wait_us_mean": MetricDef(False, "us"),
    "runqueue_wait_fraction": MetricDef(False, "fraction"),
    "involuntary_ctx_switches_per_s": MetricDef(False, "1/s"),
    "voluntary_ctx_switches_per_s": MetricDef(True, "1/s"),
    "task_exits_per_s": MetricDef(True, "1/s"),
    "task_lifetime_ms_mean": MetricDef(False, "ms"),
    "psi_cpu_some_avg10": MetricDef(False, "%"),
}

#: Application metrics a workload may report itself (reference workloads print these).
APP_METRICS: dict[str, MetricDef] = {
    "makespan_s": MetricDef(False, "s"),
    "p50_latency_us": MetricDef(False, "us"),
    "p99_latency_us": MetricDef(False, "us"),
    "p99_wakeup_latency_us": MetricDef(False, "us"),
    "throughput_ops_per_s": MetricDef(True, "1/s"),
    "mean_completion_s": MetricDef(False, "s"),
}


def metric_def(name: str) -> MetricDef | None:
    """Direction and unit of a known metric; suffix rules for app-specific names."""
    if name in PROXY_METRICS:
        return PROXY_METRICS[name]
    if name in APP_METRICS:
        return APP_METRICS[name]
    lowered = name.lower()
    if lowered.endswith(("_s", "_ms", "_us", "_ns")) and ("latency" in lowered or "time" in lowered
                                                          or "makespan" in lowered or "wait" in lowered):
        return MetricDef(False, lowered.rsplit("_", 1)[1])
    if "per_s" in lowered or "throughput" in lowered or lowered.endswith("_ops"):
        return MetricDef(True, "1/s")
    return None


def ratio(baseline: float, current: float, higher_is_better: bool) -> float:
    """Improvement factor: >1 better. Zero and non-finite inputs are handled, result capped."""
    if not (math.isfinite(baseline) and math.isfinite(current)):
        return 1.0
    num, den = (current, baseline) if higher_is_better else (baseline, current)
    if den <= 0:
        return 1.0 if num <= 0 else MAX_RATIO
    return max(0.0, min(MAX_RATIO, num / den))


def proxy_metrics(f: profile_pb2.WorkloadFeatures) -> dict[str, float]:
    """The tier-1 proxy metrics of a feature set."""
    return {name: float(getattr(f, name)) for name in PROXY_METRICS}


def compute_deltas(baseline: Mapping[str, float], current: Mapping[str, float]) -> list[profile_pb2.MetricDelta]:
    """One MetricDelta per baseline metric that has a current value and a known direction."""
    out: list[profile_pb2.MetricDelta] = []
    for name in sorted(baseline):
        d = metric_def(name)
        if d is None or name not in current:
            continue
        b, c = float(baseline[name]), float(current[name])
        out.append(profile_pb2.MetricDelta(metric=name, baseline=b, current=c,
                                           ratio=ratio(b, c, d.higher_is_better),
                                           higher_is_better=d.higher_is_better, unit=d.unit))
    return out


def sched_ext_state(root: Path = Path("/sys/kernel/sched_ext")) -> str | None:
    """"enabled"/"disabled"/... or None when the kernel has no sched_ext."""
    try:
        return (root / "state").read_text().strip()
    except OSError:
        return None


class FeedbackChannel:
    """Produces FeedbackReports for one node."""

    def __init__(self, *, node: str, tier1: Tier1Sampler | None = None,
                 sched_ext_state: Callable[[], str | None] = sched_ext_state) -> None:
        self.node = node
        self.tier1 = tier1 or Tier1Sampler()
        self._state = sched_ext_state
        self._baselines: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def record_baseline(self, key: str, target: Target, window: float) -> dict[str, float]:
        """Measure the proxy metrics now and keep them as the baseline for ``key``."""
        if not key:
            raise InvalidArgument("a baseline needs a key (the rollout id)", hint="pass --rollout ID")
        metrics = proxy_metrics(self.tier1.observe(target, window).features)
        with self._lock:
            self._baselines[key] = metrics
        return metrics

    def baseline(self, key: str) -> dict[str, float] | None:
        with self._lock:
            found = self._baselines.get(key)
            return dict(found) if found is not None else None

    def report(self, target: Target, *, window: float, baseline: Mapping[str, float] | None = None,
               rollout_id: str = "", policy: common_pb2.PolicyRef | None = None,
               app_metrics: Mapping[str, float] | None = None) -> profile_pb2.FeedbackReport:
        """Measure now and compare against ``baseline`` (or the one recorded for ``rollout_id``)."""
        base = dict(baseline or {})
        if not base and rollout_id:
            base = self.baseline(rollout_id) or {}
        if not base:
            raise InvalidArgument("no baseline to compare against",
                                  hint="pass baseline metrics, or record one for this rollout id first")
        unknown = [k for k in base if metric_def(k) is None]
        if unknown:
            raise InvalidArgument(
                f"unknown metric(s) in the baseline: {', '.join(clean_text(k, limit=40) for k in unknown[:5])}",
                hint=f"use tier-1 metrics ({', '.join(PROXY_METRICS)}) or application metrics "
                     f"({', '.join(APP_METRICS)})")
        t1 = self.tier1.observe(target, window)
        current = proxy_metrics(t1.features)
        current.update({k: float(v) for k, v in (app_metrics or {}).items()})
        deltas = compute_deltas(base, current)
        if not deltas:
            raise InvalidArgument("none of the baseline metrics can be measured now",
                                  hint="application metrics need their current values too")
        rep = profile_pb2.FeedbackReport(node=self.node, workload=t1.identity.name, rollout_id=rollout_id,
                                         window_seconds=t1.window_seconds)
        if policy is not None:
            rep.policy.CopyFrom(policy)
        rep.deltas.extend(deltas)
        rep.at.GetCurrentTime()
        state = self._state()
        # A deployment that expects a policy on a node whose sched_ext is not
        # enabled (ejected by the watchdog, or never there) is unhealthy.
        rep.node_healthy = not (policy is not None and policy.name and state != "enabled")
        return rep
