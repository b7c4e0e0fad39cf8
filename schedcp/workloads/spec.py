"""What a reference workload is: its metrics, parameters and workload class.

A workload runs wherever it is started (the host, or a micro-VM guest that
sees the host's userspace through a read-only virtiofs chroot) and reports one
JSON object of metrics. Everything here is plain data so the verifier, the
observer and ``schedcp bench`` can reason about workloads without running them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from schedcp.errors import InvalidArgument, SchedcpError

#: Names of the proto ``WorkloadClass`` values a workload may represent.
WORKLOAD_CLASSES = (
    "BATCH_LONG_TAIL",
    "LATENCY_SERVER",
    "PARALLEL_BUILD",
    "INTERACTIVE_BACKGROUND",
    "CPU_THROUGHPUT",
)


class WorkloadError(SchedcpError):
    """A workload could not be built, started, or did not report its metrics."""

    code = "workload"


@dataclass(frozen=True)
class MetricSpec:
    """One metric a workload reports, and which way is better."""

    name: str
    unit: str
    higher_is_better: bool
    description: str


@dataclass(frozen=True)
class ParamSpec:
    """One integer parameter of a workload (sizes, durations, counts)."""

    name: str
    default: int
    description: str
    minimum: int = 0
    maximum: int | None = None


@dataclass(frozen=True)
class WorkloadSpec:
    """A reference workload: how to run it and what it measures.

    ``execute`` runs the workload in the current process's environment and
    returns the metrics plus any extra diagnostic values; it is only called by
    ``python -m schedcp.workloads run`` on the machine being measured.
    """

    name: str
    workload_class: str
    summary: str
    metrics: tuple[MetricSpec, ...]
    params: tuple[ParamSpec, ...]
    #: The metric a performance check should judge this workload by.
    primary_metric: str
    #: C programs (``csrc/<name>.c``) the workload executes.
    natives: tuple[str, ...]
    execute: Callable[[Mapping[str, int]], dict[str, float]] = field(repr=False, compare=False)
    #: Debian tools the workload runs (checked before a run).
    tools: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.workload_class not in WORKLOAD_CLASSES:
            raise ValueError(f"{self.name}: unknown workload class {self.workload_class}")
        if self.primary_metric not in {m.name for m in self.metrics}:
            raise ValueError(f"{self.name}: primary metric {self.primary_metric} is not declared")

    @property
    def workload_class_proto(self) -> int:
        """The ``schedcp.v1.WorkloadClass`` enum value."""
        # Imported here: protobuf costs seconds to import in a TCG guest,
        # and the workload runner there never needs it.
        from schedcp.v1 import common_pb2

        return int(common_pb2.WorkloadClass.Value(self.workload_class))

    def metric(self, name: str) -> MetricSpec:
        for spec in self.metrics:
            if spec.name == name:
                return spec
        raise InvalidArgument(f"workload {self.name} has no metric {name!r}",
                              hint=f"its metrics are: {', '.join(m.name for m in self.metrics)}")

    def resolve_params(self, overrides: Mapping[str, object] | None = None) -> dict[str, int]:
        """Defaults merged with ``overrides``, each checked against its bounds."""
        known = {p.name: p for p in self.params}
        values = {p.name: p.default for p in self.params}
        for key, raw in (overrides or {}).items():
            spec = known.get(key)
            if spec is None:
                raise InvalidArgument(f"workload {self.name} has no parameter {key!r}",
                                      hint=f"its parameters are: {', '.join(known)}")
            try:
                value = int(str(raw), 0) if not isinstance(raw, int) else raw
            except ValueError:
                raise InvalidArgument(f"parameter {key} of {self.name} must be an integer, not {raw!r}") from None
            if value < spec.minimum or (spec.maximum is not None and value > spec.maximum):
                bound = f"{spec.minimum}..{spec.maximum}" if spec.maximum is not None else f">= {spec.minimum}"
                raise InvalidArgument(f"parameter {key} of {self.name} is {value}, outside {bound}")
            values[key] = value
        return values


@dataclass(frozen=True)
class WorkloadResult:
    """The JSON object a workload run prints: metrics of one repetition."""

    workload: str
    params: dict[str, int]
    metrics: dict[str, float]
    extra: dict[str, float]
    elapsed_s: float

    def to_json(self) -> str:
        return json.dumps({"workload": self.workload, "params": self.params, "metrics": self.metrics,
                           "extra": self.extra, "elapsed_s": round(self.elapsed_s, 4)}, sort_keys=True)


def parse_result(text: str, spec: WorkloadSpec | None = None) -> WorkloadResult:
    """Parse a run's output: the last line that is a JSON object wins.

    Output before it (warnings, progress) is ignored, so a console that mixes
    logs with the result still parses. With ``spec``, every declared metric
    must be present and finite.
    """
    doc = None
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(doc, dict) and "metrics" in doc:
                break
            doc = None
    if doc is None:
        tail = text.strip()[-300:]
        raise WorkloadError("the workload printed no result object",
                            hint=f"its output ended with: {tail!r}" if tail else "it printed nothing")
    metrics = {str(k): float(v) for k, v in dict(doc.get("metrics", {})).items()}
    if spec is not None:
        missing = [m.name for m in spec.metrics if m.name not in metrics]
        if missing:
            raise WorkloadError(f"{spec.name} result lacks metrics {', '.join(missing)}")
        bad = [k for k, v in metrics.items() if v != v or v in (float("inf"), float("-inf"))]
        if bad:
            raise WorkloadError(f"{spec.name} reported non-finite metrics {', '.join(bad)}")
    return WorkloadResult(
        workload=str(doc.get("workload", spec.name if spec else "")),
        params={str(k): int(v) for k, v in dict(doc.get("params", {})).items()},
        metrics=metrics,
        extra={str(k): float(v) for k, v in dict(doc.get("extra", {})).items()},
        elapsed_s=float(doc.get("elapsed_s", 0.0)),
    )
