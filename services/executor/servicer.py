"""ExecutorService: Deploy, Rollback and Status over gRPC, reports on the bus."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from schedcp import subjects, tokens
from schedcp.errors import InvalidArgument, NotFound, SchedcpError
from schedcp.rpc import abort_for
from schedcp.v1 import common_pb2, deployment_pb2, services_pb2, services_pb2_grpc, verdict_pb2
from schedcp.workload_key import profile_workload_key
from services.executor import convert
from services.executor.handles import LocalNodeHandle, RemoteNodeHandle
from services.executor.node_executor import DeployRequest, NodeExecutor, Report
from services.executor.rollout import NodeHandle, RolloutCoordinator

log = logging.getLogger(__name__)

Publish = Callable[[str, Any], Awaitable[object]]
FetchVerdict = Callable[[str], Awaitable[verdict_pb2.Verdict]]


class ExecutorServicer(services_pb2_grpc.ExecutorServiceServicer):
    def __init__(self, *, local: NodeExecutor, peers: Mapping[str, str], labels: Mapping[str, str],
                 publish: Publish, fetch_verdict: FetchVerdict, default_canary: float, default_bake_s: float,
                 default_regression_pct: float) -> None:
        self._local = local
        self._handles: dict[str, NodeHandle] = {local.node_name: LocalNodeHandle(local)}
        self._remote: dict[str, RemoteNodeHandle] = {}
        for name, address in peers.items():
            if name != local.node_name:
                self._remote[name] = RemoteNodeHandle(name, address)
                self._handles[name] = self._remote[name]
        self._labels = dict(labels)
        self._publish = publish
        self._fetch_verdict = fetch_verdict
        self._canary = default_canary
        self._bake_s = default_bake_s
        self._regression_pct = default_regression_pct

    def _select(self, selector: common_pb2.NodeSelector) -> list[str]:
        if not selector.nodes and not selector.all_nodes and not selector.labels:
            return [self._local.node_name]
        if selector.nodes:
            return [n for n in selector.nodes]
        # Label selectors are evaluated by each node against its own labels
        # (the token gate); the coordinator offers the rollout to every node.
        return sorted(self._handles)

    async def Deploy(self, request: services_pb2.DeployRequest,  # noqa: N802 - gRPC name
                     context: grpc.aio.ServicerContext) -> AsyncIterator[deployment_pb2.DeploymentReport]:
        try:
            verdict = request.verdict if request.HasField("verdict") else await self._fetch_verdict(request.verdict_id)
            req = _deploy_request(verdict, request, default_bake=self._bake_s, default_pct=self._regression_pct)
            nodes = self._select(request.nodes)
        except SchedcpError as exc:
            await abort_for(context, exc)
            return
        canary = request.canary if request.canary > 0 else self._canary
        coordinator = RolloutCoordinator(nodes=self._handles)
        finals: dict[str, Report] = {}
        async for report in coordinator.run(req, node_names=nodes, canary=canary):
            if report.node != "*":
                finals[report.node] = report
            pb = convert.report_to_proto(report)
            await self._emit(report, pb)
            yield pb
        if not request.phase_label:
            # Driven by a client, not by another executor's coordinator: this
            # executor owns the rollout and reports its outcome.
            await self._outcome(verdict, req, finals)

    async def _emit(self, report: Report, pb: deployment_pb2.DeploymentReport) -> None:
        # Peers publish their own nodes' reports; a coordinator publishes the
        # reports of its own node and the fleet-wide summary.
        if report.node in self._remote:
            return
        try:
            await self._publish(subjects.deployment_subject(report.node if report.node != "*" else self._local.node_name), pb)
        except Exception as exc:  # noqa: BLE001 - a bus outage must not abort a rollout in progress
            log.error("could not publish deployment report: %s", exc)

    async def _outcome(self, verdict: verdict_pb2.Verdict, req: DeployRequest, finals: dict[str, Report]) -> None:
        if not finals:
            return
        completed = [r for r in finals.values() if r.phase == "COMPLETE"]
        success = bool(completed) and len(completed) == len(finals)
        ratios = [r.improvement for r in completed if r.improvement > 0]
        outcome = deployment_pb2.DeploymentOutcome(
            rollout_id=req.rollout_id, profile_id=verdict.plan.profile.profile_id,
            workload_class=verdict.plan.profile.workload_class, config_digest=verdict.config_digest,
            improvement=sum(ratios) / len(ratios) if ratios else 0.0,
            metric=next(iter(completed[0].metrics_after), "") if completed and completed[0].metrics_after else "",
            success=success, source="deployment", node=",".join(sorted(finals)),
            workload_key=profile_workload_key(verdict.plan.profile),
            reason="; ".join(f"{n}: {r.phase} {r.message}"[:300] for n, r in sorted(finals.items())),
        )
        outcome.policy.CopyFrom(verdict.plan.policy)
        outcome.tunables.MergeFrom(verdict.plan.tunables)
        try:
            await self._publish(subjects.OUTCOMES, outcome)
        except Exception as exc:  # noqa: BLE001
            log.error("could not publish the deployment outcome: %s", exc)

    async def Rollback(self, request: services_pb2.RollbackRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> AsyncIterator[deployment_pb2.DeploymentReport]:
        nodes = self._select(request.nodes)
        unknown = [n for n in nodes if n not in self._handles]
        if unknown:
            await abort_for(context, NotFound(f"unknown nodes {unknown}", hint=f"known: {sorted(self._handles)}"))
            return
        rollout_id = request.rollout_id or "manual-rollback"
        reason = request.reason or "operator requested a rollback"
        for name in nodes:
            async for report in self._handles[name].rollback(rollout_id=rollout_id, reason=reason):
                pb = convert.report_to_proto(report)
                await self._emit(report, pb)
                yield pb

    async def Status(self, request: services_pb2.StatusRequest,  # noqa: N802
                     context: grpc.aio.ServicerContext) -> services_pb2.StatusResponse:
        wanted = set(request.nodes.nodes) if request.nodes.nodes else None
        out = services_pb2.StatusResponse()
        if wanted is None or self._local.node_name in wanted:
            out.nodes.append(convert.status_to_proto(await self._local.status()))
        for name, handle in sorted(self._remote.items()):
            if wanted is not None and name not in wanted:
                continue
            try:
                peer = await handle.status()
                out.nodes.extend(peer.nodes)
            except grpc.aio.AioRpcError as exc:
                out.nodes.append(services_pb2.NodeStatus(node=name, healthy=False,
                                                         message=f"executor unreachable: {exc.code().name}"))
        return out


def _deploy_request(verdict: verdict_pb2.Verdict, request: services_pb2.DeployRequest, *, default_bake: float,
                    default_pct: float) -> DeployRequest:
    if not verdict.HasField("token") or not verdict.token.signature:
        raise InvalidArgument("the verdict carries no deployment token",
                              hint="only a verdict that passed every verifier stage can be deployed, "
                                   "within its token's validity: verify the candidate again for a "
                                   "fresh token")
    if not verdict.artifact:
        raise InvalidArgument("the verdict carries no artifact bytes",
                              hint="deploy the verdict exactly as the verifier returned it")
    tunables = convert.tunables_from_json(verdict.config_json)
    workload = verdict.performance.workload or ""
    from schedcp.v1 import common_pb2 as c

    if verdict.plan.profile.workload_class:
        workload_class = c.WorkloadClass.Name(verdict.plan.profile.workload_class)
    elif workload in c.WorkloadClass.keys():
        workload_class = workload
    else:
        workload_class = _class_of_workload(workload)
    claims = verdict_pb2.TokenClaims()
    claims.ParseFromString(verdict.token.claims)
    policy = verdict.plan.policy.name or claims.policy.name
    version = verdict.plan.policy.version or claims.policy.version
    return DeployRequest(
        artifact=verdict.artifact, tunables=tunables, token=verdict.token, policy=policy, version=version,
        workload_class=workload_class, rollout_id=request.rollout_id,
        label=request.phase_label or "CANARY",
        bake_s=request.bake_seconds if request.bake_seconds > 0 else default_bake,
        regression_pct=request.regression_threshold_pct if request.regression_threshold_pct > 0 else default_pct,
    )


def _class_of_workload(name: str) -> str:
    if not name:
        return ""
    try:
        from schedcp.workloads import get_workload

        return get_workload(name).workload_class
    except SchedcpError:
        return ""


__all__ = ["ExecutorServicer", "tokens"]
