"""The whole optimisation loop for one workload: observe, plan, verify, deploy, learn.

This is what ``schedcp optimize`` runs. Every stage is a Protocol, so the loop
is the same whether the stages are the real services (gRPC adapters in
:mod:`schedcp.cli.optimize`) or in-process objects:

1. observe: a WorkloadProfile of the workload;
2. plan: candidate Plans (reuse of a recorded win costs no LLM tokens);
3. verify: every candidate; the verifier measures each against EEVDF;
   if none passes, the planner refines the most promising failure (bounded)
   and gives up with an antipattern;
4. deploy: the best measured candidate, only if it beats EEVDF by at least
   ``min_improvement``; otherwise nothing is deployed and the result says so;
5. learn: every verdict and the deployment outcome go to the learner.

Generated code reaches the executor only inside a passed, signed verdict.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.json_format import MessageToDict

from schedcp.digests import tunables_from_proto
from schedcp.errors import SchedcpError
from schedcp.v1 import deployment_pb2, plan_pb2, profile_pb2, verdict_pb2
from schedcp.workload_key import profile_workload_key
from services.planner.planner import usage_of

Progress = Callable[[str], None]


class ObserverPort(Protocol):
    async def observe(self) -> profile_pb2.WorkloadProfile: ...


class PlannerPort(Protocol):
    async def plan(
        self, profile: profile_pb2.WorkloadProfile, *, max_candidates: int = 0, use_llm: bool = True
    ) -> list[plan_pb2.Plan]: ...

    async def refine(
        self, verdict: verdict_pb2.Verdict, *, use_llm: bool = True
    ) -> list[plan_pb2.Plan]: ...


class VerifierPort(Protocol):
    async def verify(self, plan: plan_pb2.Plan, progress: Progress) -> verdict_pb2.Verdict: ...


@dataclass
class Deployment:
    """What the executor reported for the winner."""

    phase: str
    message: str
    rollout_id: str = ""
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.phase in ("PHASE_COMPLETE", "PHASE_FLEET", "PHASE_BAKING", "PHASE_CANARY")


class ExecutorPort(Protocol):
    async def deploy(self, verdict: verdict_pb2.Verdict, progress: Progress) -> Deployment: ...


class LearnerPort(Protocol):
    async def on_verdict(self, verdict: verdict_pb2.Verdict) -> Any: ...

    async def on_outcome(self, outcome: deployment_pb2.DeploymentOutcome) -> Any: ...


@dataclass
class LoopResult:
    profile: profile_pb2.WorkloadProfile
    plans: list[plan_pb2.Plan]
    verdicts: list[verdict_pb2.Verdict]
    #: The best passed verdict (measured), whether or not it was deployed.
    winner: verdict_pb2.Verdict | None
    deployment: Deployment | None
    message: str
    wall_s: float

    @property
    def llm_tokens(self) -> int:
        return usage_of(self.plans).total_tokens

    @property
    def improvement(self) -> float:
        """The best measured ratio against EEVDF (1.0 when nothing was measured)."""
        return (
            self.winner.performance.score if self.winner and self.winner.performance.score else 1.0
        )

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document (see docs/planner.md)."""
        winner = self.winner
        baseline: dict[str, Any] = {}
        result: dict[str, Any] = {}
        if winner is not None:
            for m in winner.performance.metrics:
                baseline[m.metric] = m.baseline
                result[m.metric] = m.candidate
        deployed = None
        if self.deployment is not None and self.deployment.succeeded and winner is not None:
            deployed = {
                "policy": winner.plan.policy.name,
                "config": tunables_from_proto(winner.plan.tunables),
                "phase": self.deployment.phase,
                "rollout_id": self.deployment.rollout_id,
            }
        usage = usage_of(self.plans)
        return {
            "profile": MessageToDict(self.profile, preserving_proto_field_name=True),
            "plans": [_plan_summary(p) for p in self.plans],
            "verdicts": [_verdict_summary(v) for v in self.verdicts],
            "deployed": deployed,
            "deployment": None
            if self.deployment is None
            else {"phase": self.deployment.phase, "message": self.deployment.message},
            "baseline": baseline,
            "result": result,
            "improvement": self.improvement,
            "llm_tokens": usage.total_tokens,
            "llm": {"calls": usage.calls, "wall_s": usage.wall_seconds, "model": usage.model},
            "wall_s": self.wall_s,
            "message": self.message,
        }


def _plan_summary(p: plan_pb2.Plan) -> dict[str, Any]:
    return {
        "plan_id": p.plan_id,
        "path": plan_pb2.DecisionPath.Name(p.path),
        "policy": p.policy.name,
        "tunables": tunables_from_proto(p.tunables),
        "iteration": p.iteration,
        "candidate_index": p.candidate_index,
        "expected_ratio": p.expected.ratio,
        "rationale": p.rationale,
        "llm_tokens": p.llm.prompt_tokens + p.llm.completion_tokens,
        "has_source": bool(p.source),
    }


def _verdict_summary(v: verdict_pb2.Verdict) -> dict[str, Any]:
    return {
        "verdict_id": v.verdict_id,
        "plan_id": v.plan.plan_id,
        "policy": v.plan.policy.name,
        "passed": v.passed,
        "score": v.performance.score,
        "cached": v.cached,
        "stages": [
            {
                "name": s.name,
                "status": verdict_pb2.StageStatus.Name(s.status),
                "duration_s": round(s.duration_s, 3),
                "findings": [{"rule": f.rule, "message": f.message[:200]} for f in s.findings[:5]],
            }
            for s in v.stages
        ],
    }


