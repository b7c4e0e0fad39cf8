"""The Learning agent: closes the loop from verdicts, deployments and feedback to the repository.

In-context reinforcement learning, as in the paper: nothing is retrained.
Outcomes become PerformanceRecords on the policies (the repository's history),
policies that keep winning on a workload class are promoted, ones that keep
regressing are deprecated, failures become antipatterns, and a compact text
summary of all of it goes into the planner's next prompt. Post-deployment
feedback that falls below the baseline is drift: the learner asks for the
workload to be planned again.

Every rule is a threshold on validated numbers (see LearnerSettings); none of
the text in a verdict or report influences a decision.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from schedcp.digests import TunableScalar, config_digest, sha256_digest, tunables_from_proto
from schedcp.errors import NotFound, SchedcpError
from schedcp.v1 import (
    common_pb2,
    deployment_pb2,
    policy_pb2,
    profile_pb2,
    services_pb2,
    verdict_pb2,
)
from schedcp.workload_key import is_workload_key, profile_workload_key

log = logging.getLogger("schedcp.learner")

#: Stages whose failure says the code is wrong (an antipattern), not just slow.
CORRECTNESS_STAGES = ("build", "kernel_verifier", "static", "dynamic")


class LearnerRepositoryPort(Protocol):
    """The repository operations the learner drives."""

    async def get(self, name: str, version: str = "") -> policy_pb2.Policy: ...

    async def list_policies(self) -> list[policy_pb2.Policy]: ...

    async def record_outcome(
        self, policy: common_pb2.PolicyRef, record: policy_pb2.PerformanceRecord
    ) -> policy_pb2.Policy: ...

    async def promote(self, policy: common_pb2.PolicyRef, reason: str) -> None: ...

    async def deprecate(self, policy: common_pb2.PolicyRef, reason: str) -> None: ...

    async def record_antipattern(self, antipattern: policy_pb2.Antipattern) -> None: ...

    async def list_antipatterns(
        self, *, workload_class: int, limit: int
    ) -> list[policy_pb2.Antipattern]: ...


class ReplanPort(Protocol):
    """How the learner asks for a workload to be planned again (the service publishes a profile)."""

    async def replan(self, profile: profile_pb2.WorkloadProfile) -> None: ...


@dataclass(frozen=True)
class LearnerSettings:
    """Thresholds of the learning rules; loaded from SCHEDCP_LEARNER_* by services.learner.settings."""

    #: A record counts as a win when its ratio against EEVDF is at least this.
    win_ratio: float = 1.02
    promote_min_wins: int = 3
    promote_min_mean_ratio: float = 1.05
    #: Over the last `window` records of a policy (any class).
    window: int = 5
    deprecate_min_records: int = 3
    deprecate_max_mean_ratio: float = 0.95
    #: Feedback ratio below which a deployment is drifting, and how many reports in a row.
    drift_ratio: float = 0.95
    drift_reports: int = 2
    drift_cooldown_s: float = 300.0
    history_chars: int = 1200
    #: Policies never deprecated automatically (the planner's built-in fallbacks).
    protected: tuple[str, ...] = ("wvtime", "fifo")
    #: Write records and antipatterns to the repository. Off when the
    #: repository service consumes verdicts/outcomes from the bus itself, so
    #: nothing is recorded twice; the rules then see the event's record as pending.
    record_events: bool = True


@dataclass
class Actions:
    """What one event caused; returned so callers (and tests) can see the learner's decisions."""

    recorded: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)
    deprecated: list[str] = field(default_factory=list)
    antipatterns: list[str] = field(default_factory=list)
    replanned: list[str] = field(default_factory=list)


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def _ratio(value: float) -> float:
    return value if math.isfinite(value) and value >= 0 else 0.0


