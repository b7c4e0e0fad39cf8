"""Conversions between the executor's domain types and schedcp.v1 messages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from schedcp.digests import canonical_tunables_json
from schedcp.errors import InvalidArgument
from schedcp.v1 import common_pb2, deployment_pb2, services_pb2
from services.executor.breaker import Trip
from services.executor.node_executor import NodeStatusInfo, Report
from services.executor.state import Deployed


def tunables_json(tunables: Mapping[str, Any]) -> str:
    return canonical_tunables_json(tunables)


def tunables_from_json(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"verdict config_json is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidArgument("verdict config_json must be a JSON object of tunables")
    return value


def report_to_proto(report: Report) -> deployment_pb2.DeploymentReport:
    pb = deployment_pb2.DeploymentReport(
        report_id=f"{report.rollout_id}:{report.node}:{report.phase}:{int(report.at * 1000)}",
        rollout_id=report.rollout_id, node=report.node, token_id=report.token_id,
        phase=deployment_pb2.DeploymentPhase.Value(f"PHASE_{report.phase}"),
        message=report.message, sched_ext_state=report.sched_ext_state, config_digest=report.config_digest,
        improvement=report.improvement,
    )
    pb.policy.name = report.policy
    pb.policy.version = report.version
    pb.metrics_before.update(report.metrics_before)
    pb.metrics_after.update(report.metrics_after)
    pb.at.FromNanoseconds(int(report.at * 1e9))
    for trip in report.breaker:
        ev = pb.breaker_events.add(kind=trip.kind, reason=trip.reason, metric=trip.metric, value=trip.value,
                                   threshold=trip.threshold)
        ev.at.FromNanoseconds(int(report.at * 1e9))
    return pb


def report_from_proto(pb: deployment_pb2.DeploymentReport) -> Report:
    return Report(
        node=pb.node, rollout_id=pb.rollout_id,
        phase=deployment_pb2.DeploymentPhase.Name(pb.phase).removeprefix("PHASE_"),
        message=pb.message, token_id=pb.token_id, policy=pb.policy.name, version=pb.policy.version,
        config_digest=pb.config_digest, sched_ext_state=pb.sched_ext_state,
        metrics_before=dict(pb.metrics_before), metrics_after=dict(pb.metrics_after),
        breaker=[Trip(kind=e.kind, reason=e.reason, metric=e.metric, value=e.value, threshold=e.threshold)
                 for e in pb.breaker_events],
        at=pb.at.ToNanoseconds() / 1e9 if pb.HasField("at") else 0.0,
        improvement=pb.improvement,
    )


def _ref(d: Deployed | None) -> common_pb2.PolicyRef:
    return common_pb2.PolicyRef(name=d.policy, version=d.version) if d else common_pb2.PolicyRef()


def status_to_proto(info: NodeStatusInfo) -> services_pb2.NodeStatus:
    running = info.running
    return services_pb2.NodeStatus(
        node=info.node, sched_ext_state=info.sched_ext_state, running=_ref(running),
        config_digest=running.config_digest if running else "", token_id=running.token_id if running else "",
        since_unix=int(running.since) if running else 0, healthy=info.healthy, known_good=_ref(info.known_good),
        message=info.message if not info.root_ops else f"{info.message} (root ops {info.root_ops})",
    )
