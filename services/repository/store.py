"""The policy repository's contract: domain types, validation, lifecycle and ranking.

Every backend (the embedded SQLite store, Weaviate) implements ``PolicyStore``
and shares everything else in this module, so the two cannot disagree on what
a valid policy is, which status changes are legal or how search ranks. This
module imports neither grpc nor nats; ``services.repository.convert`` maps
these types to and from the ``schedcp.v1`` messages at the edges.

Lifecycle (see docs/repository.md)::

    CANDIDATE --verdict passed--> VERIFIED --promote--> PROMOTED
        |                            |                     |
        +---------deprecate----------+------deprecate------+--> DEPRECATED
    DEPRECATED --promote(reason required)--> PROMOTED   (only if it had been verified)

A candidate is never promoted without passing verification; library
policies seeded from ``bpf/`` enter as PROMOTED because the library is
reviewed code.
"""

from __future__ import annotations

import builtins
import enum
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from schedcp.digests import sha256_digest
from schedcp.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from schedcp.workload_key import is_workload_key

# ---------------------------------------------------------------- errors


class PolicyNotFound(NotFound):
    """No policy (or no such version) in the repository."""


class PolicyVersionExists(AlreadyExists):
    """name@version is already stored with different content: versions are immutable."""


class InvalidPolicy(InvalidArgument):
    """A policy, tunables schema, record or query does not satisfy the contract."""


class IllegalTransition(FailedPrecondition):
    """A status change the lifecycle does not allow (e.g. promoting an unverified candidate)."""

    code = "failed_precondition"


class StoreIncompatible(FailedPrecondition):
    """The store on disk was written by a different schema or embedding model."""

    code = "failed_precondition"


# ----------------------------------------------------------------- enums


class PolicyStatus(enum.IntEnum):
    """Mirrors schedcp.v1.PolicyStatus (same names and numbers)."""

    CANDIDATE = 1
    VERIFIED = 2
    PROMOTED = 3
    DEPRECATED = 4


class WorkloadClass(enum.IntEnum):
    """Mirrors schedcp.v1.WorkloadClass (same names and numbers)."""

    BATCH_LONG_TAIL = 1
    LATENCY_SERVER = 2
    PARALLEL_BUILD = 3
    INTERACTIVE_BACKGROUND = 4
    CPU_THROUGHPUT = 5
    UNKNOWN_WORKLOAD = 6


class TunableType(enum.IntEnum):
    """Mirrors schedcp.v1.TunableType."""

    INT = 1
    UINT = 2
    BOOL = 3
    FLOAT = 4


#: How each workload class reads in prose; appended to the embedded text so a
#: query phrased as a workload finds the policies that target it.
WORKLOAD_CLASS_TEXT: dict[WorkloadClass, str] = {
    WorkloadClass.BATCH_LONG_TAIL: "batch jobs where a few long tasks dominate the makespan",
    WorkloadClass.LATENCY_SERVER: "latency-sensitive servers answering requests, tail latency matters",
    WorkloadClass.PARALLEL_BUILD: "parallel software builds: many short-lived compiler processes",
    WorkloadClass.INTERACTIVE_BACKGROUND: "interactive tasks sharing the CPU with background work",
    WorkloadClass.CPU_THROUGHPUT: "CPU-bound throughput work where total work done matters",
    WorkloadClass.UNKNOWN_WORKLOAD: "general-purpose mixed workloads",
}

# ----------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    """Size bounds; an oversized field is refused with the limit in the message."""

    max_source_bytes: int = 512 * 1024
    max_patch_bytes: int = 256 * 1024
    max_description_chars: int = 4000
    max_tags: int = 32
    max_tag_chars: int = 64
    max_tunables: int = 64
    max_reason_chars: int = 4000
    max_findings: int = 200
    max_workload_text_chars: int = 2000


DEFAULT_LIMITS = Limits()

# ------------------------------------------------------------ domain types

TunableScalar = int | float | bool | str


