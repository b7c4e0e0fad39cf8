"""Bus handlers of the verifier: plans in, verdicts out (queue group scales it)."""

from __future__ import annotations

import asyncio
import logging

from schedcp import subjects
from schedcp.bus import Bus
from schedcp.errors import SchedcpError
from schedcp.v1 import plan_pb2
from services.verifier.convert import candidate_from_plan, verdict_to_proto
from services.verifier.domain import Finding, Severity, StageResult, StageStatus
from services.verifier.pipeline import ORDER, VerdictRecord
from services.verifier.verifier import ExecutionVerifier

log = logging.getLogger("schedcp.verifier")


async def start(bus: Bus, *, verifier: ExecutionVerifier, concurrency: int = 1) -> None:
    async def on_plan(plan: plan_pb2.Plan) -> None:
        correlation = plan.meta.correlation_id or None
        try:
            cand = candidate_from_plan(plan)
        except SchedcpError as exc:
            # An unusable plan still gets a verdict, so the planner can refine.
            rec = _rejected(plan, exc)
            await bus.publish(subjects.VERDICTS, verdict_to_proto(rec, plan=plan),
                              correlation_id=correlation, message_id=f"verdict-{plan.plan_id}")
            return
        signed = await asyncio.to_thread(
            verifier.verify, cand,
            node_selector=plan.target if plan.HasField("target") else None, policy=plan.policy)
        verdict = verdict_to_proto(signed.record, plan=plan, token=signed.token)
        await bus.publish(subjects.VERDICTS, verdict, correlation_id=correlation,
                          message_id=f"verdict-{plan.plan_id}")
        log.info("verdict %s for plan %s: %s", signed.record.verdict_id, plan.plan_id,
                 "pass" if signed.record.passed else "fail")

    await bus.subscribe(subjects.PLANS, message_type=plan_pb2.Plan, durable="verifier-plans",
                        handler=on_plan, concurrency=concurrency, ack_wait=600.0)


def _rejected(plan: plan_pb2.Plan, exc: SchedcpError) -> VerdictRecord:
    import uuid

    stages = [StageResult("build", StageStatus.FAILED, 0.0,
                          [Finding(Severity.ERROR, "invalid-plan", exc.message, hint=exc.hint or "")])]
    stages += [StageResult(n, StageStatus.SKIPPED) for n in ORDER[1:]]
    return VerdictRecord(verdict_id=str(uuid.uuid4()), passed=False, stages=stages,
                         artifact_digest="", config_digest="", config_json="{}",
                         candidate_name=plan.policy.name)
