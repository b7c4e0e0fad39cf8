"""Performance half of the dynamic stage: candidate vs EEVDF in the same VM.

Runs the Plan's workload class (the first reference workload of that class,
with small parameters so a candidate costs tens of seconds under TCG) in an
interleaved ABBA order — EEVDF, candidate, candidate, EEVDF, ... — so drift in
the VM affects both sides alike. Medians per side, an oriented ratio per metric
(>1 better than EEVDF), a score on the workload's primary metric.

The decision is a sequential test, because run-to-run noise of a TCG guest on
a shared host is of the same order as the regression threshold:

* a median ratio within the threshold passes at once;
* a median ratio past it fails only on clear evidence: a one-sided exact
  Mann-Whitney test that the candidate's runs are worse than EEVDF's runs
  *shifted by the threshold* (H0: the regression is at most the threshold),
  at ``alpha`` (0.01). With 2 runs a side no split is clear enough (the
  smallest possible p is 1/6), so the check adds ABBA blocks;
* it adds repetitions up to ``max_repetitions`` per side and decides then: a
  regression that is still not clear is reported as inconclusive (a warning),
  not as a failure, and the finding says how noisy each side was.
"""

from __future__ import annotations

import enum
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
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
    "batch-long-tail": {"short_tasks": 16, "short_kiter": 10000, "long_tasks": 2, "long_kiter": 200000},
}


@dataclass(frozen=True)
class SequentialPolicy:
    """How much evidence the performance check gathers before it decides."""

    #: Runs per side in the first round (ABBA-interleaved).
    repetitions: int = 2
    #: Most runs per side; more are added two at a time (one ABBA block).
    max_repetitions: int = 6
    #: Largest regression on the primary metric that still passes, percent.
    threshold_pct: float = 10.0
    #: One-sided significance needed to call a regression past the threshold.
    #: Stricter than the usual 0.05: the test looks at the data up to three
    #: times (2, 4, 6 runs), and host load comes in bursts that span adjacent
    #: runs (ABBA puts two runs of a side next to each other), so runs are not
    #: quite independent. At 0.05 two library schedulers failed on p99 wakeup
    #: latency with p = 0.014 and 0.032 on a host at load 10, where the same
    #: schedulers had measured 0.66x and 2.97x EEVDF an hour earlier.
    alpha: float = 0.01
    #: A regression measured while the host was busy (CPU pressure at least
    #: BUSY_HOST_PRESSURE) is measured once more after waiting up to this
    #: long for the host to calm down; the second measurement decides. 0: no
    #: second look. Like the starvation check's confirmation run, it keeps a
    #: burst of host load from failing a good scheduler, and a real
    #: regression fails twice.
    calm_wait_s: float = 120.0

    def __post_init__(self) -> None:
        if self.repetitions < 1:
            raise ValueError("repetitions must be at least 1")
        if self.max_repetitions < self.repetitions:
            raise ValueError(f"max_repetitions ({self.max_repetitions}) is below repetitions "
                             f"({self.repetitions})")
        if not 0.0 <= self.threshold_pct < 100.0:
            raise ValueError("threshold_pct must be in [0, 100)")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if self.calm_wait_s < 0:
            raise ValueError("calm_wait_s must not be negative")


class Decision(enum.Enum):
    PASS = "pass"
    REGRESSION = "regression"
    #: Past the threshold on the median, but the runs do not show it clearly
    #: even at the maximum number of repetitions: a warning, not a failure.
    INCONCLUSIVE = "inconclusive"
    #: Not decided yet: run another ABBA block.
    MORE = "more"


#: Host CPU pressure past which a regression finding says the host, not only
#: the scheduler, may have made the difference (see host_cpu_stall_us).
BUSY_HOST_PRESSURE = 0.25


def host_cpu_stall_us(path: str = "/proc/pressure/cpu") -> float | None:
    """Cumulative microseconds in which some host task waited for a CPU (PSI),
    or None where the kernel has no PSI (or hides it from this container)."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("some "):
                    fields = dict(f.split("=", 1) for f in line.split()[1:])
                    return float(fields["total"])
    except (OSError, ValueError, KeyError):
        return None
    return None


def pressure_share(before: float | None, after: float | None, wall_s: float) -> float:
    """Share of ``wall_s`` the host spent with CPU waiters, 0..1; -1 if unknown."""
    if before is None or after is None or wall_s <= 0 or after < before:
        return -1.0
    return min(1.0, (after - before) / 1e6 / wall_s)


def _host_note(pressure: float) -> str:
    if pressure < 0:
        return ""
    return f"; host CPU pressure during the A/B {pressure:.0%}"


@dataclass
class PerfOutcome:
    result: PerformanceResult | None
    findings: list[Finding] = field(default_factory=list)
    decision: Decision = Decision.PASS


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / |median|: how far apart one side's runs were."""
    if not values:
        return 0.0
    med = statistics.median(values)
    return (max(values) - min(values)) / abs(med) if med else 0.0


