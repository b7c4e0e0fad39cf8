"""What the repository learns from verdicts and deployment outcomes.

Pure logic over a ``PolicyStore``: no NATS here (``subscriptions`` feeds it),
so the same code is driven by the bus in production and directly in tests.
Every effect is keyed by an event id recorded in the store in the same
transaction, so a redelivered message changes nothing the second time.

- A passed verdict adds a performance record (ratio = the verdict's score on
  the profile's workload class) and moves a CANDIDATE to VERIFIED. A verdict
  for new code (PATCH/COMPOSE_NEW) whose source the repository has never seen
  stores that code first, as a candidate derived from the plan's policy.
- A failed verdict becomes an antipattern carrying the failed stage's findings.
- An outcome adds a performance record; a failed outcome is also an antipattern.
"""

from __future__ import annotations

import logging
import re

from schedcp.digests import sha256_digest, tunables_from_proto
from schedcp.v1 import deployment_pb2, verdict_pb2
from schedcp.workload_key import is_workload_key, profile_workload_key

from . import convert
from .store import (
    Antipattern,
    InvalidPolicy,
    PerformanceRecord,
    Policy,
    PolicyMetadata,
    PolicyNotFound,
    PolicyStatus,
    PolicyStore,
    WorkloadClass,
)

log = logging.getLogger(__name__)

_STAGE_FAILED = verdict_pb2.STAGE_FAILED
_MAX_FINDINGS = 50


def performance_event_id(record: PerformanceRecord) -> str:
    """The idempotency key of a performance record, shared by the bus and RecordOutcome."""
    return f"perf:{record.source}:{record.source_id}" if record.source_id else ""