@dataclass(frozen=True)
class LoopSettings:
    max_candidates: int = 3
    use_llm: bool = True
    #: The winner must beat EEVDF by this factor to be deployed.
    min_improvement: float = 1.02
    deploy: bool = True


class OptimizationLoop:
    """Runs observe -> plan -> verify -> deploy -> learn once for one workload."""

    def __init__(
        self,
        *,
        observer: ObserverPort,
        planner: PlannerPort,
        verifier: VerifierPort,
        executor: ExecutorPort | None,
        learner: LearnerPort | None,
        settings: LoopSettings | None = None,
        progress: Progress = lambda _msg: None,
    ) -> None:
        self.observer = observer
        self.planner = planner
        self.verifier = verifier
        self.executor = executor
        self.learner = learner
        self.settings = settings or LoopSettings()
        self.progress = progress

    async def run(self) -> LoopResult:
        start = time.monotonic()
        say = self.progress
        say("observing the workload")
        profile = await self.observer.observe()
        say(
            f"observed: {_class_name(profile)} (confidence {profile.class_confidence:.2f}); "
            f"{profile.description[:160]}"
        )
        plans = await self.planner.plan(
            profile, max_candidates=self.settings.max_candidates, use_llm=self.settings.use_llm
        )
        all_plans = list(plans)
        verdicts: list[verdict_pb2.Verdict] = []
        passed: list[verdict_pb2.Verdict] = []
        say(
            f"planned {len(plans)} candidate(s): "
            + ", ".join(f"{plan_pb2.DecisionPath.Name(p.path)} {p.policy.name}" for p in plans)
            + f" ({usage_of(plans).total_tokens} LLM tokens)"
        )
        current: Sequence[plan_pb2.Plan] = plans
        while current:
            round_verdicts = []
            for plan in current:
                say(f"verifying {plan.policy.name} {dict(tunables_from_proto(plan.tunables))}")
                verdict = await self.verifier.verify(plan, say)
                round_verdicts.append(verdict)
                verdicts.append(verdict)
                say(
                    f"  {'PASSED' if verdict.passed else 'FAILED'}"
                    + (
                        f", {verdict.performance.score:.3f}x EEVDF"
                        if verdict.performance.score
                        else ""
                    )
                )
                if self.learner is not None:
                    await _quietly(self.learner.on_verdict(verdict), say)
            passed = [v for v in verdicts if v.passed]
            if passed:
                break
            worst_ok = max(
                round_verdicts, key=lambda v: (v.performance.score, -v.plan.candidate_index)
            )
            current = await self.planner.refine(worst_ok, use_llm=self.settings.use_llm)
            all_plans.extend(current)
            if current:
                say(f"refining: iteration {current[0].iteration}, {current[0].policy.name}")
            else:
                say("giving up on refinement (antipattern recorded)")
        winner = max(passed, key=lambda v: v.performance.score) if passed else None
        deployment: Deployment | None = None
        if winner is None:
            message = "no candidate passed verification; nothing deployed"
        elif winner.performance.score < self.settings.min_improvement:
            message = (
                f"best candidate {winner.plan.policy.name} measured {winner.performance.score:.3f}x "
                f"EEVDF, below the {self.settings.min_improvement:.2f}x bar: nothing beats EEVDF, "
                "nothing deployed"
            )
        elif not self.settings.deploy or self.executor is None:
            message = (
                f"winner {winner.plan.policy.name} at {winner.performance.score:.3f}x EEVDF; "
                + ("deployment skipped" if not self.settings.deploy else "no executor available")
            )
        else:
            say(f"deploying {winner.plan.policy.name}")
            try:
                deployment = await self.executor.deploy(winner, say)
            except SchedcpError as exc:
                deployment = Deployment(phase="PHASE_FAILED", message=str(exc))
            message = (
                f"deployment of {winner.plan.policy.name}: {deployment.phase} {deployment.message}"
            )
            if self.learner is not None:
                await _quietly(self.learner.on_outcome(_outcome(profile, winner, deployment)), say)
        say(message)
        return LoopResult(
            profile, all_plans, verdicts, winner, deployment, message, time.monotonic() - start
        )


async def _quietly(awaitable: Any, say: Progress) -> None:
    """Learning must never fail the loop: the user's result does not depend on it."""
    try:
        await awaitable
    except SchedcpError as exc:
        say(f"(learner: {exc})")


def _class_name(profile: profile_pb2.WorkloadProfile) -> str:
    from schedcp.v1 import common_pb2

    return common_pb2.WorkloadClass.Name(profile.workload_class)


def _outcome(
    profile: profile_pb2.WorkloadProfile, winner: verdict_pb2.Verdict, deployment: Deployment
) -> deployment_pb2.DeploymentOutcome:
    outcome = deployment_pb2.DeploymentOutcome(
        outcome_id=uuid.uuid4().hex,
        rollout_id=deployment.rollout_id,
        profile_id=profile.profile_id,
        workload_class=profile.workload_class,
        policy=winner.plan.policy,
        config_digest=winner.config_digest,
        improvement=winner.performance.score,
        metric=winner.plan.expected.metric,
        success=deployment.succeeded,
        reason=deployment.message[:300],
        source="deployment",
        node=profile.node,
        workload_key=profile_workload_key(profile),
    )
    outcome.tunables.MergeFrom(winner.plan.tunables)
    return outcome