def oriented_ratio(baseline: float, candidate: float, *, higher_is_better: bool) -> float:
    """>1 when the candidate is better than the baseline, whatever the direction."""
    if higher_is_better:
        return candidate / baseline if baseline else 1.0
    return baseline / candidate if candidate else 1.0


def compare_metrics(baseline: Mapping[str, Sequence[float]], candidate: Mapping[str, Sequence[float]],
                    *, higher_is_better: Mapping[str, bool],
                    units: Mapping[str, str] | None = None) -> list[MetricComparison]:
    """Medians, oriented ratios (>1 is better than the baseline) and spreads per metric."""
    out = []
    for name, hib in higher_is_better.items():
        b, c = list(baseline.get(name, ())), list(candidate.get(name, ()))
        if not b or not c:
            continue
        mb, mc = statistics.median(b), statistics.median(c)
        out.append(MetricComparison(metric=name, baseline=mb, candidate=mc,
                                    ratio=oriented_ratio(mb, mc, higher_is_better=hib),
                                    higher_is_better=hib, spread=relative_spread(c),
                                    unit=(units or {}).get(name, ""),
                                    baseline_spread=relative_spread(b)))
    return out


@lru_cache(maxsize=256)
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of orderings of m x's and n y's per value of U (pairs x > y)."""
    if m == 0 or n == 0:
        return (1,)
    # The largest element is an x (it beats all n y's) or a y (beats nothing).
    with_x, with_y = _u_counts(m - 1, n), _u_counts(m, n - 1)
    out = [0] * (m * n + 1)
    for u, c in enumerate(with_x):
        out[u + n] += c
    for u, c in enumerate(with_y):
        out[u] += c
    return tuple(out)


def regression_p_value(baseline: Sequence[float], candidate: Sequence[float], *,
                       higher_is_better: bool, threshold_pct: float) -> float:
    """One-sided exact Mann-Whitney p that the candidate regresses past the threshold.

    H0: the candidate is at most ``threshold_pct`` worse than the baseline. The
    baseline's runs are moved by the threshold (a multiplicative shift, as the
    ratio is), then U counts the (baseline, candidate) pairs where the candidate
    is worse (ties count half). p = P(U >= observed) under H0.
    """
    if not baseline or not candidate:
        return 1.0
    keep = 1.0 - threshold_pct / 100.0
    if higher_is_better:
        shifted = [b * keep for b in baseline]
        worse = [[c < s for s in shifted] for c in candidate]
        ties = [[math.isclose(c, s) for s in shifted] for c in candidate]
    else:
        shifted = [b / keep if keep else math.inf for b in baseline]
        worse = [[c > s for s in shifted] for c in candidate]
        ties = [[math.isclose(c, s) for s in shifted] for c in candidate]
    u = sum(1.0 if w and not t else (0.5 if t else 0.0)
            for wr, tr in zip(worse, ties, strict=True) for w, t in zip(wr, tr, strict=True))
    counts = _u_counts(len(candidate), len(baseline))
    total = sum(counts)
    at_least = sum(c for k, c in enumerate(counts) if k >= u - 1e-9)
    return at_least / total


def judge_performance(baseline: Mapping[str, Sequence[float]],
                      candidate: Mapping[str, Sequence[float]], *, primary: str, workload: str,
                      higher_is_better: Mapping[str, bool], policy: SequentialPolicy,
                      units: Mapping[str, str] | None = None,
                      host_pressure: float = -1.0) -> PerfOutcome:
    """One step of the sequential test on the runs so far (pure: no VM).

    ``host_pressure`` (0..1, -1 unknown) does not change the decision, which
    stays the measurement's; it goes into the result and, when high, into the
    finding, so whoever reads a regression knows the host was contended.

    ``decision`` is MORE while a regression past the threshold is neither
    clear nor ruled out and fewer than ``policy.max_repetitions`` runs per
    side exist; the caller then runs another ABBA block and asks again.
    """
    metrics = compare_metrics(baseline, candidate, higher_is_better=higher_is_better, units=units)
    prim = next((m for m in metrics if m.metric == primary), None)
    b = list(baseline.get(primary, ()))
    c = list(candidate.get(primary, ()))
    n = min(len(b), len(c))
    limit = 1.0 - policy.threshold_pct / 100.0
    p = (regression_p_value(b, c, higher_is_better=higher_is_better.get(primary, True),
                            threshold_pct=policy.threshold_pct) if prim else 1.0)
    score = prim.ratio if prim else 0.0
    if prim is None:
        decision = Decision.REGRESSION
    elif score >= limit:
        decision = Decision.PASS
    elif p <= policy.alpha:
        decision = Decision.REGRESSION
    elif n < policy.max_repetitions:
        decision = Decision.MORE
    else:
        decision = Decision.INCONCLUSIVE
    result = PerformanceResult(workload=workload, metrics=metrics, score=score, repetitions=n,
                               regression_threshold_pct=policy.threshold_pct,
                               max_repetitions=policy.max_repetitions, p_value=p,
                               decision=decision.value, host_cpu_pressure=host_pressure)
    findings: list[Finding] = []
    if prim is None:
        findings.append(Finding(Severity.ERROR, "performance-missing",
                                f"{workload} did not report its primary metric {primary}"))
        return PerfOutcome(result, findings, decision)
    noise = (f"{n} runs per side, spread EEVDF {prim.baseline_spread:.0%} / candidate "
             f"{prim.spread:.0%}{_host_note(host_pressure)}")
    busy = host_pressure >= BUSY_HOST_PRESSURE
    worse_pct = (1 - score) * 100
    if decision is Decision.REGRESSION:
        findings.append(Finding(
            Severity.ERROR, "performance-regression",
            f"{workload}: {primary} is {worse_pct:.1f}% worse than EEVDF (candidate "
            f"{prim.candidate:.4g} vs {prim.baseline:.4g} {prim.unit}, {noise}); the limit is "
            f"{policy.threshold_pct:.0f}% and the runs show it clearly (one-sided p={p:.3f} "
            f"<= {policy.alpha:g})",
            hint=("the host was busy: the vCPUs competed with other host work, which can hurt a "
                  "scheduler more than EEVDF in the VM without showing on a real node; re-verify "
                  "on a quieter host (`schedcp verify ... --no-cache`), else tune the scheduler "
                  "for this workload class or keep EEVDF") if busy else
                 "tune the scheduler for this workload class or keep EEVDF"))
    elif decision is Decision.INCONCLUSIVE:
        findings.append(Finding(
            Severity.WARNING, "performance-inconclusive",
            f"{workload}: {primary} median is {worse_pct:.1f}% worse than EEVDF, past the "
            f"{policy.threshold_pct:.0f}% limit, but the runs overlap too much to call it a "
            f"regression (p={p:.3f} > {policy.alpha:g} after {noise}); passed",
            hint="measure it with `schedcp bench` on a quieter host before relying on it"))
    elif decision is Decision.MORE:
        findings.append(Finding(
            Severity.INFO, "performance",
            f"{workload}: {primary} median {worse_pct:.1f}% worse than EEVDF after {noise}; "
            f"not clear yet (p={p:.3f}), adding repetitions"))
    else:
        findings.append(Finding(Severity.INFO, "performance",
                                f"{workload}: {primary} {score:.3f}x EEVDF (passes: the limit is "
                                f"{policy.threshold_pct:.0f}% worse; {noise})"))
    return PerfOutcome(result, findings, decision)


def abba_order(start: int, count: int) -> list[str]:
    """Sides for repetitions ``start .. start+count-1``: base,cand then cand,base."""
    order: list[str] = []
    for i in range(start, start + count):
        order += ["base", "cand"] if i % 2 == 0 else ["cand", "base"]
    return order


def _measure(run_one: Callable[[str], Mapping[str, float]], *, primary: str, workload: str,
             higher_is_better: Mapping[str, bool], policy: SequentialPolicy,
             units: Mapping[str, str] | None, pressure: Callable[[], float | None],
             clock: Callable[[], float]) -> PerfOutcome:
    runs: dict[str, dict[str, list[float]]] = {"base": {}, "cand": {}}
    done = 0
    batch = policy.repetitions
    stall0, t0 = pressure(), clock()
    while True:
        for side in abba_order(done, batch):
            for k, v in run_one(side).items():
                runs[side].setdefault(k, []).append(float(v))
        done += batch
        share = pressure_share(stall0, pressure(), clock() - t0)
        out = judge_performance(runs["base"], runs["cand"], primary=primary, workload=workload,
                                higher_is_better=higher_is_better, units=units, policy=policy,
                                host_pressure=share)
        if out.decision is not Decision.MORE:
            return out
        # One ABBA block more, never past the maximum.
        batch = min(2, policy.max_repetitions - done)


def wait_for_calm(pressure: Callable[[], float | None], *, limit_s: float,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic,
                  window_s: float = 5.0) -> tuple[float, float]:
    """Wait until a ``window_s`` window shows host CPU pressure below
    BUSY_HOST_PRESSURE, for at most ``limit_s``: (seconds waited, last share)."""
    start = clock()
    share = -1.0
    while clock() - start < limit_s:
        before, t = pressure(), clock()
        sleep(min(window_s, max(0.0, limit_s - (t - start))))
        share = pressure_share(before, pressure(), clock() - t)
        if 0 <= share < BUSY_HOST_PRESSURE:
            break
    return clock() - start, share


def run_sequential(run_one: Callable[[str], Mapping[str, float]], *, primary: str, workload: str,
                   higher_is_better: Mapping[str, bool], policy: SequentialPolicy,
                   units: Mapping[str, str] | None = None,
                   pressure: Callable[[], float | None] = host_cpu_stall_us,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> PerfOutcome:
    """Run ABBA blocks through ``run_one(side)`` ("base" or "cand" -> metrics)
    until :func:`judge_performance` decides; the node handling is the caller's.

    A regression found while the host was busy is measured once more after
    the host calms down (``policy.calm_wait_s``), and that measurement decides.
    """
    kw = dict(primary=primary, workload=workload, higher_is_better=higher_is_better,
              policy=policy, units=units, pressure=pressure, clock=clock)
    first = _measure(run_one, **kw)  # type: ignore[arg-type]
    busy = first.result is not None and first.result.host_cpu_pressure >= BUSY_HOST_PRESSURE
    if first.decision is not Decision.REGRESSION or not busy or policy.calm_wait_s <= 0:
        return first
    assert first.result is not None
    waited, share = wait_for_calm(pressure, limit_s=policy.calm_wait_s, sleep=sleep, clock=clock)
    second = _measure(run_one, **kw)  # type: ignore[arg-type]
    calm = (f"the host calmed to {share:.0%} after {waited:.0f} s" if 0 <= share < BUSY_HOST_PRESSURE
            else f"the host was still busy after {waited:.0f} s")
    second.findings.insert(0, Finding(
        Severity.INFO, "performance-remeasured",
        f"{workload}: the first A/B measured {first.result.score:.2f}x EEVDF (p="
        f"{first.result.p_value:.3f}) at host CPU pressure {first.result.host_cpu_pressure:.0%}; "
        f"{calm}; this second A/B decides"))
    return second


class WorkloadABRunner:
    """A/B a loaded candidate against EEVDF on a node, ABBA-interleaved, sequentially."""

    def __init__(self, *, policy: SequentialPolicy | None = None,
                 params: Mapping[str, Mapping[str, int]] | None = None,
                 timeout_s: float = 120.0, watchdog_timeout_ms: int = 5000) -> None:
        self.policy = policy or SequentialPolicy()
        self.params = dict(params or QUICK_PARAMS)
        self.timeout_s = timeout_s
        self.watchdog_timeout_ms = watchdog_timeout_ms

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
        loaded = [True]

        def run_one(side: str) -> Mapping[str, float]:
            want_loaded = side == "cand"
            if want_loaded != loaded[0]:
                if want_loaded:
                    node.load(ctx.object_path, tunables=ctx.candidate.tunables,
                              ops_overrides={"timeout_ms": self.watchdog_timeout_ms})
                else:
                    node.unload(ctx.loaded_name)
                loaded[0] = want_loaded
            res = node.run(wrapped, timeout_s=self.timeout_s)
            return parse_result(str(getattr(res, "stdout", "")), spec).metrics

        out = run_sequential(run_one, primary=spec.primary_metric, workload=spec.name,
                             higher_is_better={m.name: m.higher_is_better for m in spec.metrics},
                             units={m.name: m.unit for m in spec.metrics}, policy=self.policy)
        if not loaded[0]:
            node.load(ctx.object_path, tunables=ctx.candidate.tunables,
                      ops_overrides={"timeout_ms": self.watchdog_timeout_ms})
        state = node.state(ctx.loaded_name)
        if getattr(state, "ejected", False) or not getattr(state, "enabled", True):
            out.findings.append(Finding(Severity.ERROR, "ejected",
                                        "the scheduler was ejected during the performance run"))
        return out