class RepositoryEvents:
    """Applies verdicts and outcomes to ``store`` exactly once each."""

    def __init__(self, *, store: PolicyStore) -> None:
        self._store = store

    # ------------------------------------------------------------ verdicts

    def apply_verdict(self, verdict: verdict_pb2.Verdict) -> str:
        """Apply one verdict; returns what was done (for logs and tests)."""
        if not verdict.verdict_id:
            raise InvalidPolicy("verdict has no verdict_id", hint="the verifier must set one")
        plan = verdict.plan
        wclass = (WorkloadClass(plan.profile.workload_class) if plan.profile.workload_class
                  else WorkloadClass.UNKNOWN_WORKLOAD)
        if not verdict.passed:
            return self._verdict_failed(verdict, wclass)
        policy = self._resolve_or_store(verdict, wclass)
        done = [f"{policy.ref}"]
        if verdict.performance.score > 0:
            record = PerformanceRecord(
                workload_class=wclass, metric=plan.profile.goal.metric or _first_metric(verdict),
                ratio=verdict.performance.score, success=True, config_digest=verdict.config_digest,
                tunables=tunables_from_proto(plan.tunables), source="verdict", source_id=verdict.verdict_id,
                at=verdict.at.ToDatetime() if verdict.HasField("at") else None,
                workload_key=profile_workload_key(plan.profile),
            )
            self._store.record_outcome(policy.name, policy.version, record,
                                       event_id=performance_event_id(record),
                                       workload_text=plan.profile.description)
            done.append(f"recorded ratio {record.ratio:.3f} on {wclass.name}")
        if policy.status is PolicyStatus.CANDIDATE:
            self._store.set_status(policy.name, policy.version, PolicyStatus.VERIFIED,
                                   reason=f"verdict {verdict.verdict_id} passed",
                                   event_id=f"status:verdict:{verdict.verdict_id}")
            done.append("CANDIDATE -> VERIFIED")
        return "; ".join(done)

    def _resolve_or_store(self, verdict: verdict_pb2.Verdict, wclass: WorkloadClass) -> Policy:
        plan = verdict.plan
        if plan.source:
            found = self._store.find_by_source_digest(sha256_digest(plan.source.encode()))
            if found is not None:
                return found
            return self._store_generated(verdict, wclass)
        if not plan.policy.name:
            raise InvalidPolicy(f"verdict {verdict.verdict_id}: plan names no policy and carries no source")
        return self._store.get(plan.policy.name, plan.policy.version)

    def _store_generated(self, verdict: verdict_pb2.Verdict, wclass: WorkloadClass) -> Policy:
        """Keep new code that passed verification, so it can be found and promoted later."""
        plan = verdict.plan
        parent: Policy | None = None
        if plan.policy.name:
            try:
                parent = self._store.get(plan.policy.name, plan.policy.version)
            except PolicyNotFound:
                parent = None
        digest = sha256_digest(plan.source.encode())
        base = _policy_name(plan.policy.name) if plan.policy.name else "generated"
        # Searchable on its own: why it was written, plus what it inherits.
        parts = [plan.rationale.strip(),
                 f"Derived from {parent.ref}: {parent.metadata.description}" if parent else "",
                 "" if (plan.rationale.strip() or parent) else f"Generated for: {plan.profile.description}"]
        description = " ".join(p for p in parts if p)
        policy = Policy(
            # The digest in the version makes redelivery put the same thing again (a no-op).
            name=base, version=f"gen-{digest[7:19]}", source=plan.source,
            artifact_digest=verdict.artifact_digest,
            metadata=PolicyMetadata(description=description[:4000], target_workloads=(wclass,),
                                    tags=("generated",), author="schedcp planner"),
            tunables=parent.tunables if parent else (),
            parent=parent.ref if parent else "", patch=plan.patch,
        )
        return self._store.put(policy, status=PolicyStatus.CANDIDATE)

    def _verdict_failed(self, verdict: verdict_pb2.Verdict, wclass: WorkloadClass) -> str:
        plan = verdict.plan
        failed = [s for s in verdict.stages if s.status == _STAGE_FAILED]
        stage = failed[0].name if failed else "unknown"
        findings = [convert.finding_from_proto(f) for s in failed for f in s.findings][:_MAX_FINDINGS]
        errors = [f.message for f in findings if f.message][:3]
        reason = f"{stage} stage failed" + (": " + "; ".join(errors) if errors else "")
        if not failed and verdict.performance.score:
            reason = f"performance score {verdict.performance.score:.3f} did not pass"
        ap = Antipattern(
            antipattern_id=f"verdict:{verdict.verdict_id}", policy_name=_policy_name(plan.policy.name),
            policy_version=plan.policy.version, workload_class=wclass, reason=reason[:4000],
            findings=tuple(findings),
            source_digest=sha256_digest(plan.source.encode()) if plan.source else "", stage=stage,
        )
        self._store.record_antipattern(ap, event_id=f"antipattern:verdict:{verdict.verdict_id}")
        return f"antipattern {ap.antipattern_id}: {reason}"

    # ------------------------------------------------------------ outcomes

    def apply_outcome(self, outcome: deployment_pb2.DeploymentOutcome) -> str:
        """Apply one deployment outcome; raises PolicyNotFound if the policy is unknown (retried, then DLQ)."""
        if not outcome.outcome_id:
            raise InvalidPolicy("outcome has no outcome_id", hint="the executor must set one")
        wclass = (WorkloadClass(outcome.workload_class) if outcome.workload_class
                  else WorkloadClass.UNKNOWN_WORKLOAD)
        name, version = outcome.policy.name, outcome.policy.version
        policy = self._store.get(name, version)
        record = PerformanceRecord(
            workload_class=wclass, metric=outcome.metric, ratio=max(0.0, outcome.improvement),
            success=outcome.success, config_digest=outcome.config_digest,
            tunables=tunables_from_proto(outcome.tunables),
            source=outcome.source if outcome.source in ("verdict", "deployment") else "deployment",
            source_id=outcome.outcome_id,
            # A malformed key is dropped, not fatal: the record is still class evidence.
            workload_key=outcome.workload_key if is_workload_key(outcome.workload_key) else "",
        )
        self._store.record_outcome(policy.name, policy.version, record,
                                   event_id=performance_event_id(record))
        done = f"{policy.ref}: recorded ratio {record.ratio:.3f} on {wclass.name} (success={record.success})"
        if not outcome.success:
            ap = Antipattern(antipattern_id=f"outcome:{outcome.outcome_id}", policy_name=policy.name,
                             policy_version=policy.version, workload_class=wclass,
                             reason=(outcome.reason or "deployment did not succeed")[:4000],
                             source_digest=policy.source_digest, stage="deployment")
            self._store.record_antipattern(ap, event_id=f"antipattern:outcome:{outcome.outcome_id}")
            done += f"; antipattern {ap.antipattern_id}"
        return done


def _first_metric(verdict: verdict_pb2.Verdict) -> str:
    metrics = verdict.performance.metrics
    return metrics[0].metric if metrics else "score"


def _policy_name(name: str) -> str:
    """Antipatterns and generated policies may come from free-form plan names: keep them valid."""
    cleaned = re.sub(r"[^a-z0-9_-]", "_", name.lower())[:64]
    if not cleaned or not cleaned[0].isalpha():
        cleaned = ("p" + cleaned)[:64] if cleaned else ""
    return cleaned