@dataclass(frozen=True)
class TunableSpec:
    """One `const volatile` knob of a scheduler: its type, default and legal range."""

    name: str
    type: TunableType
    default: int | float | bool
    min: float = 0.0
    max: float = 0.0
    description: str = ""
    unit: str = ""


@dataclass(frozen=True)
class PolicyMetadata:
    description: str
    target_workloads: tuple[WorkloadClass, ...] = ()
    tags: tuple[str, ...] = ()
    author: str = ""


@dataclass(frozen=True)
class PerformanceRecord:
    """One measurement of a policy on a workload class, against EEVDF (ratio > 1 is better)."""

    workload_class: WorkloadClass
    metric: str
    ratio: float
    success: bool = True
    config_digest: str = ""
    tunables: Mapping[str, TunableScalar] = field(default_factory=dict)
    #: "verdict" or "deployment".
    source: str = "verdict"
    #: Id of the verdict or outcome it came from.
    source_id: str = ""
    at: datetime | None = None
    #: The workload's key (``schedcp.workload_key``), "" when unknown.
    workload_key: str = ""


@dataclass(frozen=True)
class Finding:
    severity: int
    rule: str
    message: str
    file: str = ""
    line: int = 0
    hint: str = ""


@dataclass(frozen=True)
class Antipattern:
    """A failed attempt and why it failed, so planners do not repeat it."""

    antipattern_id: str
    policy_name: str
    policy_version: str
    workload_class: WorkloadClass
    reason: str
    findings: tuple[Finding, ...] = ()
    source_digest: str = ""
    #: The verifier stage that failed, or "deployment".
    stage: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class StatusChange:
    from_status: PolicyStatus | None
    to_status: PolicyStatus
    reason: str
    at: datetime


@dataclass(frozen=True)
class Policy:
    """One immutable version of a scheduler, plus its mutable status and history.

    ``source``, digests, metadata, tunables and lineage never change once
    stored; ``status`` moves through the lifecycle and ``history`` grows.
    """

    name: str
    version: str
    source: str
    metadata: PolicyMetadata
    tunables: tuple[TunableSpec, ...] = ()
    artifact_digest: str = ""
    source_digest: str = ""
    #: "name@version" of the policy this one was derived from, or "".
    parent: str = ""
    patch: str = ""
    status: PolicyStatus = PolicyStatus.CANDIDATE
    history: tuple[PerformanceRecord, ...] = ()
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    workload_classes: tuple[WorkloadClass, ...] = ()
    #: Empty means every status except DEPRECATED.
    statuses: tuple[PolicyStatus, ...] = ()
    #: Every keyword must occur in the policy's name, description, tags or workloads.
    keywords: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    limit: int = 5
    #: Also admit, and rank first, policies with a successful record for this
    #: workload key on any class: an exact repeat of a workload is stronger
    #: evidence than a class match (the class of a short run can vary).
    workload_key: str = ""


@dataclass(frozen=True)
class SearchHit:
    policy: Policy
    similarity: float
    #: Mean improvement on the queried classes (all classes if none queried), 0 without history.
    historical_ratio: float
    score: float
    keyword_fraction: float = 0.0


# -------------------------------------------------------------- the contract


