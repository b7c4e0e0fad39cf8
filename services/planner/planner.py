"""The Planning agent: from a WorkloadProfile to candidate Plans, and refinement on failure.

Decision hierarchy (the paper's, cheapest first): CONFIGURE_EXISTING a library
policy, PATCH one, or COMPOSE_NEW from primitives. The path is chosen by
:func:`decide`, a pure function of validated numbers (workload class, the
repository's search hits and their recorded history, antipatterns, whether an
LLM is available). Workload-supplied text cannot change it, and neither can
the LLM: the model only fills bounded slots after the path and candidate set
are fixed (pick one of the precomputed candidates, write patched source, fill
composition slots), and its answers are validated against schemas and tunable
ranges before use.

Reuse first: when a policy's history shows it won on exactly this workload
(the same ``workload_key``: the command's normalised shape, whatever class the
observer gave that run) or, failing that, on this workload class, the planner
re-issues the winning configuration without calling the LLM at all (0
tokens). With no LLM the planner still answers every profile: deterministic
ranking plus a tunable search, and a built-in fallback policy when the
repository has nothing.

Generated code (PATCH, COMPOSE_NEW) is only ever put in a Plan, and Plans go to
the verifier; nothing here deploys anything.
"""

from __future__ import annotations

import difflib
import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from schedcp.digests import TunableScalar, config_digest, sha256_digest, tunables_to_proto
from schedcp.errors import SchedcpError
from schedcp.llm.client import JsonResult, LlmOutputInvalid, LlmUnavailable, Usage
from schedcp.v1 import (
    common_pb2,
    plan_pb2,
    policy_pb2,
    profile_pb2,
    services_pb2,
    verdict_pb2,
)
from schedcp.workload_key import profile_workload_key
from services.planner import compose, prompts
from services.planner.tunables import ranges, sanitize_tunables, search_tunables

log = logging.getLogger("schedcp.planner")

CONFIGURE = plan_pb2.CONFIGURE_EXISTING
PATCH = plan_pb2.PATCH
COMPOSE = plan_pb2.COMPOSE_NEW


# ----------------------------------------------------------------- ports


class RepositoryPort(Protocol):
    """What the planner needs from the policy repository."""

    async def search(
        self, query: str, *, workload_classes: Sequence[int], limit: int, workload_key: str = ""
    ) -> list[services_pb2.SearchHit]:
        """Hits for the classes, plus policies that won on ``workload_key`` (any class)."""
        ...

    async def get(self, name: str, version: str = "") -> policy_pb2.Policy: ...

    async def list_antipatterns(
        self, *, workload_class: int, limit: int
    ) -> list[policy_pb2.Antipattern]: ...

    async def record_antipattern(self, antipattern: policy_pb2.Antipattern) -> None: ...


class HistoryPort(Protocol):
    """The learner's compact history for the prompt (may be unavailable)."""

    async def history(self, workload_class: int, limit: int) -> services_pb2.HistoryResponse: ...