class Learner:
    """Turns verdicts, deployment outcomes and feedback into repository history and re-plans."""

    def __init__(
        self,
        *,
        repository: LearnerRepositoryPort,
        replanner: ReplanPort | None = None,
        settings: LearnerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.replanner = replanner
        self.settings = settings or LearnerSettings()
        self.clock = clock
        # Latest profile per (node, workload) so drift can re-issue it; bounded.
        self._profiles: OrderedDict[tuple[str, str], profile_pb2.WorkloadProfile] = OrderedDict()
        self._feedback: dict[tuple[str, str], deque[float]] = {}
        self._last_replan: dict[tuple[str, str], float] = {}

    # --------------------------------------------------------- events

    async def on_verdict(self, verdict: verdict_pb2.Verdict) -> Actions:
        """Record a verdict's measured ratio; failures at a correctness stage become antipatterns."""
        actions = Actions()
        plan = verdict.plan
        if not plan.policy.name:
            return actions
        self._remember_profile(plan.profile)
        failed = [s for s in verdict.stages if s.status == verdict_pb2.STAGE_FAILED]
        tunables = _safe_tunables(plan.tunables)
        record = policy_pb2.PerformanceRecord(
            workload_class=plan.profile.workload_class,
            metric=plan.expected.metric or plan.profile.goal.metric,
            ratio=_ratio(verdict.performance.score),
            config_digest=verdict.config_digest or config_digest(tunables),
            source="verdict",
            source_id=verdict.verdict_id,
            at=verdict.at if verdict.HasField("at") else _now(),
            success=verdict.passed,
            workload_key=profile_workload_key(plan.profile),
        )
        record.tunables.MergeFrom(plan.tunables)
        correctness = [s for s in failed if s.name in CORRECTNESS_STAGES]
        if correctness and self.settings.record_events:
            await self._antipattern(
                actions,
                policy=plan.policy,
                workload_class=plan.profile.workload_class,
                stage=correctness[0].name,
                reason=f"verifier stage {correctness[0].name} failed",
                findings=[f for s in correctness for f in s.findings][:8],
                source=plan.source,
            )
        # Only measured verdicts are performance evidence; a build failure has no ratio.
        if verdict.performance.repetitions > 0 or verdict.performance.score > 0:
            await self._record(actions, plan.policy, record)
            await self._evaluate(actions, plan.policy, record)
        return actions

    async def on_outcome(self, outcome: deployment_pb2.DeploymentOutcome) -> Actions:
        """Record a deployment's result; a failed deployment is an antipattern."""
        actions = Actions()
        if not outcome.policy.name:
            return actions
        record = policy_pb2.PerformanceRecord(
            workload_class=outcome.workload_class,
            metric=outcome.metric,
            ratio=_ratio(outcome.improvement),
            config_digest=outcome.config_digest,
            source=outcome.source or "deployment",
            source_id=outcome.outcome_id,
            at=_now(),
            success=outcome.success,
            workload_key=outcome.workload_key if is_workload_key(outcome.workload_key) else "",
        )
        record.tunables.MergeFrom(outcome.tunables)
        if not outcome.success and self.settings.record_events:
            await self._antipattern(
                actions,
                policy=outcome.policy,
                workload_class=outcome.workload_class,
                stage="deployment",
                reason=f"deployment failed: {outcome.reason[:300]}",
                findings=[],
                source="",
            )
        await self._record(actions, outcome.policy, record)
        await self._evaluate(actions, outcome.policy, record)
        return actions

    async def on_feedback(self, report: profile_pb2.FeedbackReport) -> Actions:
        """Detect drift: the deployed policy now loses to the baseline for several reports."""
        actions = Actions()
        key = (report.node, report.workload)
        ratios = [_ratio(d.ratio) for d in report.deltas if d.ratio > 0 or d.baseline > 0]
        # The worst metric decides: a policy that regresses anything is drifting.
        worst = min(ratios) if ratios else 1.0
        if not report.node_healthy:
            worst = 0.0
        window = self._feedback.setdefault(key, deque(maxlen=self.settings.drift_reports))
        window.append(worst)
        drifting = len(window) == self.settings.drift_reports and all(
            r < self.settings.drift_ratio for r in window
        )
        if not drifting:
            return actions
        now = self.clock()
        if now - self._last_replan.get(key, -math.inf) < self.settings.drift_cooldown_s:
            return actions
        self._last_replan[key] = now
        window.clear()
        profile = self._drift_profile(report)
        if self.replanner is not None:
            await self.replanner.replan(profile)
        actions.replanned.append(profile.profile_id)
        log.info(
            "drift detected, re-planning",
            extra={"node": report.node, "policy": report.policy.name, "ratio": worst},
        )
        return actions

    # -------------------------------------------------------- history

    async def history(self, workload_class: int, limit: int = 10) -> services_pb2.HistoryResponse:
        """Records and antipatterns for a class plus a compact, bounded summary for a prompt."""
        limit = max(1, min(limit or 10, 50))
        try:
            listed = await self.repository.list_policies()
            # A listing may omit history (the repository's does): fetch each,
            # bounded so a huge library cannot stall the planner's prompt.
            policies = [
                p if p.history else await self.repository.get(p.name, p.version)
                for p in listed[:64]
            ]
        except SchedcpError as exc:
            log.warning("history: repository unavailable: %s", exc)
            policies = []
        rows: list[tuple[float, str, policy_pb2.PerformanceRecord, int]] = []
        for policy in policies:
            for rec in policy.history:
                if workload_class and rec.workload_class != workload_class:
                    continue
                rows.append((rec.ratio, policy.name, rec, policy.status))
        # Best first, then most recent: the prompt should see what works.
        rows.sort(key=lambda r: (-r[0], -r[2].at.seconds, r[1]))
        try:
            antipatterns = await self.repository.list_antipatterns(
                workload_class=workload_class, limit=limit
            )
        except SchedcpError:
            antipatterns = []
        response = services_pb2.HistoryResponse(
            records=[r[2] for r in rows[:limit]], antipatterns=antipatterns[:limit]
        )
        response.summary = self._summary(workload_class, rows[:limit], antipatterns[:limit])
        return response

    def _summary(
        self,
        workload_class: int,
        rows: Sequence[tuple[float, str, policy_pb2.PerformanceRecord, int]],
        antipatterns: Sequence[policy_pb2.Antipattern],
    ) -> str:
        cls = common_pb2.WorkloadClass.Name(workload_class) if workload_class else "all classes"
        parts = [f"{cls}:"]
        if not rows and not antipatterns:
            return f"{cls}: no history."
        for ratio, name, rec, status in rows:
            values = ",".join(f"{k}={v}" for k, v in sorted(_safe_tunables(rec.tunables).items()))
            tag = " promoted" if status == policy_pb2.POLICY_PROMOTED else ""
            ok = "ok" if rec.success else "failed"
            parts.append(f"{name}{tag} [{values}] {rec.metric or 'ratio'} x{ratio:.2f} {ok}.")
        for ap in antipatterns:
            parts.append(f"avoid {ap.policy.name} ({ap.stage}): {ap.reason[:80]}.")
        text = " ".join(parts)
        limit = self.settings.history_chars
        return text if len(text) <= limit else text[: limit - 1] + "…"

    # -------------------------------------------------------- rules

    async def _record(
        self, actions: Actions, ref: common_pb2.PolicyRef, record: policy_pb2.PerformanceRecord
    ) -> None:
        if not self.settings.record_events:
            return
        try:
            await self.repository.record_outcome(ref, record)
            actions.recorded.append(record.source_id)
        except NotFound:
            # Generated candidates may not be in the repository (yet): nothing to attach to.
            log.info("no policy %s to record an outcome on", ref.name)

    async def _evaluate(
        self,
        actions: Actions,
        ref: common_pb2.PolicyRef,
        pending: policy_pb2.PerformanceRecord | None = None,
    ) -> None:
        """Promote a repeated winner on some class; deprecate a policy that keeps regressing.

        ``pending`` is the event's own record: counted if the repository has
        not stored it yet (it may be recording the same event concurrently).
        """
        s = self.settings
        try:
            policy = await self.repository.get(ref.name, ref.version)
        except NotFound:
            return
        except SchedcpError as exc:
            log.warning("cannot evaluate %s: %s", ref.name, exc)
            return
        records = list(policy.history)
        if pending is not None and pending.source_id not in {r.source_id for r in records}:
            pending = policy_pb2.PerformanceRecord(
                workload_class=pending.workload_class,
                ratio=pending.ratio,
                success=pending.success,
                source_id=pending.source_id,
                at=_now(),
            )
            records.append(pending)
        by_class: dict[int, list[float]] = {}
        for rec in records:
            if rec.success:
                by_class.setdefault(rec.workload_class, []).append(_ratio(rec.ratio))
        winner_on = [
            cls
            for cls, ratios in by_class.items()
            if sum(r >= s.win_ratio for r in ratios) >= s.promote_min_wins
            and sum(ratios[-s.window :]) / len(ratios[-s.window :]) >= s.promote_min_mean_ratio
        ]
        if winner_on and policy.status not in (
            policy_pb2.POLICY_PROMOTED,
            policy_pb2.POLICY_DEPRECATED,
        ):
            names = ", ".join(common_pb2.WorkloadClass.Name(c) for c in winner_on)
            try:
                await self.repository.promote(
                    common_pb2.PolicyRef(name=policy.name, version=policy.version),
                    f"won at least {s.promote_min_wins} times with mean ratio >= "
                    f"{s.promote_min_mean_ratio} on {names}",
                )
                actions.promoted.append(policy.name)
            except SchedcpError as exc:  # e.g. a CANDIDATE must be verified first
                log.info("not promoting %s: %s", policy.name, exc)
            return
        recent = [
            _ratio(r.ratio) if r.success else 0.0
            for r in sorted(records, key=lambda r: (r.at.seconds, r.at.nanos))[-s.window :]
        ]
        if (
            len(recent) >= s.deprecate_min_records
            and sum(recent) / len(recent) < s.deprecate_max_mean_ratio
            and not winner_on
            and policy.name not in s.protected
            and policy.status != policy_pb2.POLICY_DEPRECATED
        ):
            try:
                await self.repository.deprecate(
                    common_pb2.PolicyRef(name=policy.name, version=policy.version),
                    f"mean ratio {sum(recent) / len(recent):.2f} over its last {len(recent)} "
                    f"outcomes is below {s.deprecate_max_mean_ratio}",
                )
                actions.deprecated.append(policy.name)
            except SchedcpError as exc:
                log.info("not deprecating %s: %s", policy.name, exc)

    async def _antipattern(
        self,
        actions: Actions,
        *,
        policy: common_pb2.PolicyRef,
        workload_class: int,
        stage: str,
        reason: str,
        findings: list[common_pb2.Finding],
        source: str,
    ) -> None:
        ap = policy_pb2.Antipattern(
            antipattern_id=uuid.uuid4().hex,
            policy=policy,
            workload_class=workload_class,  # type: ignore[arg-type]  # enum ints
            reason=reason,
            findings=findings,
            source_digest=sha256_digest(source.encode()) if source else "",
            stage=stage,
            at=_now(),
        )
        try:
            await self.repository.record_antipattern(ap)
            actions.antipatterns.append(ap.antipattern_id)
        except SchedcpError as exc:
            log.warning("could not record antipattern: %s", exc)

    # -------------------------------------------------------- drift

    def _remember_profile(self, profile: profile_pb2.WorkloadProfile) -> None:
        if not profile.node:
            return
        key = (profile.node, profile.workload.name)
        self._profiles[key] = profile
        self._profiles.move_to_end(key)
        while len(self._profiles) > 512:
            self._profiles.popitem(last=False)

    def _drift_profile(self, report: profile_pb2.FeedbackReport) -> profile_pb2.WorkloadProfile:
        """The last profile seen for this workload, re-issued with trigger "drift"."""
        known = self._profiles.get((report.node, report.workload))
        profile = profile_pb2.WorkloadProfile()
        if known is not None:
            profile.CopyFrom(known)
            profile.ClearField("meta")
        else:
            profile.node = report.node
            profile.workload.name = report.workload
            profile.workload_class = common_pb2.UNKNOWN_WORKLOAD
            profile.description = "workload whose deployed scheduler stopped beating the baseline"
        profile.profile_id = uuid.uuid4().hex
        profile.trigger = "drift"
        profile.observed_at.GetCurrentTime()
        return profile


def _safe_tunables(values: object) -> dict[str, TunableScalar]:
    try:
        return tunables_from_proto(values)  # type: ignore[arg-type]
    except SchedcpError:
        return {}