class PolicyStore(Protocol):
    """What every repository backend provides. All methods are synchronous and thread-safe."""

    def put(self, policy: Policy, *, status: PolicyStatus = PolicyStatus.CANDIDATE) -> Policy:
        """Store a new version. Identical content is a no-op returning the stored policy;
        different content under an existing name@version raises PolicyVersionExists."""
        ...

    def get(self, name: str, version: str = "") -> Policy:
        """One version with its history; empty version means the most recently stored."""
        ...

    def list(self, *, statuses: Sequence[PolicyStatus] = (), all_versions: bool = False) -> builtins.list[Policy]:
        """Policies (latest version of each name unless ``all_versions``), without sources' history."""
        ...

    def search(self, query: SearchQuery) -> builtins.list[SearchHit]:
        """Hybrid search ranked by ``rank_score``; at most one hit per policy name."""
        ...

    def record_outcome(self, name: str, version: str, record: PerformanceRecord, *,
                       event_id: str = "", workload_text: str = "") -> Policy:
        """Append a performance record, at most once per policy for its (source, source_id);
        records without a source id are deduplicated by ``event_id``."""
        ...

    def set_status(self, name: str, version: str, status: PolicyStatus, *, reason: str = "",
                   event_id: str = "") -> Policy:
        """Move a policy through the lifecycle (``check_transition``)."""
        ...

    def status_history(self, name: str, version: str) -> builtins.list[StatusChange]:
        ...

    def record_antipattern(self, antipattern: Antipattern, *, event_id: str = "") -> Antipattern:
        """Store a failed attempt; a repeated id or ``event_id`` is applied once."""
        ...

    def list_antipatterns(self, *, name: str = "", version: str = "",
                          workload_class: WorkloadClass | None = None, limit: int = 50) -> builtins.list[Antipattern]:
        ...

    def find_by_source_digest(self, source_digest: str) -> Policy | None:
        ...

    def is_processed(self, event_id: str) -> bool:
        ...

    def check_integrity(self) -> builtins.list[str]:
        """Problems found (empty when consistent): digests, vectors, indexes."""
        ...

    def close(self) -> None:
        ...


# ------------------------------------------------------------- validation

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TUNABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

_INT_BOUNDS = {TunableType.INT: (-(2**63), 2**63 - 1), TunableType.UINT: (0, 2**64 - 1)}


def parse_ref(ref: str) -> tuple[str, str]:
    """Split "name[@version]" into (name, version); version is "" when absent."""
    name, _, version = ref.partition("@")
    return name.strip(), version.strip()


def validate_name(name: str) -> None:
    if not _NAME_RE.match(name or ""):
        raise InvalidPolicy(f"policy name {name!r} is invalid",
                            hint="use 1-64 characters: lower-case letters, digits, '-' or '_', starting with a letter")


def validate_version(version: str) -> None:
    if not _VERSION_RE.match(version or ""):
        raise InvalidPolicy(f"policy version {version!r} is invalid",
                            hint="use 1-64 characters: letters, digits, '.', '_', '+' or '-'")


def validate_tunables(specs: Sequence[TunableSpec], *, limits: Limits = DEFAULT_LIMITS) -> None:
    """Check a tunables schema: known types, unique names, min <= default <= max, integral ints."""
    if len(specs) > limits.max_tunables:
        raise InvalidPolicy(f"{len(specs)} tunables exceed the limit of {limits.max_tunables}")
    seen: set[str] = set()
    for spec in specs:
        where = f"tunable {spec.name!r}"
        if not _TUNABLE_RE.match(spec.name or ""):
            raise InvalidPolicy(f"{where}: name must be a C identifier of at most 64 characters")
        if spec.name in seen:
            raise InvalidPolicy(f"{where} is declared twice", hint="tunable names must be unique")
        seen.add(spec.name)
        try:
            kind = TunableType(spec.type)
        except ValueError:
            raise InvalidPolicy(f"{where}: unknown type {spec.type!r}",
                                hint="use int, uint, bool or float") from None
        default = spec.default
        if kind is TunableType.BOOL:
            if not isinstance(default, bool):
                raise InvalidPolicy(f"{where}: bool tunable needs a true/false default, not {default!r}")
            continue
        if isinstance(default, bool) or not isinstance(default, int | float):
            raise InvalidPolicy(f"{where}: default {default!r} is not a number")
        for label, value in (("min", spec.min), ("max", spec.max), ("default", default)):
            if not math.isfinite(float(value)):
                raise InvalidPolicy(f"{where}: {label} must be finite, not {value}")
        if kind in _INT_BOUNDS:
            if float(default) != int(default):
                raise InvalidPolicy(f"{where}: default {default} is not a whole number")
            lo, hi = _INT_BOUNDS[kind]
            if spec.min < lo or spec.max > hi:
                raise InvalidPolicy(f"{where}: range [{spec.min}, {spec.max}] does not fit {kind.name.lower()}")
        if not spec.min <= default <= spec.max:
            raise InvalidPolicy(f"{where}: need min <= default <= max, got {spec.min} <= {default} <= {spec.max}",
                                hint="fix the range or the default")


