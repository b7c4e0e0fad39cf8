"""The A/B engine: a workload under EEVDF and under a candidate, interleaved.

Schedulers are only ever compared inside one run on one node (TCG timing
drifts between boots, and hosts drift over the day), with the two arms
interleaved in an ABBA order so slow drift within the run hits both equally.
The engine is shared: ``schedcp bench`` prints its result, the verifier's
performance stage judges a candidate by it, and ``schedcp optimize`` searches
tunables with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from schedcp.bench.stats import (
    improvement_ratio,
    median,
    ratio_bounds,
    relative_iqr,
    relative_spread,
)
from schedcp.errors import SchedcpError
from schedcp.workloads import WorkloadResult, WorkloadSpec, get_workload, parse_result, prepare

TunableScalar = int | float | bool | str
Progress = Callable[[str], None]


class BenchError(SchedcpError):
    """A benchmark could not produce a comparison."""

    code = "bench"


class SchedulerEjected(BenchError):
    """The candidate was disabled by the kernel while the workload ran."""

    code = "scheduler_ejected"


class NodeLost(BenchError):
    """The node itself died (e.g. the micro-VM's kernel crashed): no arm can go on."""

    code = "node_lost"


class NoSchedExt(BenchError):
    """The node cannot run sched_ext schedulers at all."""

    code = "no_sched_ext"


@dataclass(frozen=True)
class SchedulerUnderTest:
    """One arm of a comparison: a built BPF scheduler and its tunables.

    ``obj`` is None for EEVDF, the kernel's default (no BPF scheduler loaded).
    """

    name: str
    obj: Path | None = None
    tunables: Mapping[str, TunableScalar] = field(default_factory=dict)

    @property
    def is_eevdf(self) -> bool:
        return self.obj is None


EEVDF = SchedulerUnderTest("eevdf")


@dataclass(frozen=True)
class RunOutcome:
    """What a node reports for one repetition."""

    #: The workload's output; its last JSON line is the result.
    output: str
    #: The candidate was no longer enabled when the workload ended.
    ejected: bool = False
    #: Why the kernel disabled it, when known (e.g. "runnable task stall").
    exit_reason: str | None = None


class BenchNode(Protocol):
    """What the engine needs from a node (see ``schedcp.bench.nodes``)."""

    name: str

    def supports_sched_ext(self) -> bool: ...

    def run_repetition(self, workload: str, params: Mapping[str, int], *,
                       scheduler: SchedulerUnderTest | None, timeout: float) -> RunOutcome:
        """Run one repetition of ``workload`` under ``scheduler`` (None: EEVDF).

        Loads the scheduler first and unloads it after; raises a
        ``SchedcpError`` if it cannot be loaded or the workload fails.
        """
        ...


@dataclass(frozen=True)
class RunRecord:
    """One repetition of one arm."""

    arm: str  # "baseline" or "candidate"
    scheduler: str
    repetition: int
    #: Position in the run order of the whole benchmark (1-based).
    step: int
    metrics: dict[str, float]
    extra: dict[str, float]
    elapsed_s: float


@dataclass(frozen=True)
class MetricComparison:
    """One metric, baseline (EEVDF) against candidate, over the repetitions.

    Mirrors ``schedcp.v1.MetricComparison``: ``spread`` is the candidate's
    relative (max-min)/median spread; ``ratio`` > 1 means the candidate is
    better whatever the metric's direction.
    """

    metric: str
    unit: str
    higher_is_better: bool
    baseline: float
    candidate: float
    ratio: float
    spread: float
    baseline_spread: float
    candidate_iqr: float
    baseline_iqr: float
    ratio_min: float
    ratio_max: float
    baseline_values: tuple[float, ...]
    candidate_values: tuple[float, ...]

    @classmethod
    def of(cls, *, metric: str, unit: str, higher_is_better: bool,
           baseline_values: Sequence[float], candidate_values: Sequence[float]) -> MetricComparison:
        base, cand = median(baseline_values), median(candidate_values)
        lo, hi = ratio_bounds(baseline_values, candidate_values, higher_is_better=higher_is_better)
        return cls(
            metric=metric, unit=unit, higher_is_better=higher_is_better,
            baseline=base, candidate=cand,
            ratio=improvement_ratio(base, cand, higher_is_better=higher_is_better),
            spread=relative_spread(candidate_values), baseline_spread=relative_spread(baseline_values),
            candidate_iqr=relative_iqr(candidate_values), baseline_iqr=relative_iqr(baseline_values),
            ratio_min=lo, ratio_max=hi,
            baseline_values=tuple(baseline_values), candidate_values=tuple(candidate_values),
        )

    def to_dict(self) -> dict[str, object]:
        return {k: _finite(v) for k, v in self.__dict__.items()}

    def to_proto(self):  # -> schedcp.v1.common_pb2.MetricComparison
        from schedcp.v1 import common_pb2

        return common_pb2.MetricComparison(
            metric=self.metric, baseline=self.baseline, candidate=self.candidate,
            ratio=self.ratio if math.isfinite(self.ratio) else 1e9,
            higher_is_better=self.higher_is_better,
            spread=self.spread if math.isfinite(self.spread) else 1e9, unit=self.unit)


def _finite(value: object) -> object:
    # JSON has no inf/nan; null says "not meaningful" (e.g. a zero baseline).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class ABResult:
    """The outcome of one interleaved A/B benchmark."""

    workload: str
    workload_class: str
    params: dict[str, int]
    node: str
    scheduler: str
    tunables: dict[str, TunableScalar]
    repetitions: int
    primary_metric: str
    metrics: tuple[MetricComparison, ...]
    runs: tuple[RunRecord, ...]
    duration_s: float
    #: True when only EEVDF was measured (``--sched eevdf``).
    baseline_only: bool = False

    def metric(self, name: str) -> MetricComparison:
        for m in self.metrics:
            if m.metric == name:
                return m
        raise KeyError(name)

    @property
    def score(self) -> float:
        """The improvement ratio on the workload's primary metric."""
        return self.metric(self.primary_metric).ratio

    def to_dict(self) -> dict[str, object]:
        return {
            "workload": self.workload, "workload_class": self.workload_class, "params": self.params,
            "node": self.node, "scheduler": self.scheduler, "tunables": dict(self.tunables),
            "repetitions": self.repetitions, "primary_metric": self.primary_metric,
            "score": _finite(self.score), "baseline_only": self.baseline_only,
            "duration_s": round(self.duration_s, 3),
            "metrics": [m.to_dict() for m in self.metrics],
            "runs": [r.__dict__ for r in self.runs],
        }

    def to_proto(self, *, regression_threshold_pct: float = 5.0):
        """As ``schedcp.v1.PerformanceResult`` for a verdict."""
        from schedcp.v1 import verdict_pb2

        return verdict_pb2.PerformanceResult(
            workload=self.workload, metrics=[m.to_proto() for m in self.metrics],
            score=self.score if math.isfinite(self.score) else 1e9,
            repetitions=self.repetitions, regression_threshold_pct=regression_threshold_pct)


class ABRunner:
    """Runs interleaved A/B benchmarks on one node.

    ``node`` is any ``BenchNode``; ``progress`` receives one line per step
    (the CLI prints them on stderr).
    """

    def __init__(self, *, node: BenchNode, progress: Progress | None = None,
                 run_timeout_s: float = 300.0,
                 prepare_workload: Callable[[str], None] = prepare) -> None:
        self._node = node
        self._progress = progress or (lambda _msg: None)
        self._timeout = run_timeout_s
        self._prepare = prepare_workload

    def compare(self, workload: str | WorkloadSpec, *, candidate: SchedulerUnderTest,
                repetitions: int = 3, params: Mapping[str, object] | None = None,
                warmup: int = 1) -> ABResult:
        """Measure ``workload`` under EEVDF and ``candidate``, ABBA-interleaved.

        With ``candidate`` = EEVDF only the baseline is measured. ``warmup``
        unrecorded EEVDF runs come first, so the first measured run does not
        pay for cold page caches. Raises ``SchedulerEjected`` when the kernel
        disables the candidate during a run, ``NoSchedExt`` when the node has
        no sched_ext.
        """
        outcome = self.compare_many(workload, candidates=[candidate], repetitions=repetitions,
                                    params=params, warmup=warmup)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def compare_many(self, workload: str | WorkloadSpec, *, candidates: Sequence[SchedulerUnderTest],
                     repetitions: int = 3, params: Mapping[str, object] | None = None,
                     warmup: int = 1) -> list[ABResult | BenchError]:
        """EEVDF and several candidates in rotating order, one shared baseline.

        Round ``r`` runs the arms rotated by ``r`` (with two arms: AB, BA, ...),
        so every candidate is compared with baseline runs from the same rounds.
        A candidate that fails (ejected, load error, workload error) drops
        out with its error in its slot; the others carry on.
        """
        spec = workload if isinstance(workload, WorkloadSpec) else get_workload(workload)
        if repetitions < 1:
            raise BenchError(f"repetitions must be at least 1, not {repetitions}")
        values = spec.resolve_params(params)
        real = [c for c in candidates if not c.is_eevdf]
        if real and not self._node.supports_sched_ext():
            raise NoSchedExt(
                f"node {self._node.name} cannot run sched_ext schedulers (its kernel lacks CONFIG_SCHED_CLASS_EXT)",
                hint="use --node vm, or --sched eevdf to measure only the baseline here")
        self._prepare(spec.name)
        started = time.monotonic()
        for i in range(warmup):
            self._progress(f"warm-up {i + 1}/{warmup} (eevdf, not recorded)")
            self._run_arm(spec, values, 0, EEVDF)
        # Arm 0 is the baseline; arm i >= 1 is candidates[i - 1] unless that is EEVDF.
        arms: list[int] = [0] + [i + 1 for i, c in enumerate(candidates) if not c.is_eevdf]
        failed: dict[int, BenchError] = {}
        runs: dict[int, list[RunRecord]] = {a: [] for a in arms}
        total = repetitions * len(arms)
        step = 0
        for rep in range(repetitions):
            shift = rep % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                step += 1
                if arm in failed:
                    continue
                sched = EEVDF if arm == 0 else candidates[arm - 1]
                label = f"[{step}/{total}] {sched.name} rep {rep + 1}/{repetitions}"
                if arm != 0:
                    self._progress(f"{label}: loading {sched.name} and running {spec.name}")
                try:
                    result = self._run_arm(spec, values, arm, sched)
                except SchedcpError as exc:
                    if arm == 0 or isinstance(exc, NodeLost):
                        raise
                    failed[arm] = exc if isinstance(exc, BenchError) else \
                        BenchError(f"{sched.name} failed on {spec.name}: {exc.message}", hint=exc.hint)
                    self._progress(f"{label}: FAILED: {exc}")
                    continue
                runs[arm].append(RunRecord(arm="baseline" if arm == 0 else "candidate", scheduler=sched.name,
                                           repetition=rep, step=step, metrics=result.metrics,
                                           extra=result.extra, elapsed_s=result.elapsed_s))
                shown = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
                self._progress(f"{label}: {shown} ({result.elapsed_s:.1f} s)")
        duration = time.monotonic() - started
        outcomes: list[ABResult | BenchError] = []
        for i, cand in enumerate(candidates):
            arm = i + 1
            if arm in failed:
                outcomes.append(failed[arm])
                continue
            mine = runs[0] if cand.is_eevdf else runs[arm]
            outcomes.append(self._summarise(spec, values, cand, repetitions, runs[0], mine,
                                            duration, baseline_only=cand.is_eevdf))
        return outcomes

    def _summarise(self, spec: WorkloadSpec, values: dict[str, int], cand: SchedulerUnderTest,
                   repetitions: int, base_runs: list[RunRecord], cand_runs: list[RunRecord],
                   duration: float, *, baseline_only: bool) -> ABResult:
        comparisons = []
        for m in spec.metrics:
            comparisons.append(MetricComparison.of(
                metric=m.name, unit=m.unit, higher_is_better=m.higher_is_better,
                baseline_values=[r.metrics[m.name] for r in base_runs],
                candidate_values=[r.metrics[m.name] for r in cand_runs]))
        records = base_runs if baseline_only else sorted(base_runs + cand_runs, key=lambda r: r.step)
        return ABResult(
            workload=spec.name, workload_class=spec.workload_class, params=values, node=self._node.name,
            scheduler=cand.name, tunables=dict(cand.tunables), repetitions=repetitions,
            primary_metric=spec.primary_metric, metrics=tuple(comparisons), runs=tuple(records),
            duration_s=duration, baseline_only=baseline_only)

    def _run_arm(self, spec: WorkloadSpec, values: Mapping[str, int], arm: int,
                 sched: SchedulerUnderTest) -> WorkloadResult:
        outcome = self._node.run_repetition(spec.name, values, scheduler=None if arm == 0 else sched,
                                            timeout=self._timeout)
        if arm != 0 and outcome.ejected:
            reason = f" ({outcome.exit_reason})" if outcome.exit_reason else ""
            raise SchedulerEjected(
                f"{sched.name} was disabled by the kernel while {spec.name} ran{reason}",
                hint="the result would be EEVDF's; a runnable task stall means the scheduler "
                     "starved a task")
        return parse_result(outcome.output, spec)
