"""Domain types of the verifier: findings, stage results, verdicts.

Plain dataclasses so the pipeline, the CLI and the tests do not depend on
protobuf; :mod:`services.verifier.convert` maps them to ``schedcp.v1``.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field

STAGE_NAMES = ("build", "static", "kernel_verifier", "dynamic")
LOG_TAIL_CHARS = 4000


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class StageStatus(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    RUNNING = "running"


@dataclass(frozen=True)
class Finding:
    """One problem, located and phrased so an agent can act on it."""

    severity: Severity
    rule: str
    message: str
    line: int = 0
    hint: str = ""
    file: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity.label,
            "rule": self.rule,
            "message": self.message,
            "line": self.line,
            "file": self.file,
            "hint": self.hint,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Finding:
        return cls(
            severity=Severity[str(d["severity"]).upper()],
            rule=str(d["rule"]),
            message=str(d["message"]),
            line=int(d.get("line") or 0),
            hint=str(d.get("hint") or ""),
            file=str(d.get("file") or ""),
        )


def tail(text: str, limit: int = LOG_TAIL_CHARS) -> str:
    """The last ``limit`` characters of a tool's output (logs are bounded)."""
    return text if len(text) <= limit else "…" + text[-limit:]


@dataclass
class StageResult:
    """The outcome of one pipeline stage."""

    name: str
    status: StageStatus
    duration_s: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    log: str = ""
    #: Stage-specific structured details (e.g. the performance comparison).
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is StageStatus.PASSED

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status.value,
            "passed": self.passed,
            "duration_s": round(self.duration_s, 3),
            "findings": [f.to_dict() for f in self.findings],
            "log": self.log,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: dict) -> StageResult:
        return cls(
            name=str(d["name"]),
            status=StageStatus(d["status"]),
            duration_s=float(d.get("duration_s", 0.0)),
            findings=[Finding.from_dict(f) for f in d.get("findings", [])],
            log=str(d.get("log", "")),
            details=dict(d.get("details") or {}),
        )


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    baseline: float
    candidate: float
    ratio: float
    higher_is_better: bool
    #: Relative spread (max-min)/median of the candidate's runs.
    spread: float = 0.0
    unit: str = ""
    #: The same for EEVDF's runs: with ``spread``, the noise the decision saw.
    baseline_spread: float = 0.0


@dataclass
class PerformanceResult:
    workload: str
    metrics: list[MetricComparison]
    score: float
    #: Runs per side actually used (the sequential test may add some).
    repetitions: int
    regression_threshold_pct: float
    #: The most runs per side the sequential test would have used.
    max_repetitions: int = 0
    #: One-sided p that the regression is past the threshold (1.0: none seen).
    p_value: float = 1.0
    #: "pass", "regression" or "inconclusive" (see services.verifier.dynamic).
    decision: str = ""
    #: Share of the A/B's wall time the host had tasks waiting for a CPU
    #: (PSI "some"), 0..1; -1 when the host does not report pressure.
    host_cpu_pressure: float = -1.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PerformanceResult:
        return cls(
            workload=d["workload"],
            metrics=[MetricComparison(**m) for m in d["metrics"]],
            score=float(d["score"]),
            repetitions=int(d["repetitions"]),
            regression_threshold_pct=float(d["regression_threshold_pct"]),
            max_repetitions=int(d.get("max_repetitions") or 0),
            p_value=float(d.get("p_value", 1.0)),
            decision=str(d.get("decision") or ""),
            host_cpu_pressure=float(d.get("host_cpu_pressure", -1.0)),
        )


@dataclass
class Candidate:
    """What is verified: scheduler source plus tunable values."""

    source: str
    name: str = "candidate"
    tunables: dict[str, int | float | bool | str] = field(default_factory=dict)
    #: Workload class name for the performance check ("" = skip it).
    workload: str = ""
    #: Where the source came from (a path, or "plan:<id>"); only for messages.
    origin: str = ""