def _check_text(label: str, value: str, limit: int, *, unit: str = "characters") -> None:
    size = len(value.encode()) if unit == "bytes" else len(value)
    if size > limit:
        raise InvalidPolicy(f"{label} is {size} {unit}, over the limit of {limit} {unit}",
                            hint=f"keep {label} under {limit} {unit}")


def normalise_policy(policy: Policy, *, limits: Limits = DEFAULT_LIMITS) -> Policy:
    """Validate a policy for ``put`` and fill its derived fields (source digest, sorted tags).

    Raises InvalidPolicy naming the first problem; nothing is stored on failure.
    """
    validate_name(policy.name)
    validate_version(policy.version)
    if not policy.source.strip():
        raise InvalidPolicy(f"{policy.ref}: source is empty", hint="put the full scheduler C source")
    _check_text("source", policy.source, limits.max_source_bytes, unit="bytes")
    _check_text("patch", policy.patch, limits.max_patch_bytes, unit="bytes")
    digest = sha256_digest(policy.source.encode())
    if policy.source_digest and policy.source_digest != digest:
        raise InvalidPolicy(f"{policy.ref}: source_digest {policy.source_digest} does not match the source ({digest})",
                            hint="leave source_digest empty to have it computed")
    if policy.artifact_digest and not _DIGEST_RE.match(policy.artifact_digest):
        raise InvalidPolicy(f"{policy.ref}: artifact_digest {policy.artifact_digest!r} is not sha256:<64 hex>")
    md = policy.metadata
    if not md.description.strip():
        raise InvalidPolicy(f"{policy.ref}: description is empty",
                            hint="describe what the scheduler does and which workloads it suits; search depends on it")
    _check_text("description", md.description, limits.max_description_chars)
    if len(md.tags) > limits.max_tags:
        raise InvalidPolicy(f"{len(md.tags)} tags exceed the limit of {limits.max_tags}")
    tags = []
    for tag in md.tags:
        tag = tag.strip().lower()
        if not tag or len(tag) > limits.max_tag_chars:
            raise InvalidPolicy(f"tag {tag!r} must be 1-{limits.max_tag_chars} characters")
        tags.append(tag)
    try:
        classes = tuple(sorted({WorkloadClass(c) for c in md.target_workloads}))
    except ValueError as exc:
        raise InvalidPolicy(f"{policy.ref}: unknown target workload: {exc}") from None
    if policy.parent:
        pname, pversion = parse_ref(policy.parent)
        validate_name(pname)
        if not pversion:
            raise InvalidPolicy(f"{policy.ref}: parent {policy.parent!r} must be name@version")
        validate_version(pversion)
    validate_tunables(policy.tunables, limits=limits)
    return replace(policy, source_digest=digest,
                   metadata=replace(md, tags=tuple(sorted(set(tags))), target_workloads=classes,
                                    description=md.description.strip()))


