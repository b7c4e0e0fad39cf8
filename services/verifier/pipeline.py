"""The verification pipeline: build -> static -> kernel_verifier -> dynamic.

Static analysis runs before the kernel verifier because it needs no VM and is
cheaper; the stage names in every result are the contract's ("build",
"kernel_verifier", "static", "dynamic"). Each stage is injected (a small
Protocol), so the pipeline itself is pure orchestration: run in order, stop at
the first failure and report the rest as SKIPPED, time everything, report
progress per stage, and cache verdicts by (artifact digest, config digest).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from schedcp.digests import config_digest
from services.verifier.domain import (
    Candidate,
    Finding,
    PerformanceResult,
    Severity,
    StageResult,
    StageStatus,
    tail,
)

ORDER = ("build", "static", "kernel_verifier", "dynamic")


@dataclass
class VerifyContext:
    """What stages hand to each other for one candidate."""

    candidate: Candidate
    config_digest: str
    workdir: Path
    exit_stack: contextlib.ExitStack
    #: Set by the build stage.
    source_path: Path | None = None
    object_path: Path | None = None
    artifact_digest: str = ""
    clang_args: list[str] = field(default_factory=list)
    #: Set by the kernel_verifier stage: a node with the candidate loaded.
    node: Any = None
    loaded_name: str = ""
    performance: PerformanceResult | None = None
    skip_performance: bool = False


class StageFailed(Exception):
    """Raised by a stage to fail with findings (not an internal error)."""

    def __init__(self, findings: list[Finding], log: str = "", details: dict | None = None):
        super().__init__(findings[0].message if findings else "stage failed")
        self.findings = findings
        self.log = log
        self.details = details or {}


@dataclass
class StageOutcome:
    findings: list[Finding] = field(default_factory=list)
    log: str = ""
    details: dict = field(default_factory=dict)


class Stage(Protocol):
    """One verification stage. Raise :class:`StageFailed` to fail."""

    name: str

    def run(self, ctx: VerifyContext) -> StageOutcome: ...


@dataclass
class VerdictRecord:
    """The pipeline's result (domain form of ``schedcp.v1.Verdict``)."""

    verdict_id: str
    passed: bool
    stages: list[StageResult]
    artifact_digest: str
    config_digest: str
    config_json: str
    candidate_name: str
    workload: str = ""
    performance: PerformanceResult | None = None
    cached: bool = False
    internal_error: bool = False
    at: float = field(default_factory=time.time)
    object_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict_id": self.verdict_id,
            "verdict": "pass" if self.passed else "fail",
            "passed": self.passed,
            "stages": [s.to_dict() for s in self.stages],
            "artifact_digest": self.artifact_digest,
            "config_digest": self.config_digest,
            "config_json": self.config_json,
            "candidate": self.candidate_name,
            "workload": self.workload,
            "performance": self.performance.to_dict() if self.performance else None,
            "cached": self.cached,
            "internal_error": self.internal_error,
            "at": self.at,
            "object_path": self.object_path,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VerdictRecord:
        return cls(
            verdict_id=d["verdict_id"], passed=bool(d["passed"]),
            stages=[StageResult.from_dict(s) for s in d["stages"]],
            artifact_digest=d["artifact_digest"], config_digest=d["config_digest"],
            config_json=d.get("config_json", "{}"), candidate_name=d.get("candidate", ""),
            workload=d.get("workload", ""),
            performance=PerformanceResult.from_dict(d["performance"]) if d.get("performance")
            else None,
            cached=bool(d.get("cached")), internal_error=bool(d.get("internal_error")),
            at=float(d.get("at", 0.0)), object_path=d.get("object_path", ""))


class VerdictCache:
    """Verdicts on disk keyed by (artifact digest, config digest, workload, judge).

    The artifact digest (the compiled object) and the config digest (the
    tunables) name the candidate, so identical candidates are verified once;
    the workload picks the A/B check, and ``judge_digest`` names the bounds
    and thresholds that decided (a verdict under other bounds is not reused).
    Only complete verdicts (no internal error) are stored, so a VM hiccup
    never pins a wrong answer.
    """

    def __init__(self, directory: Path, *, judge_digest: str = "") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.judge_digest = judge_digest
        self._lock = threading.Lock()

    def _key(self, artifact: str, config: str, workload: str) -> Path:
        import hashlib

        key = f"{artifact}|{config}|{workload}"
        if self.judge_digest:
            key += f"|{self.judge_digest}"
        h = hashlib.sha256(key.encode()).hexdigest()[:40]
        return self.dir / f"{h}.json"

    def get(self, artifact: str, config: str, workload: str) -> VerdictRecord | None:
        p = self._key(artifact, config, workload)
        try:
            return VerdictRecord.from_dict(json.loads(p.read_text()))
        except (OSError, ValueError, KeyError):
            return None

    def put(self, rec: VerdictRecord) -> None:
        if rec.internal_error:
            return
        p = self._key(rec.artifact_digest, rec.config_digest, rec.workload)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        with self._lock:
            tmp.write_text(json.dumps(rec.to_dict()))
            os.replace(tmp, p)
        (self.dir / "by-id").mkdir(exist_ok=True)
        (self.dir / "by-id" / f"{rec.verdict_id}.json").write_text(json.dumps(rec.to_dict()))

    def by_id(self, verdict_id: str) -> VerdictRecord | None:
        try:
            return VerdictRecord.from_dict(
                json.loads((self.dir / "by-id" / f"{verdict_id}.json").read_text()))
        except (OSError, ValueError, KeyError):
            return None


