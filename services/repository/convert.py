"""Mapping between the repository's domain types and the schedcp.v1 messages.

Used only at the edges (servicer, bus subscriptions, CLI over gRPC). Enums
share names and numbers with the proto enums, so conversion is by value and a
proto value the domain does not know is refused rather than guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from schedcp.digests import tunables_from_proto, tunables_to_proto
from schedcp.v1 import common_pb2, policy_pb2, services_pb2

from .store import (
    Antipattern,
    Finding,
    InvalidPolicy,
    PerformanceRecord,
    Policy,
    PolicyMetadata,
    PolicyStatus,
    SearchHit,
    SearchQuery,
    TunableSpec,
    TunableType,
    WorkloadClass,
)


def _e(value: int) -> Any:
    """An enum value for a proto field: the generated stubs type enum fields as
    their wrapper class, while the runtime takes (and we hold) plain ints."""
    return int(value)


def _ts(value: datetime | None, target: Timestamp) -> None:
    if value is not None:
        target.FromDatetime(value.astimezone(UTC))


def _dt(ts: Timestamp, present: bool) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if present else None


def workload_class(value: int) -> WorkloadClass:
    try:
        return WorkloadClass(value)
    except ValueError:
        raise InvalidPolicy(f"workload class {value} is not set or unknown",
                            hint="use one of " + ", ".join(c.name for c in WorkloadClass)) from None


def status(value: int) -> PolicyStatus:
    try:
        return PolicyStatus(value)
    except ValueError:
        raise InvalidPolicy(f"policy status {value} is not set or unknown") from None


def _tunable_value(value: int | float | bool | str, target: common_pb2.TunableValue) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.float_value = value
    else:
        target.string_value = str(value)


def tunable_spec_to_proto(spec: TunableSpec) -> policy_pb2.TunableSpec:
    msg = policy_pb2.TunableSpec(name=spec.name, type=_e(spec.type), min=spec.min, max=spec.max,
                                 description=spec.description, unit=spec.unit)
    _tunable_value(spec.default, msg.default)
    return msg


def tunable_spec_from_proto(msg: policy_pb2.TunableSpec) -> TunableSpec:
    try:
        kind = TunableType(msg.type)
    except ValueError:
        raise InvalidPolicy(f"tunable {msg.name!r}: type is not set or unknown",
                            hint="use TUNABLE_INT, TUNABLE_UINT, TUNABLE_BOOL or TUNABLE_FLOAT") from None
    which = msg.default.WhichOneof("kind")
    default: int | float | bool = getattr(msg.default, which) if which else (False if kind is TunableType.BOOL else 0)
    if isinstance(default, str):
        raise InvalidPolicy(f"tunable {msg.name!r}: default must be a number or boolean")
    return TunableSpec(name=msg.name, type=kind, default=default, min=msg.min, max=msg.max,
                       description=msg.description, unit=msg.unit)


def record_to_proto(record: PerformanceRecord) -> policy_pb2.PerformanceRecord:
    msg = policy_pb2.PerformanceRecord(workload_class=_e(record.workload_class), metric=record.metric,
                                       ratio=record.ratio, config_digest=record.config_digest,
                                       source=record.source, source_id=record.source_id, success=record.success,
                                       workload_key=record.workload_key)
    tunables_to_proto(dict(record.tunables), msg.tunables)
    _ts(record.at, msg.at)
    return msg


def record_from_proto(msg: policy_pb2.PerformanceRecord) -> PerformanceRecord:
    return PerformanceRecord(workload_class=workload_class(msg.workload_class), metric=msg.metric,
                             ratio=msg.ratio, success=msg.success, config_digest=msg.config_digest,
                             tunables=tunables_from_proto(msg.tunables), source=msg.source or "deployment",
                             source_id=msg.source_id, at=_dt(msg.at, msg.HasField("at")),
                             workload_key=msg.workload_key)


def policy_to_proto(policy: Policy) -> policy_pb2.Policy:
    md = policy.metadata
    msg = policy_pb2.Policy(
        name=policy.name, version=policy.version, source=policy.source, source_digest=policy.source_digest,
        artifact_digest=policy.artifact_digest,
        metadata=policy_pb2.PolicyMetadata(description=md.description,
                                           target_workloads=[_e(c) for c in md.target_workloads],
                                           tags=list(md.tags), author=md.author),
        tunables=[tunable_spec_to_proto(t) for t in policy.tunables], parent=policy.parent, patch=policy.patch,
        status=_e(policy.status), history=[record_to_proto(r) for r in policy.history],
    )
    _ts(policy.created_at, msg.created_at)
    return msg


def policy_from_proto(msg: policy_pb2.Policy) -> Policy:
    """A Policy to put; status and history are the store's business and are ignored here."""
    md = msg.metadata
    return Policy(
        name=msg.name, version=msg.version, source=msg.source, source_digest=msg.source_digest,
        artifact_digest=msg.artifact_digest,
        metadata=PolicyMetadata(description=md.description,
                                target_workloads=tuple(workload_class(c) for c in md.target_workloads),
                                tags=tuple(md.tags), author=md.author),
        tunables=tuple(tunable_spec_from_proto(t) for t in msg.tunables), parent=msg.parent, patch=msg.patch,
    )


