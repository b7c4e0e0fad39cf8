"""Domain verdicts <-> schedcp.v1 messages, and Plan -> Candidate."""

from __future__ import annotations

from schedcp.digests import tunables_from_proto
from schedcp.errors import InvalidArgument
from schedcp.v1 import common_pb2, plan_pb2, verdict_pb2
from services.verifier.domain import Candidate, Finding, StageResult, StageStatus
from services.verifier.pipeline import VerdictRecord

_STATUS = {
    StageStatus.PASSED: verdict_pb2.STAGE_PASSED,
    StageStatus.FAILED: verdict_pb2.STAGE_FAILED,
    StageStatus.SKIPPED: verdict_pb2.STAGE_SKIPPED,
    StageStatus.RUNNING: verdict_pb2.STAGE_RUNNING,
}


def finding_to_proto(f: Finding) -> common_pb2.Finding:
    return common_pb2.Finding(severity=common_pb2.Severity.Name(int(f.severity)), rule=f.rule,
                              message=f.message, file=f.file, line=max(0, f.line), hint=f.hint)


def stage_to_proto(s: StageResult) -> verdict_pb2.StageResult:
    return verdict_pb2.StageResult(name=s.name, status=_STATUS[s.status],
                                   duration_s=s.duration_s,
                                   findings=[finding_to_proto(f) for f in s.findings], log=s.log)


def verdict_to_proto(rec: VerdictRecord, *, plan: plan_pb2.Plan | None = None,
                     token: verdict_pb2.DeploymentToken | None = None,
                     include_artifact: bool = True) -> verdict_pb2.Verdict:
    v = verdict_pb2.Verdict(verdict_id=rec.verdict_id, artifact_digest=rec.artifact_digest,
                            config_digest=rec.config_digest, passed=rec.passed,
                            cached=rec.cached, config_json=rec.config_json,
                            stages=[stage_to_proto(s) for s in rec.stages])
    if plan is not None:
        v.plan.CopyFrom(plan)
    if token is not None:
        v.token.CopyFrom(token)
    if rec.performance is not None:
        p = rec.performance
        v.performance.workload = p.workload
        v.performance.score = p.score
        v.performance.repetitions = p.repetitions
        v.performance.regression_threshold_pct = p.regression_threshold_pct
        v.performance.max_repetitions = p.max_repetitions
        v.performance.p_value = p.p_value
        v.performance.decision = p.decision
        v.performance.host_cpu_pressure = p.host_cpu_pressure
        for m in p.metrics:
            v.performance.metrics.add(metric=m.metric, baseline=m.baseline, candidate=m.candidate,
                                      ratio=m.ratio, higher_is_better=m.higher_is_better,
                                      spread=m.spread, unit=m.unit,
                                      baseline_spread=m.baseline_spread)
    if include_artifact and rec.object_path:
        try:
            with open(rec.object_path, "rb") as fh:
                v.artifact = fh.read()
        except OSError:
            pass
    v.at.FromNanoseconds(int(rec.at * 1e9))
    return v


def candidate_from_plan(plan: plan_pb2.Plan, *, workload_class: int = 0) -> Candidate:
    """The source to verify: the plan's own (PATCH/COMPOSE_NEW) or the library policy's."""
    from schedcp.substrate.build import BuildError, find_scheduler_source

    source = plan.source
    if not source:
        if not plan.policy.name:
            raise InvalidArgument(f"plan {plan.plan_id} has neither source nor policy name",
                                  hint="set plan.source, or plan.policy.name for "
                                       "CONFIGURE_EXISTING")
        try:
            source = find_scheduler_source(plan.policy.name).read_text()
        except BuildError as exc:
            raise InvalidArgument(f"plan {plan.plan_id}: {exc.message}", hint=exc.hint) from exc
    wc = workload_class or plan.profile.workload_class
    name = common_pb2.WorkloadClass.Name(wc) if wc else ""
    if name in ("WORKLOAD_CLASS_UNSPECIFIED", "UNKNOWN_WORKLOAD"):
        name = ""
    return Candidate(source=source, name=(plan.policy.name or "candidate")[:64],
                     tunables=tunables_from_proto(plan.tunables), workload=name,
                     origin=f"plan:{plan.plan_id}")
