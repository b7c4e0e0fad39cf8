"""Performance half of the dynamic stage: candidate vs EEVDF in the same VM.

Runs the Plan's workload class (the first reference workload of that class,
with small parameters so a candidate costs tens of seconds under TCG) in an
interleaved ABBA order — EEVDF, candidate, candidate, EEVDF, ... — so drift in
the VM affects both sides alike. Medians per side, an oriented ratio per metric
(>1 better than EEVDF), a score on the workload's primary metric, and a
regression threshold that fails the stage.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.verifier.domain import Finding, MetricComparison, PerformanceResult, Severity

#: Workload parameters that keep one repetition to a few seconds under TCG.
#: The verifier compares schedulers, it does not benchmark them: shorter runs
#: with the same shape are enough to catch a regression past the threshold.
QUICK_PARAMS: dict[str, dict[str, int]] = {
    "wakeup-server": {"runtime_s": 3, "warmup_s": 1},
    "interactive": {"runtime_s": 3, "warmup_s": 1},
    "hackbench": {"loops": 100},
    "parallel-build": {"units": 16, "libraries": 3},
    "batch-long-tail": {"short_tasks": 16, "long_tasks": 2, "long_kiter": 30000},
}


@dataclass
class PerfOutcome:
    result: PerformanceResult | None
    findings: list[Finding] = field(default_factory=list)


def compare_metrics(baseline: Mapping[str, Sequence[float]], candidate: Mapping[str, Sequence[float]],
                    *, higher_is_better: Mapping[str, bool],
                    units: Mapping[str, str] | None = None) -> list[MetricComparison]:
    """Medians and oriented ratios (>1 is better than the baseline) per metric."""
    out = []
    for name, hib in higher_is_better.items():
        b, c = list(baseline.get(name, ())), list(candidate.get(name, ()))
        if not b or not c:
            continue
        mb, mc = statistics.median(b), statistics.median(c)
        if hib:
            ratio = mc / mb if mb else 1.0
        else:
            ratio = mb / mc if mc else 1.0
        spread = (max(c) - min(c)) / mc if mc else 0.0
        out.append(MetricComparison(metric=name, baseline=mb, candidate=mc, ratio=ratio,
                                    higher_is_better=hib, spread=spread,
                                    unit=(units or {}).get(name, "")))
    return out


def judge_performance(metrics: list[MetricComparison], *, primary: str, workload: str,
                      repetitions: int, threshold_pct: float) -> PerfOutcome:
    """Score = ratio on the primary metric; fail past ``threshold_pct`` regression."""
    prim = next((m for m in metrics if m.metric == primary), None)
    score = prim.ratio if prim else 0.0
    result = PerformanceResult(workload=workload, metrics=metrics, score=score,
                               repetitions=repetitions, regression_threshold_pct=threshold_pct)
    findings = []
    if prim is None:
        findings.append(Finding(Severity.ERROR, "performance-missing",
                                f"{workload} did not report its primary metric {primary}"))
    elif score < 1.0 - threshold_pct / 100.0:
        findings.append(Finding(
            Severity.ERROR, "performance-regression",
            f"{workload}: {primary} is {(1 - score) * 100:.1f}% worse than EEVDF "
            f"(candidate {prim.candidate:.4g} vs {prim.baseline:.4g} {prim.unit}); the limit "
            f"is {threshold_pct:.0f}%",
            hint="tune the scheduler for this workload class or keep EEVDF"))
    elif score < 1.0:
        findings.append(Finding(Severity.INFO, "performance",
                                f"{workload}: {primary} within threshold ({score:.3f}x EEVDF)"))
    else:
        findings.append(Finding(Severity.INFO, "performance",
                                f"{workload}: {primary} {score:.3f}x EEVDF"))
    return PerfOutcome(result, findings)


class WorkloadABRunner:
    """A/B a loaded candidate against EEVDF on a node, ABBA-interleaved."""

    def __init__(self, *, repetitions: int = 2, threshold_pct: float = 10.0,
                 params: Mapping[str, Mapping[str, int]] | None = None,
                 timeout_s: float = 120.0) -> None:
        self.repetitions = repetitions
        self.threshold_pct = threshold_pct
        self.params = dict(params or QUICK_PARAMS)
        self.timeout_s = timeout_s

    def compare(self, *, node: Any, ctx: Any) -> PerfOutcome:
        from schedcp.substrate.build import REPO_ROOT
        from schedcp.workloads import prepare, workload_command, workloads_for_class
        from schedcp.workloads.spec import parse_result

        specs = workloads_for_class(ctx.candidate.workload)
        if not specs:
            return PerfOutcome(None, [Finding(Severity.WARNING, "performance-skipped",
                                              f"no reference workload for class "
                                              f"{ctx.candidate.workload}")])
        spec = specs[0]
        prepare(spec.name)
        argv = workload_command(spec.name, self.params.get(spec.name))
        wrapped = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(REPO_ROOT), *argv]
        runs: dict[str, dict[str, list[float]]] = {"base": {}, "cand": {}}
        loaded = True
        order = []
        for i in range(self.repetitions):
            order += ["base", "cand"] if i % 2 == 0 else ["cand", "base"]
        for side in order:
            want_loaded = side == "cand"
            if want_loaded != loaded:
                if want_loaded:
                    node.load(ctx.object_path, tunables=ctx.candidate.tunables,
                              ops_overrides={"timeout_ms": 5000})
                else:
                    node.unload(ctx.loaded_name)
                loaded = want_loaded
            res = node.run(wrapped, timeout_s=self.timeout_s)
            parsed = parse_result(str(getattr(res, "stdout", "")), spec)
            for k, v in parsed.metrics.items():
                runs[side].setdefault(k, []).append(v)
        if not loaded:
            node.load(ctx.object_path, tunables=ctx.candidate.tunables,
                      ops_overrides={"timeout_ms": 5000})
        state = node.state(ctx.loaded_name)
        metrics = compare_metrics(runs["base"], runs["cand"],
                                  higher_is_better={m.name: m.higher_is_better for m in spec.metrics},
                                  units={m.name: m.unit for m in spec.metrics})
        out = judge_performance(metrics, primary=spec.primary_metric, workload=spec.name,
                                repetitions=self.repetitions, threshold_pct=self.threshold_pct)
        if getattr(state, "ejected", False) or not getattr(state, "enabled", True):
            out.findings.append(Finding(Severity.ERROR, "ejected",
                                        "the scheduler was ejected during the performance run"))
        return out