Progress = Callable[[StageResult], None]


class VerificationPipeline:
    """Runs the stages in order for one candidate at a time (thread-safe)."""

    def __init__(self, *, stages: Mapping[str, Stage], cache: VerdictCache | None = None,
                 workdir: Path, order: tuple[str, ...] = ORDER) -> None:
        missing = [n for n in order if n not in stages]
        if missing:
            raise ValueError(f"pipeline needs stages {missing}")
        self.stages = dict(stages)
        self.order = order
        self.cache = cache
        self.workdir = Path(workdir)

    def verify(self, candidate: Candidate, *, progress: Progress | None = None,
               skip_performance: bool = False, use_cache: bool = True) -> VerdictRecord:
        """Verify ``candidate``; ``progress`` is called on each stage change."""
        from schedcp.digests import canonical_tunables_json

        cfg_json = canonical_tunables_json(candidate.tunables)
        cfg = config_digest(candidate.tunables)
        notify = progress or (lambda _s: None)
        results = {n: StageResult(n, StageStatus.SKIPPED) for n in self.order}
        wd = self.workdir / uuid.uuid4().hex[:12]
        wd.mkdir(parents=True, exist_ok=True)
        rec = VerdictRecord(verdict_id=str(uuid.uuid4()), passed=False, stages=[],
                            artifact_digest="", config_digest=cfg, config_json=cfg_json,
                            candidate_name=candidate.name,
                            workload="" if skip_performance else candidate.workload)
        with contextlib.ExitStack() as stack:
            ctx = VerifyContext(candidate=candidate, config_digest=cfg, workdir=wd,
                                exit_stack=stack, skip_performance=skip_performance)
            failed = False
            ran: set[str] = set()
            for name in self.order:
                if failed:
                    notify(results[name])
                    continue
                if name == "static" and use_cache and self.cache and ctx.artifact_digest:
                    hit = self.cache.get(ctx.artifact_digest, cfg, rec.workload)
                    if hit is not None:
                        hit.cached = True
                        # The stages not run this time, as they were when verified.
                        for s in hit.stages:
                            if s.name not in ran:
                                notify(s)
                        return hit
                notify(StageResult(name, StageStatus.RUNNING))
                result = self._run_stage(name, ctx)
                results[name] = result
                ran.add(name)
                if result.details.get("internal"):
                    rec.internal_error = True
                notify(result)
                failed = result.status is StageStatus.FAILED
            rec.stages = [results[n] for n in self.order]
            rec.passed = not failed
            rec.artifact_digest = ctx.artifact_digest
            rec.performance = ctx.performance
            rec.object_path = str(ctx.object_path or "")
        if self.cache is not None and rec.artifact_digest:
            self.cache.put(rec)
        return rec

    def _run_stage(self, name: str, ctx: VerifyContext) -> StageResult:
        t0 = time.monotonic()
        try:
            out = self.stages[name].run(ctx)
        except StageFailed as exc:
            return StageResult(name, StageStatus.FAILED, time.monotonic() - t0, exc.findings,
                               tail(exc.log), exc.details)
        except Exception as exc:  # noqa: BLE001 - a stage crash is a failed verdict, reported
            return StageResult(
                name, StageStatus.FAILED, time.monotonic() - t0,
                [Finding(Severity.ERROR, "internal-error",
                         f"the {name} stage could not run: {exc}",
                         hint=getattr(exc, "hint", None) or "this is not the candidate's fault; "
                         "retry, and report it if it persists")],
                tail(traceback.format_exc()), {"internal": True})
        errors = [f for f in out.findings if f.severity is Severity.ERROR]
        status = StageStatus.FAILED if errors else StageStatus.PASSED
        return StageResult(name, status, time.monotonic() - t0, out.findings, tail(out.log),
                           out.details)