class LlmPort(Protocol):
    """Structured LLM calls (schedcp.llm.client.LlmClient satisfies it)."""

    model: str

    async def complete_json(
        self,
        *,
        system: str,
        user: str,
        schema: dict[str, Any],
        schema_name: str = "answer",
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> JsonResult: ...


# -------------------------------------------------------------- settings


@dataclass(frozen=True)
class PlannerSettings:
    """Knobs of the decision rules; loaded from SCHEDCP_PLANNER_* by services.planner.settings."""

    max_candidates: int = 3
    max_iterations: int = 3
    search_limit: int = 8
    #: Reuse a recorded configuration when it won with at least this ratio on
    #: this workload (same workload key) or, failing that, on its class.
    reuse_min_ratio: float = 1.05
    reuse_min_wins: int = 1
    #: Prior improvement of a policy that targets the class but has no history.
    target_prior_ratio: float = 1.08
    #: Expected extra gain of a patch / a composition over the best existing policy.
    patch_gain: float = 1.10
    compose_gain: float = 1.15
    #: Probability that an LLM-written candidate passes the verifier (weak local model: low).
    llm_success_prob: float = 0.3
    #: Costs in "ratio points": the improvement a path must promise to be worth its work.
    cost_configure: float = 0.01
    cost_patch: float = 0.03
    cost_compose: float = 0.05
    #: Policies from bpf/ that exist on every installation: the answer of last resort.
    fallback_policies: tuple[str, ...] = ("wvtime", "fifo")
    #: Antipatterns on (policy, class) at which a policy is no longer proposed.
    antipattern_block: int = 2
    max_source_chars: int = 12000
    patch_max_tokens: int = 1536
    rank_max_tokens: int = 64
    compose_max_tokens: int = 96
    history_limit: int = 8


# ---------------------------------------------------------------- domain


class PlanningError(SchedcpError):
    code = "planning"


@dataclass
class Option:
    """A policy the planner could use, with what it expects from it."""

    policy: policy_pb2.Policy
    expected_ratio: float
    confidence: float
    reuse: list[tuple[float, dict[str, TunableScalar]]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    #: What ``reuse`` matched: "workload" (same workload key, any class) or "class".
    reuse_scope: str = ""
    #: For "workload" reuse: the classes the wins were recorded under (for the
    #: rationale), and the class of the best one.
    reuse_classes: tuple[int, ...] = ()
    reuse_class: int = 0


@dataclass
class Decision:
    """The outcome of the deterministic rules: path, ranked options, and why."""

    path: int
    options: list[Option]
    reuse: bool
    scores: dict[str, float]
    reasons: list[str]
    #: For reuse of this workload's win recorded under another class: that
    #: class. The plans are measured as it (its reference workloads, where the
    #: win was measured, and the verifier's cache), not as this run's class.
    measure_as: int = 0


def _finite(value: float, lo: float = 0.0, hi: float = math.inf) -> float:
    return min(max(value, lo), hi) if math.isfinite(value) else lo


def sanitize_profile(profile: profile_pb2.WorkloadProfile) -> profile_pb2.WorkloadProfile:
    """A copy with every feature finite and in its domain (fractions in [0, 1], counts >= 0)."""
    clean = profile_pb2.WorkloadProfile()
    clean.CopyFrom(profile)
    f = clean.features
    for name in ("runqueue_wait_fraction", "io_wait_fraction", "memory_used_fraction"):
        setattr(f, name, _finite(getattr(f, name), 0.0, 1.0))
    for desc in f.DESCRIPTOR.fields:
        value = getattr(f, desc.name)
        if desc.type == desc.TYPE_DOUBLE and isinstance(value, float):
            setattr(f, desc.name, _finite(value))
    if clean.workload_class not in common_pb2.WorkloadClass.values():
        clean.workload_class = common_pb2.UNKNOWN_WORKLOAD
    clean.class_confidence = _finite(clean.class_confidence, 0.0, 1.0)
    # Re-derived from the identity, never taken on trust: the key decides reuse.
    clean.workload_key = profile_workload_key(clean)
    if not clean.profile_id:
        clean.profile_id = uuid.uuid4().hex  # nothing to be idempotent about
    return clean


def _matches(rec: policy_pb2.PerformanceRecord, cls: int, key: str) -> bool:
    """A record about this workload: same key when both have one, else same class."""
    return (bool(key) and rec.workload_key == key) or rec.workload_class == cls


def _wins(
    policy: policy_pb2.Policy, cls: int, key: str = ""
) -> list[tuple[float, dict[str, TunableScalar], policy_pb2.PerformanceRecord]]:
    """Successful records of ``policy`` on class ``cls``, or on workload ``key`` when given.

    With a key, only records for that exact workload count (any class): the
    caller asks for class wins separately, so the two kinds of evidence never mix.
    """
    from schedcp.digests import tunables_from_proto

    out = []
    for rec in policy.history:
        same = rec.workload_key == key if key else rec.workload_class == cls
        if same and rec.success and math.isfinite(rec.ratio):
            try:
                out.append((rec.ratio, tunables_from_proto(rec.tunables), rec))
            except SchedcpError:
                continue
    return sorted(out, key=lambda item: -item[0])


def decide(
    profile: profile_pb2.WorkloadProfile,
    hits: Sequence[services_pb2.SearchHit],
    antipatterns: Sequence[policy_pb2.Antipattern],
    *,
    llm_available: bool,
    settings: PlannerSettings,
) -> Decision:
    """Choose the decision path by expected benefit against cost. Pure; no I/O, no text input.

    Inputs that matter: the workload class and key, each hit's status, target
    classes and recorded ratios, the antipattern counts, and whether an LLM is
    there. Reuse prefers a win on exactly this workload (same key, whatever
    class that run was given) over a win on the class.
    """
    cls = profile.workload_class
    key = profile.workload_key
    blocked: dict[str, int] = {}
    for ap in antipatterns:
        if ap.workload_class in (cls, common_pb2.WORKLOAD_CLASS_UNSPECIFIED):
            blocked[ap.policy.name] = blocked.get(ap.policy.name, 0) + 1
    options: list[Option] = []
    reasons: list[str] = []
    for hit in hits:
        policy = hit.policy
        if not policy.name or policy.status == policy_pb2.POLICY_DEPRECATED:
            continue
        if blocked.get(policy.name, 0) >= settings.antipattern_block:
            reasons.append(f"skip {policy.name}: {blocked[policy.name]} antipatterns on this class")
            continue
        exact = (
            [w for w in _wins(policy, cls, key) if w[0] >= settings.reuse_min_ratio] if key else []
        )
        wins = exact or [w for w in _wins(policy, cls) if w[0] >= settings.reuse_min_ratio]
        # Evidence on *this* workload or class only: the policy's own records
        # when the hit carries them, else the repository's class-scoped mean.
        own = [
            r.ratio
            for r in policy.history
            if _matches(r, cls, key) and r.success and math.isfinite(r.ratio)
        ]
        if own:
            expected, confidence = sum(own) / len(own), 0.7
            why = f"history ratio {expected:.2f} over {len(own)} records"
        elif hit.historical_ratio > 0 and math.isfinite(hit.historical_ratio):
            expected, confidence = hit.historical_ratio, 0.7
            why = f"history ratio {hit.historical_ratio:.2f}"
        elif cls in policy.metadata.target_workloads:
            expected, confidence = settings.target_prior_ratio, 0.4
            why = "targets this class"
        else:
            expected, confidence = 1.0, 0.2
            why = "no evidence for this class"
        if wins:
            expected, confidence = max(expected, wins[0][0]), 0.9 if exact else 0.8
            where = "this workload" if exact else "this class"
            why = f"won {len(wins)}x on {where}, best ratio {wins[0][0]:.2f}"
        if policy.status == policy_pb2.POLICY_PROMOTED:
            confidence = min(1.0, confidence + 0.1)
        options.append(
            Option(
                policy,
                expected,
                confidence,
                [(w[0], w[1]) for w in wins],
                [why],
                reuse_scope=("workload" if exact else "class") if wins else "",
                reuse_classes=tuple(sorted({w[2].workload_class for w in exact})),
                reuse_class=exact[0][2].workload_class if exact else 0,
            )
        )
    # Stable order: expected ratio, then confidence, then name (ties never depend on input order).
    options.sort(key=lambda o: (-o.expected_ratio, -o.confidence, o.policy.name))

    reusable = [o for o in options if len(o.reuse) >= settings.reuse_min_wins and o.reuse]
    if reusable and profile.trigger == "drift":
        # The recorded win is what stopped working: plan afresh (history still
        # ranks the options, it just does not short-circuit the search).
        reasons.append("drift: not reusing the recorded configuration")
        reusable = []
    if reusable:
        # An exact repeat of this workload beats a class match: the class of a
        # short observation can vary between runs, the command's shape cannot.
        best = max(
            reusable, key=lambda o: (o.reuse_scope == "workload", o.reuse[0][0], o.policy.name)
        )
        ordered = [best] + [o for o in options if o is not best]
        if best.reuse_scope == "workload":
            recorded = ", ".join(common_pb2.WorkloadClass.Name(c) for c in best.reuse_classes)
            differs = "" if best.reuse_classes == (cls,) else f", recorded as {recorded}"
            reasons.append(
                f"reuse: {best.policy.name} won on this workload (same workload key{differs})"
                f" with ratio {best.reuse[0][0]:.2f}"
            )
            won_as = best.reuse_class
            if won_as != cls and won_as in common_pb2.WorkloadClass.values():
                reasons.append(
                    f"measured as {common_pb2.WorkloadClass.Name(won_as)}, where that win was "
                    f"measured (this run was observed as {common_pb2.WorkloadClass.Name(cls)})"
                )
                return Decision(
                    CONFIGURE, ordered, True, {"reuse": best.reuse[0][0] - 1}, reasons, won_as
                )
        else:
            reasons.append(
                f"reuse: {best.policy.name} won on this class with ratio {best.reuse[0][0]:.2f}"
            )
        return Decision(CONFIGURE, ordered, True, {"reuse": best.reuse[0][0] - 1}, reasons)

    best_ratio = options[0].expected_ratio if options else 1.0
    p = settings.llm_success_prob
    scores = {"configure": (best_ratio - 1) - settings.cost_configure if options else -math.inf}
    if llm_available and options:
        scores["patch"] = (best_ratio * settings.patch_gain - 1) * p - settings.cost_patch
    # Composing is the most expensive path: only worth it when nothing usable
    # exists, or when the evidence says the best existing policy does not help.
    evidence_of_no_gain = bool(options) and best_ratio <= 1.0 and options[0].confidence >= 0.7
    if llm_available and (not options or evidence_of_no_gain):
        scores["compose"] = (settings.compose_gain - 1) * p - settings.cost_compose
    if not options:
        reasons.append("no usable policy in the repository")
    path_name = max(scores, key=lambda k: (scores[k], k == "configure"))
    if scores[path_name] == -math.inf:
        path_name = "configure"  # no LLM and no hits: built-in fallback policies
    reasons.append(
        "scores " + ", ".join(f"{k}={v:+.3f}" for k, v in scores.items() if math.isfinite(v))
    )
    path = {"configure": CONFIGURE, "patch": PATCH, "compose": COMPOSE}[path_name]
    return Decision(path, options, False, scores, reasons)


@dataclass
class _Candidate:
    path: int
    policy: str
    version: str
    tunables: dict[str, TunableScalar]
    expected: float
    confidence: float
    reasons: list[str]
    source: str = ""
    patch: str = ""
    usage: Usage = field(default_factory=Usage)


class Planner:
    """Turns profiles into Plans and failed Verdicts into refined Plans (bounded)."""

    def __init__(
        self,
        *,
        repository: RepositoryPort,
        llm: LlmPort | None,
        history: HistoryPort | None,
        settings: PlannerSettings | None = None,
    ) -> None:
        self.repository = repository
        self.llm = llm
        self.history = history
        self.settings = settings or PlannerSettings()
        # Config digests already tried per (profile, policy), so refinement
        # never proposes the same configuration twice. Bounded LRU.
        self._tried: OrderedDict[tuple[str, str], set[str]] = OrderedDict()

    # ------------------------------------------------------------ plan

    async def plan(
        self,
        profile: profile_pb2.WorkloadProfile,
        *,
        max_candidates: int = 0,
        use_llm: bool = True,
    ) -> list[plan_pb2.Plan]:
        """Candidate Plans for ``profile``, best first; never empty."""
        profile = sanitize_profile(profile)
        limit = max_candidates or self.settings.max_candidates
        llm = self.llm if use_llm else None
        history_text = await self._history_text(profile.workload_class)
        hits = await self._search(profile)
        antipatterns = await self._antipatterns(profile.workload_class)
        decision = decide(
            profile, hits, antipatterns, llm_available=llm is not None, settings=self.settings
        )
        log.info(
            "plan decision",
            extra={"path": plan_pb2.DecisionPath.Name(decision.path), "reasons": decision.reasons},
        )
        if decision.measure_as:
            # The plans carry the class the verifier measures (and the
            # repository records) them as; the observed one is in the rationale.
            profile.workload_class = decision.measure_as  # type: ignore[assignment]
        # Cut to the budget before the LLM sees anything: it may reorder the
        # candidates that will be emitted, never swap in different ones.
        candidates = self._configure_candidates(profile, decision, limit)[:limit]
        usage = Usage(model=llm.model if llm else "")
        if llm is not None and not decision.reuse:
            if decision.path == PATCH:
                patched, usage = await self._patch(profile, decision.options[0], history_text, llm)
                if patched is not None:
                    candidates.insert(0, patched)
                    usage = Usage(model=usage.model)  # accounted on the patched candidate
            elif decision.path == COMPOSE:
                candidates.insert(0, await self._compose(profile, history_text, llm))
            elif len(candidates) > 1:
                usage = await self._rank(profile, candidates, history_text, llm)
        candidates = candidates[:limit]
        if candidates:
            candidates[0].usage = candidates[0].usage + usage
        return [
            self._to_plan(profile, c, i, len(candidates), decision.reasons)
            for i, c in enumerate(candidates)
        ]

    def _configure_candidates(
        self, profile: profile_pb2.WorkloadProfile, decision: Decision, limit: int
    ) -> list[_Candidate]:
        out: list[_Candidate] = []
        seen: set[tuple[str, str]] = set()

        def add(c: _Candidate) -> None:
            key = (c.policy, config_digest(c.tunables))
            if key not in seen:
                seen.add(key)
                out.append(c)

        if decision.reuse:
            best = decision.options[0]
            specs = ranges(best.policy.tunables)
            for ratio, values in best.reuse[:limit]:
                tunables, notes = sanitize_tunables(values, specs)
                add(self._configure(best, tunables, ratio, ["reuse of a recorded win", *notes]))
        # Spread the budget: the best option gets most tunable variants, the
        # runner-up at least its defaults, so one bad policy cannot sink a plan.
        for rank, option in enumerate(decision.options[:limit]):
            per_option = max(
                1, limit - rank - (1 if rank == 0 and len(decision.options) > 1 else 0)
            )
            for values in search_tunables(option.policy.tunables, profile, limit=per_option):
                add(self._configure(option, values, option.expected_ratio, ["tunable search"]))
        if not out:
            for name in self.settings.fallback_policies[:limit]:
                add(
                    _Candidate(
                        path=CONFIGURE,
                        policy=name,
                        version="",
                        tunables={},
                        expected=1.0,
                        confidence=0.1,
                        reasons=[f"built-in fallback policy {name} with its default tunables"],
                    )
                )
        # Interleave so the first `limit` include more than one policy.
        first_policy = out[0].policy if out else ""
        head = [c for c in out if c.policy == first_policy]
        rest = [c for c in out if c.policy != first_policy]
        interleaved: list[_Candidate] = []
        while head or rest:
            if head:
                interleaved.append(head.pop(0))
            if head:
                interleaved.append(head.pop(0))
            if rest:
                interleaved.append(rest.pop(0))
        return interleaved

    def _configure(
        self, option: Option, tunables: dict[str, TunableScalar], expected: float, why: list[str]
    ) -> _Candidate:
        return _Candidate(
            path=CONFIGURE,
            policy=option.policy.name,
            version=option.policy.version,
            tunables=tunables,
            expected=expected,
            confidence=option.confidence,
            reasons=[*option.reasons, *why],
        )

    async def _rank(
        self,
        profile: profile_pb2.WorkloadProfile,
        candidates: list[_Candidate],
        history: str,
        llm: LlmPort,
    ) -> Usage:
        """Let the LLM move one of the precomputed candidates to the front. Nothing else."""
        listed = [(c.policy, c.tunables) for c in candidates]
        result, usage = await self._ask(
            llm,
            prompts.rank_prompt(profile, listed, history),
            prompts.rank_schema(len(listed)),
            "rank",
            self.settings.rank_max_tokens,
        )
        if result is not None:
            index = int(str(result["choice"])[1:])
            chosen = candidates.pop(index)
            chosen.reasons.append(f"model's pick: {prompts.quote(result['rationale'], 240)}")
            candidates.insert(0, chosen)
        return usage

    async def _patch(
        self,
        profile: profile_pb2.WorkloadProfile,
        option: Option,
        history: str,
        llm: LlmPort,
        findings: str = "",
        base: tuple[str, str] | None = None,
    ) -> tuple[_Candidate | None, Usage]:
        """Ask for a patched source of ``option``'s policy; None (and the usage spent) if unusable."""
        policy = option.policy
        if not policy.source:
            try:
                policy = await self.repository.get(policy.name, policy.version)
            except SchedcpError as exc:
                log.warning("cannot fetch policy source for a patch: %s", exc)
                return None, Usage()
        original = base[1] if base else policy.source
        if not original:
            return None, Usage()
        specs = ranges(policy.tunables)
        result, usage = await self._ask(
            llm,
            prompts.patch_prompt(profile, policy.name, original, history, findings, specs),
            prompts.patch_schema(specs, self.settings.max_source_chars),
            "patch",
            self.settings.patch_max_tokens,
        )
        if result is None:
            return None, usage
        source = str(result["source"])
        problem = check_source_shape(source)
        if problem:
            log.info("discarding LLM patch: %s", problem)
            return None, usage
        tunables, notes = sanitize_tunables(result.get("tunables") or {}, specs)
        diff = "".join(
            difflib.unified_diff(
                policy.source.splitlines(keepends=True),
                source.splitlines(keepends=True),
                fromfile=f"a/{policy.name}.bpf.c",
                tofile=f"b/{policy.name}.bpf.c",
            )
        )
        candidate = _Candidate(
            path=PATCH,
            policy=policy.name,
            version=policy.version,
            tunables=tunables,
            expected=option.expected_ratio * self.settings.patch_gain,
            confidence=self.settings.llm_success_prob,
            reasons=[f"model's patch: {prompts.quote(result['rationale'], 240)}", *notes],
            source=source,
            patch=diff,
            usage=usage,
        )
        return candidate, Usage(model=usage.model)

    async def _compose(
        self,
        profile: profile_pb2.WorkloadProfile,
        history: str,
        llm: LlmPort | None,
        findings: str = "",
    ) -> _Candidate:
        """Compose from primitives: the LLM fills bounded slots, or the rules do."""
        slots = compose.deterministic_slots(profile)
        usage = Usage()
        why = ["composition slots from the workload's measured features"]
        if llm is not None:
            result, usage = await self._ask(
                llm,
                prompts.compose_prompt(profile, history, findings),
                prompts.compose_schema(compose.SLICE_RANGE_US),
                "compose",
                self.settings.compose_max_tokens,
            )
            if result is not None:
                slots = compose.Slots(
                    queue=str(result["queue"]),
                    direct_idle=bool(result["direct_idle"]),
                    new_task_boost=bool(result["new_task_boost"]),
                    slice_us=int(result["slice_us"]),
                ).clamped()
                why = [f"model's composition: {prompts.quote(result['rationale'], 240)}"]
        name, source = compose.compose_source(slots)
        specs = ranges(compose.tunable_specs(slots))
        tunables, _ = sanitize_tunables({}, specs)
        return _Candidate(
            path=COMPOSE,
            policy=name,
            version="",
            tunables=tunables,
            expected=self.settings.compose_gain,
            confidence=self.settings.llm_success_prob,
            reasons=why,
            source=source,
            usage=usage,
        )

    async def _ask(
        self, llm: LlmPort, user: str, schema: dict[str, Any], name: str, max_tokens: int
    ) -> tuple[dict[str, Any] | None, Usage]:
        """One structured call; None (with the usage spent) when it fails in any way."""
        try:
            result = await llm.complete_json(
                system=prompts.SYSTEM,
                user=user,
                schema=schema,
                schema_name=name,
                max_tokens=max_tokens,
            )
        except (LlmUnavailable, LlmOutputInvalid) as exc:
            log.warning("LLM %s call failed, using the deterministic answer: %s", name, exc)
            return None, exc.usage
        # The client validated already; check again here because the port may
        # be any implementation, and an answer is untrusted until checked.
        from schedcp.llm.schema import SchemaViolation, validate

        try:
            validate(result.data, schema)
        except SchemaViolation as exc:
            log.warning("LLM %s answer failed validation: %s", name, exc)
            return None, result.usage
        return result.data, result.usage

    # ---------------------------------------------------------- refine

    async def refine(
        self, verdict: verdict_pb2.Verdict, *, use_llm: bool = True
    ) -> list[plan_pb2.Plan]:
        """Plans that address a failed verdict, or [] after recording an antipattern.

        Bounded: a plan lineage gets at most ``max_iterations`` refinements.
        """
        if verdict.passed:
            return []
        plan = verdict.plan
        profile = sanitize_profile(plan.profile)
        self._remember(profile.profile_id, plan.policy.name, plan)
        iteration = plan.iteration + 1
        if iteration > self.settings.max_iterations:
            await self._give_up(verdict, f"no passing candidate after {plan.iteration} refinements")
            return []
        llm = self.llm if use_llm else None
        findings = prompts.findings_block(verdict.stages)
        history_text = await self._history_text(profile.workload_class)
        candidate: _Candidate | None = None
        if plan.path == COMPOSE:
            candidate = await self._compose(profile, history_text, llm, findings)
            if config_digest({"src": sha256_digest(candidate.source.encode())}) in self._tried_for(
                profile.profile_id, candidate.policy
            ):
                candidate = None  # same composition again would fail the same way
        elif plan.path == PATCH and llm is not None:
            option = Option(await self._get_policy(plan.policy), 1.0, 0.3)
            candidate, _ = await self._patch(
                profile, option, history_text, llm, findings, base=(plan.policy.name, plan.source)
            )
        if candidate is None:
            candidate = await self._next_configuration(profile, plan)
        if candidate is None:
            await self._give_up(verdict, "no untried configuration left")
            return []
        refined = self._to_plan(
            profile,
            candidate,
            0,
            1,
            [f"refinement {iteration} after a failed verdict"],
            iteration=iteration,
            parent_plan_id=plan.plan_id,
        )
        return [refined]

    async def _next_configuration(
        self, profile: profile_pb2.WorkloadProfile, plan: plan_pb2.Plan
    ) -> _Candidate | None:
        """The next untried deterministic configuration of the plan's policy (or its parent)."""
        name = plan.policy.name
        if plan.path != CONFIGURE:
            # Generated code failed and the LLM cannot fix it: fall back to the
            # library policy it started from (PATCH) or a built-in one (COMPOSE).
            name = name if plan.path == PATCH else self.settings.fallback_policies[0]
        try:
            policy = await self._get_policy(common_pb2.PolicyRef(name=name))
        except SchedcpError:
            policy = policy_pb2.Policy(name=name)
        tried = self._tried_for(profile.profile_id, name)
        for values in search_tunables(policy.tunables, profile, limit=32):
            if config_digest(values) not in tried:
                return _Candidate(
                    path=CONFIGURE,
                    policy=name,
                    version=policy.version,
                    tunables=values,
                    expected=1.0,
                    confidence=0.3,
                    reasons=["next configuration of the deterministic tunable search"],
                )
        return None

    async def _give_up(self, verdict: verdict_pb2.Verdict, reason: str) -> None:
        plan = verdict.plan
        failed = [s for s in verdict.stages if s.status == verdict_pb2.STAGE_FAILED]
        findings = [f for s in failed for f in s.findings][:8]
        ap = policy_pb2.Antipattern(
            # From the verdict, so a redelivered verdict records it once.
            antipattern_id=(sha256_digest(f"give-up:{verdict.verdict_id}".encode()).removeprefix("sha256:")[:32]
                            if verdict.verdict_id else uuid.uuid4().hex),
            policy=plan.policy,
            workload_class=plan.profile.workload_class,
            reason=f"{reason}; last failure: {failed[0].name if failed else 'performance'}"[:400],
            findings=findings,
            source_digest=sha256_digest(plan.source.encode()) if plan.source else "",
            stage=failed[0].name if failed else "performance",
        )
        try:
            await self.repository.record_antipattern(ap)
        except SchedcpError as exc:
            log.warning("could not record antipattern for %s: %s", plan.policy.name, exc)

    # -------------------------------------------------------- helpers

    def _tried_for(self, profile_id: str, policy: str) -> set[str]:
        key = (profile_id, policy)
        tried = self._tried.setdefault(key, set())
        self._tried.move_to_end(key)
        while len(self._tried) > 1024:
            self._tried.popitem(last=False)
        return tried

    def _remember(self, profile_id: str, policy: str, plan: plan_pb2.Plan) -> None:
        from schedcp.digests import tunables_from_proto

        tried = self._tried_for(profile_id, policy)
        try:
            tried.add(config_digest(tunables_from_proto(plan.tunables)))
        except SchedcpError:
            pass
        if plan.source:
            tried.add(config_digest({"src": sha256_digest(plan.source.encode())}))

    async def _get_policy(self, ref: common_pb2.PolicyRef) -> policy_pb2.Policy:
        return await self.repository.get(ref.name, ref.version)

    async def _history_text(self, cls: int) -> str:
        if self.history is None:
            return ""
        try:
            response = await self.history.history(cls, self.settings.history_limit)
        except SchedcpError as exc:
            log.info("no history available: %s", exc)
            return ""
        return response.summary[: prompts.MAX_HISTORY_CHARS]

    async def _search(self, profile: profile_pb2.WorkloadProfile) -> list[services_pb2.SearchHit]:
        cls_name = common_pb2.WorkloadClass.Name(profile.workload_class).lower().replace("_", " ")
        query = f"{cls_name}: {profile.description[: prompts.MAX_DESCRIPTION_CHARS]}"
        classes = [profile.workload_class] if profile.workload_class else []
        try:
            hits = await self.repository.search(
                query,
                workload_classes=classes,
                limit=self.settings.search_limit,
                workload_key=profile.workload_key,
            )
            if len(hits) < 2 and classes:
                # Too few policies tagged for this class: widen the search so the
                # verifier still gets to compare more than one policy.
                names = {h.policy.name for h in hits}
                wider = await self.repository.search(
                    query,
                    workload_classes=[],
                    limit=self.settings.search_limit,
                    workload_key=profile.workload_key,
                )
                extra = [h for h in wider if h.policy.name not in names]
                for h in extra:
                    # That ratio was averaged over every class, not this one.
                    h.historical_ratio = 0.0
                hits = list(hits) + extra
        except SchedcpError as exc:
            log.warning("repository search failed, planning from built-ins: %s", exc)
            return []
        return list(hits)

    async def _antipatterns(self, cls: int) -> list[policy_pb2.Antipattern]:
        try:
            return list(await self.repository.list_antipatterns(workload_class=cls, limit=100))
        except SchedcpError as exc:
            log.info("antipatterns unavailable: %s", exc)
            return []

    def _to_plan(
        self,
        profile: profile_pb2.WorkloadProfile,
        c: _Candidate,
        index: int,
        count: int,
        decision_reasons: Sequence[str],
        *,
        iteration: int = 0,
        parent_plan_id: str = "",
    ) -> plan_pb2.Plan:
        plan = plan_pb2.Plan(
            plan_id=plan_id_for(
                profile.profile_id, index=index, iteration=iteration, parent_plan_id=parent_plan_id
            ),
            iteration=iteration,
            parent_plan_id=parent_plan_id,
            profile=profile,
            path=c.path,  # type: ignore[arg-type]  # enum ints
            policy=common_pb2.PolicyRef(name=c.policy, version=c.version),
            source=c.source,
            patch=c.patch,
            rationale="; ".join([*decision_reasons, *c.reasons])[:2000],
            expected=plan_pb2.ExpectedEffect(
                metric=profile.goal.metric or default_metric(profile),
                ratio=c.expected,
                confidence=c.confidence,
                summary=c.reasons[0][:200] if c.reasons else "",
            ),
            llm=c.usage.to_proto(),
            candidate_index=index,
            candidate_count=count,
        )
        tunables_to_proto(c.tunables, plan.tunables)
        if profile.node:
            plan.target.nodes.append(profile.node)
        return plan


#: Namespace of plan ids (uuid5): fixed forever, or redelivered work gets new ids.
PLAN_ID_NAMESPACE = uuid.UUID("6f1c1d3e-6a52-5b8e-9a43-5c6865646370")


def plan_id_for(
    profile_id: str, *, index: int, iteration: int = 0, parent_plan_id: str = ""
) -> str:
    """The id of a plan, derived from what it answers, so redelivery is idempotent.

    A profile redelivered after a crash (or planned again by a retry) yields
    the same ids for the same candidate slots, so the bus (Nats-Msg-Id
    "plan-<id>") and every consumer dedupe the second copy instead of
    verifying it twice. A refinement is keyed by its parent plan and round.
    """
    name = f"{profile_id}|{parent_plan_id}|{iteration}|{index}"
    return uuid.uuid5(PLAN_ID_NAMESPACE, name).hex


def default_metric(profile: profile_pb2.WorkloadProfile) -> str:
    return {
        common_pb2.GOAL_MAKESPAN: "makespan_s",
        common_pb2.GOAL_THROUGHPUT: "throughput",
        common_pb2.GOAL_TAIL_LATENCY: "p99_latency_us",
    }.get(profile.goal.kind, "makespan_s")


def check_source_shape(source: str) -> str:
    """A cheap pre-verifier check that generated text is at least a scheduler; '' when fine."""
    if len(source) < 200:
        return "source too short to be a scheduler"
    if "struct sched_ext_ops" not in source or "SEC(" not in source:
        return "no struct sched_ext_ops section"
    if source.count("{") != source.count("}"):
        return "unbalanced braces (truncated or repeated output)"
    return ""


def usage_of(plans: Sequence[plan_pb2.Plan]) -> Usage:
    """Total LLM usage of a batch of plans."""
    total = Usage()
    for p in plans:
        total = total + Usage(
            model=p.llm.model,
            calls=p.llm.calls,
            prompt_tokens=p.llm.prompt_tokens,
            completion_tokens=p.llm.completion_tokens,
            wall_seconds=p.llm.wall_seconds,
            cost_usd=p.llm.cost_usd,
        )
    return total


def plans_by_id(plans: Sequence[plan_pb2.Plan]) -> Mapping[str, plan_pb2.Plan]:
    return {p.plan_id: p for p in plans}