def content_digest(policy: Policy) -> str:
    """Digest of everything immutable about a version: what "identical content" means for put."""
    md = policy.metadata
    doc = {
        "source_digest": policy.source_digest or sha256_digest(policy.source.encode()),
        "artifact_digest": policy.artifact_digest,
        "description": md.description,
        "target_workloads": sorted(int(c) for c in md.target_workloads),
        "tags": sorted(md.tags),
        "author": md.author,
        "tunables": [tunable_to_json(t) for t in policy.tunables],
        "parent": policy.parent,
        "patch": policy.patch,
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def validate_record(record: PerformanceRecord) -> None:
    if not math.isfinite(record.ratio) or record.ratio < 0:
        raise InvalidPolicy(f"performance ratio must be a finite number >= 0, not {record.ratio}")
    try:
        WorkloadClass(record.workload_class)
    except ValueError:
        raise InvalidPolicy(f"unknown workload class {record.workload_class!r}") from None
    if record.source not in ("verdict", "deployment"):
        raise InvalidPolicy(f"performance source must be 'verdict' or 'deployment', not {record.source!r}")
    if record.workload_key and not is_workload_key(record.workload_key):
        raise InvalidPolicy(f"workload key {record.workload_key[:80]!r} is not 'sha256:<64 hex>'",
                            hint="derive it with schedcp.workload_key, or leave it empty")


def validate_antipattern(ap: Antipattern, *, limits: Limits = DEFAULT_LIMITS) -> None:
    if not ap.antipattern_id:
        raise InvalidPolicy("antipattern_id is empty", hint="use the verdict or outcome id")
    if ap.policy_name:
        validate_name(ap.policy_name)
    if not ap.reason.strip():
        raise InvalidPolicy("antipattern reason is empty", hint="say why the attempt failed")
    _check_text("reason", ap.reason, limits.max_reason_chars)
    if len(ap.findings) > limits.max_findings:
        raise InvalidPolicy(f"{len(ap.findings)} findings exceed the limit of {limits.max_findings}")


# --------------------------------------------------------------- lifecycle

_ALLOWED: dict[PolicyStatus, frozenset[PolicyStatus]] = {
    PolicyStatus.CANDIDATE: frozenset({PolicyStatus.VERIFIED, PolicyStatus.DEPRECATED}),
    PolicyStatus.VERIFIED: frozenset({PolicyStatus.PROMOTED, PolicyStatus.DEPRECATED}),
    PolicyStatus.PROMOTED: frozenset({PolicyStatus.DEPRECATED}),
    PolicyStatus.DEPRECATED: frozenset({PolicyStatus.PROMOTED}),
}


def check_transition(ref: str, current: PolicyStatus, target: PolicyStatus, *, reason: str,
                     was_verified: bool) -> bool:
    """Return True if the change must be applied, False if it is a no-op (already there).

    ``was_verified``: the policy has been VERIFIED or PROMOTED at some point,
    which is what makes re-promoting a deprecated policy acceptable.
    """
    if current == target:
        return False
    if target not in _ALLOWED[current]:
        hint = {
            (PolicyStatus.CANDIDATE, PolicyStatus.PROMOTED):
                "a candidate must pass verification (VERIFIED) before it can be promoted",
        }.get((current, target), f"allowed from {current.name}: "
              + (", ".join(s.name for s in sorted(_ALLOWED[current])) or "nothing"))
        raise IllegalTransition(f"{ref}: cannot go from {current.name} to {target.name}", hint=hint)
    if current is PolicyStatus.DEPRECATED:
        if not was_verified:
            raise IllegalTransition(f"{ref}: was deprecated without ever being verified, so it cannot be promoted",
                                    hint="put it again as a new version and have it verified")
        if not reason.strip():
            raise IllegalTransition(f"{ref}: re-promoting a deprecated policy needs a reason",
                                    hint="pass --reason / SetStatusRequest.reason saying why it is safe again")
    return True


# ----------------------------------------------------------------- ranking

#: Weights of the ranking formula (docs/repository.md, "Ranking").
W_KEYWORD = 0.10
W_HISTORY = 0.15
W_CLASS = 0.10
CLASS_TEMPERATURE = 0.05
#: Pseudo-count of "ratio 1.0" observations the history is shrunk toward, so
#: one lucky run does not outrank a well-matched description.
HISTORY_PRIOR = 2.0
STATUS_BONUS = {PolicyStatus.PROMOTED: 0.03, PolicyStatus.VERIFIED: 0.0,
                PolicyStatus.CANDIDATE: -0.03, PolicyStatus.DEPRECATED: -0.10}

_STOPWORDS = frozenset("""a an and are as at be by for from has have in into is it its of on or that the
their them this to was were which with where when while who will very many much more most some such
than then there these they those very workload workloads scheduler schedulers policy""".split())


def query_terms(text: str) -> list[str]:
    """Lower-case content words of a query, for the keyword part of the score."""
    return sorted({w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOPWORDS})


def keyword_fraction(terms: Sequence[str], text: str) -> float:
    """Share of ``terms`` that occur (as word prefixes) in ``text``."""
    if not terms:
        return 0.0
    words = re.findall(r"[a-z0-9]+", text.lower())
    hits = sum(1 for t in terms if any(w.startswith(t) or t.startswith(w) and len(w) > 3 for w in words))
    return hits / len(terms)


def relevant_records(history: Iterable[PerformanceRecord], classes: Sequence[WorkloadClass],
                     workload_key: str = "") -> list[PerformanceRecord]:
    """Records on the queried classes (all when none), plus any for exactly this workload."""
    wanted = set(classes)
    return [r for r in history if not wanted or r.workload_class in wanted
            or (workload_key and r.workload_key == workload_key)]


def won_on_workload(history: Iterable[PerformanceRecord], workload_key: str) -> bool:
    """Whether a policy beat EEVDF on exactly this workload (ranked first by ``search``)."""
    return bool(workload_key) and any(
        r.workload_key == workload_key and r.success and r.ratio > 1.0 for r in history)


def historical_ratio(records: Sequence[PerformanceRecord]) -> float:
    """Mean improvement over the records; a failed deployment counts as at most 1.0. 0 with none."""
    if not records:
        return 0.0
    return sum(r.ratio if r.success else min(r.ratio, 1.0) for r in records) / len(records)


def rank_score(*, similarity: float, keyword: float, records: Sequence[PerformanceRecord],
               status: PolicyStatus, class_match: float = 0.0) -> float:
    """score = similarity + W_KEYWORD*keyword + W_CLASS*class_match
             + W_HISTORY*clamp(log2(h), -1, 1) + status bonus,

    where h = (sum of ratios + HISTORY_PRIOR) / (n + HISTORY_PRIOR) shrinks the
    observed mean toward "no better than EEVDF" when there are few records,
    and class_match is ``class_match_for`` of the policy's target classes.
    """
    n = len(records)
    total = historical_ratio(records) * n
    shrunk = (total + HISTORY_PRIOR) / (n + HISTORY_PRIOR)
    history = max(-1.0, min(1.0, math.log2(max(shrunk, 1e-6))))
    return (similarity + W_KEYWORD * keyword + W_CLASS * class_match + W_HISTORY * history
            + STATUS_BONUS[status])


def class_texts() -> list[str]:
    """The prose of each workload class, in ``WorkloadClass`` order, for ``class_affinity``."""
    return [WORKLOAD_CLASS_TEXT[c] for c in WorkloadClass]


def class_affinity(query_vector: np.ndarray | None, class_vectors: np.ndarray,
                   queried: Sequence[WorkloadClass] = ()) -> dict[WorkloadClass, float]:
    """How strongly a query reads as each workload class (sums to 1).

    Explicitly queried classes win outright; otherwise a softmax (temperature
    CLASS_TEMPERATURE) over the query's cosine with each class's prose. This
    lets a query phrased as a workload ("a game stutters during a build")
    favour policies whose metadata targets that class even when their
    description uses scheduler jargon.
    """
    if queried:
        return {c: 1.0 / len(set(queried)) for c in set(queried)}
    if query_vector is None:
        return {}
    logits = (class_vectors @ query_vector) / CLASS_TEMPERATURE
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    return {c: float(w) for c, w in zip(WorkloadClass, weights, strict=True)}


def class_match_for(policy: Policy, affinity: Mapping[WorkloadClass, float]) -> float:
    return max((affinity.get(WorkloadClass(c), 0.0) for c in policy.metadata.target_workloads), default=0.0)


def document_text(policy: Policy) -> str:
    """The text embedded for a policy: its name, description, target workloads and tags."""
    md = policy.metadata
    parts = [f"{policy.name.replace('_', ' ').replace('-', ' ')}: {md.description}"]
    if md.target_workloads:
        parts.append("Suits " + "; ".join(WORKLOAD_CLASS_TEXT[WorkloadClass(c)] for c in md.target_workloads) + ".")
    if md.tags:
        parts.append("Tags: " + ", ".join(md.tags) + ".")
    return " ".join(parts)


_BLOCK_COMMENT = re.compile(r"/\*(.*?)\*/", re.S)
MAX_PASSAGES = 6
#: Similarity weight of each kind of embedded text. Header-comment passages
#: are discounted: they also describe what a scheduler does *not* do ("no
#: priorities, no weights"), which an embedding reads as topical overlap.
TEXT_WEIGHTS = {"policy": 1.0, "workload": 1.0, "source": 0.9}


def source_passages(source: str) -> list[str]:
    """Paragraphs of the scheduler's header comment (design, trade-offs, where it fits).

    The house style puts a scheduler's design in its first comment; embedding
    those paragraphs separately lets a query match "where it fits" even when
    the one-line description is terse. Licence-only comments are skipped.
    """
    for match in _BLOCK_COMMENT.finditer(source[:20000]):
        lines = [re.sub(r"^\s*\*? ?", "", line).rstrip() for line in match.group(1).splitlines()]
        body = "\n".join(lines).strip()
        if not body or body.startswith("SPDX-License-Identifier"):
            continue
        paragraphs = [" ".join(par.split()) for par in re.split(r"\n\s*\n", body)]
        return [par[:1000] for par in paragraphs if len(par) >= 40][:MAX_PASSAGES]
    return []


def keyword_text(policy: Policy) -> str:
    """The text keyword filters and keyword scoring look at."""
    md = policy.metadata
    return " ".join([policy.name, md.description, " ".join(md.tags),
                     " ".join(WorkloadClass(c).name.lower() for c in md.target_workloads)])


def default_statuses(statuses: Sequence[PolicyStatus]) -> tuple[PolicyStatus, ...]:
    if statuses:
        return tuple(PolicyStatus(s) for s in statuses)
    return (PolicyStatus.CANDIDATE, PolicyStatus.VERIFIED, PolicyStatus.PROMOTED)


def validate_query(query: SearchQuery) -> SearchQuery:
    if not 1 <= query.limit <= 100:
        raise InvalidPolicy(f"search limit must be 1-100, not {query.limit}")
    if len(query.text) > 4000:
        raise InvalidPolicy(f"search text is {len(query.text)} characters, over the limit of 4000")
    for kw in query.keywords:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", kw):
            raise InvalidPolicy(f"keyword {kw!r} must be 1-64 letters, digits, '-' or '_'")
    if query.workload_key and not is_workload_key(query.workload_key):
        raise InvalidPolicy(f"workload key {query.workload_key[:80]!r} is not 'sha256:<64 hex>'",
                            hint="derive it with schedcp.workload_key, or leave it empty")
    return replace(query, statuses=default_statuses(query.statuses),
                   workload_classes=tuple(WorkloadClass(c) for c in query.workload_classes),
                   tags=tuple(t.strip().lower() for t in query.tags))


def now() -> datetime:
    return datetime.now(UTC)


def tunable_to_json(spec: TunableSpec) -> dict[str, object]:
    return {"name": spec.name, "type": TunableType(spec.type).name.lower(), "default": spec.default,
            "min": spec.min, "max": spec.max, "description": spec.description, "unit": spec.unit}


def tunable_from_json(doc: Mapping[str, object]) -> TunableSpec:
    """Parse one tunable of the bpf/<name>.json format ({"name","type":"int|uint|bool|float",...})."""
    try:
        name = str(doc["name"])
        type_name = str(doc.get("type", "int")).upper()
        kind = TunableType[type_name]
    except KeyError as exc:
        raise InvalidPolicy(f"tunable {doc.get('name')!r}: missing or unknown {exc}",
                            hint="type is one of int, uint, bool, float") from None
    default = doc.get("default", False if kind is TunableType.BOOL else 0)
    if kind is TunableType.BOOL:
        lo, hi = 0.0, 1.0
        if isinstance(default, int) and not isinstance(default, bool) and default in (0, 1):
            default = bool(default)
    else:
        lo = float(doc.get("min", default))  # type: ignore[arg-type]
        hi = float(doc.get("max", default))  # type: ignore[arg-type]
    return TunableSpec(name=name, type=kind, default=default, min=lo, max=hi,  # type: ignore[arg-type]
                       description=str(doc.get("description", "")), unit=str(doc.get("unit", "")))