def finding_to_proto(f: Finding) -> common_pb2.Finding:
    return common_pb2.Finding(severity=_e(f.severity), rule=f.rule, message=f.message, file=f.file,
                              line=f.line, hint=f.hint)


def finding_from_proto(msg: common_pb2.Finding) -> Finding:
    return Finding(severity=int(msg.severity), rule=msg.rule, message=msg.message, file=msg.file,
                   line=int(msg.line), hint=msg.hint)


def antipattern_to_proto(ap: Antipattern) -> policy_pb2.Antipattern:
    msg = policy_pb2.Antipattern(
        antipattern_id=ap.antipattern_id,
        policy=common_pb2.PolicyRef(name=ap.policy_name, version=ap.policy_version),
        workload_class=_e(ap.workload_class), reason=ap.reason,
        findings=[finding_to_proto(f) for f in ap.findings], source_digest=ap.source_digest, stage=ap.stage,
    )
    _ts(ap.at, msg.at)
    return msg


def antipattern_from_proto(msg: policy_pb2.Antipattern) -> Antipattern:
    wclass = WorkloadClass(msg.workload_class) if msg.workload_class else WorkloadClass.UNKNOWN_WORKLOAD
    return Antipattern(antipattern_id=msg.antipattern_id, policy_name=msg.policy.name,
                       policy_version=msg.policy.version, workload_class=wclass, reason=msg.reason,
                       findings=tuple(finding_from_proto(f) for f in msg.findings),
                       source_digest=msg.source_digest, stage=msg.stage, at=_dt(msg.at, msg.HasField("at")))


def query_from_proto(msg: services_pb2.SearchRequest) -> SearchQuery:
    return SearchQuery(text=msg.query, workload_classes=tuple(workload_class(c) for c in msg.workload_classes),
                       statuses=tuple(status(s) for s in msg.statuses), keywords=tuple(msg.keywords),
                       limit=msg.limit or 5, workload_key=msg.workload_key)


def hit_to_proto(hit: SearchHit) -> services_pb2.SearchHit:
    return services_pb2.SearchHit(policy=policy_to_proto(hit.policy), similarity=hit.similarity,
                                  historical_ratio=hit.historical_ratio, score=hit.score)


def hit_from_proto(msg: services_pb2.SearchHit) -> SearchHit:
    return SearchHit(policy=policy_from_proto_full(msg.policy), similarity=msg.similarity,
                     historical_ratio=msg.historical_ratio, score=msg.score)


def policy_from_proto_full(msg: policy_pb2.Policy) -> Policy:
    """A stored Policy read back over gRPC: includes status, history and creation time."""
    base = policy_from_proto(msg)
    return Policy(**{**base.__dict__, "status": status(msg.status),
                     "history": tuple(record_from_proto(r) for r in msg.history),
                     "created_at": _dt(msg.created_at, msg.HasField("created_at"))})
