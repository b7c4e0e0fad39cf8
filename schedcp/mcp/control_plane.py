"""The gRPC side of the MCP gateway: one method per thing a tool needs.

Everything returns plain JSON-able dicts, because that is what an agent reads.
Two rules hold here, not in the tools, so no tool can break them:

* a scheduler reaches a node only through ``ExecutorService.Deploy`` with a
  verdict that came from the verifier in this same call (``verify_and_deploy``)
  or that the executor fetches from the verifier itself (``deploy_verdict``):
  the gateway never accepts artifact bytes or tokens from its caller;
* verdicts handed back to the caller drop the artifact bytes and the token's
  signature, so an agent cannot copy them into a forged request either.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from schedcp.digests import tunables_to_proto
from schedcp.errors import InvalidArgument, NotFound, PermissionDenied, SchedcpError, Unavailable
from schedcp.rpc import grpc_channel
from schedcp.settings import service_address
from schedcp.v1 import (
    common_pb2,
    plan_pb2,
    policy_pb2,
    services_pb2,
    services_pb2_grpc,
    verdict_pb2,
)

#: Reports progress of a long call: (step, total, message).
Progress = Callable[[float, float | None, str], Awaitable[None]]

_VERIFY_STAGES = 4.0  # build, kernel_verifier, static, dynamic (+ performance folded into dynamic)


class GatewayError(SchedcpError):
    """A control-plane call made for an MCP tool failed; the message is for the agent."""


class DeployRefused(PermissionDenied):
    """The verifier did not pass the scheduler, or the executor's token gate refused it."""


def to_dict(message: Message) -> dict[str, Any]:
    """A protobuf message as the JSON an agent reads (proto field names, enums by name)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def verdict_summary(verdict: verdict_pb2.Verdict) -> dict[str, Any]:
    """A verdict without the bytes an agent must never handle (artifact, signature)."""
    shown = verdict_pb2.Verdict()
    shown.CopyFrom(verdict)
    shown.ClearField("artifact")
    shown.ClearField("token")
    shown.plan.ClearField("source")
    shown.plan.ClearField("profile")
    out = to_dict(shown)
    if verdict.HasField("token") and verdict.token.claims:
        claims = verdict_pb2.TokenClaims.FromString(verdict.token.claims)
        out["token"] = {"token_id": claims.token_id, "key_id": verdict.token.key_id,
                        "expires_at": claims.expires_at.ToJsonString(),
                        "node_selector": to_dict(claims.node_selector)}
    return out


def workload_class(name: str) -> Any:
    """``"latency_server"`` or ``"LATENCY_SERVER"`` -> the enum value; empty -> 0."""
    if not name:
        return 0
    try:
        return int(common_pb2.WorkloadClass.Value(name.strip().upper()))
    except ValueError:
        known = [n.lower() for n in common_pb2.WorkloadClass.keys() if n != "WORKLOAD_CLASS_UNSPECIFIED"]
        raise InvalidArgument(f"unknown workload class {name!r}", hint=f"use one of {', '.join(known)}") from None


def policy_status(name: str) -> Any:
    if not name:
        return 0
    key = name.strip().upper()
    key = key if key.startswith("POLICY_") else f"POLICY_{key}"
    try:
        return int(policy_pb2.PolicyStatus.Value(key))
    except ValueError:
        raise InvalidArgument(f"unknown policy status {name!r}",
                              hint="use candidate, verified, promoted or deprecated") from None


def node_selector(nodes: Sequence[str], *, all_nodes: bool = False) -> common_pb2.NodeSelector:
    return common_pb2.NodeSelector(nodes=list(nodes), all_nodes=all_nodes)


def _rpc_error(service: str, address: str, exc: grpc.aio.AioRpcError) -> SchedcpError:
    code = exc.code()
    detail = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"the {service} service at {address} is not reachable: {detail}",
                           hint=f"start it (`schedcp up`) or set SCHEDCP_{service.upper()}_ADDR")
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(f"{service}: {detail}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(f"{service}: {detail}")
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION):
        return DeployRefused(f"{service} refused: {detail}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Unavailable(f"{service} did not answer in time ({detail})", hint="retry, or check the service log")
    return GatewayError(f"{service} failed with {code.name}: {detail}")


@dataclass
class ControlPlane:
    """gRPC clients of the six services, addressed by ``SCHEDCP_<SERVICE>_ADDR``.

    ``addresses`` overrides the environment per service (tests, several stacks).
    Channels are opened on first use and closed by ``close``.
    """

    addresses: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    verify_timeout_s: float = 1800.0
    deploy_timeout_s: float = 1800.0
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict, init=False, repr=False)

    def address(self, service: str) -> str:
        return self.addresses.get(service) or service_address(service)

    def _channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = grpc_channel(self.address(service))
        return self._channels[service]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def _unary(self, service: str, call: Callable[[grpc.aio.Channel], Awaitable[Any]]) -> Any:
        try:
            return await call(self._channel(service))
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error(service, self.address(service), exc) from exc

    # ---------------------------------------------------------------- repository

    async def list_schedulers(self, *, query: str = "", workload: str = "", status: str = "",
                              limit: int = 20) -> list[dict[str, Any]]:
        """Library schedulers: ranked by ``query`` when given, else all latest versions."""
        statuses = [policy_status(status)] if status else []
        if query or workload:
            classes = [workload_class(workload)] if workload else []
            req = services_pb2.SearchRequest(query=query, workload_classes=classes, statuses=statuses,
                                             limit=max(1, min(limit, 100)))
            resp = await self._unary("repository", lambda ch: services_pb2_grpc.RepositoryServiceStub(ch)
                                     .Search(req, timeout=self.timeout_s))
            return [{**_policy_brief(hit.policy), "similarity": round(hit.similarity, 4),
                     "historical_ratio": round(hit.historical_ratio, 4), "score": round(hit.score, 4)}
                    for hit in resp.hits]
        lreq = services_pb2.ListPoliciesRequest(statuses=statuses)
        lresp = await self._unary("repository", lambda ch: services_pb2_grpc.RepositoryServiceStub(ch)
                                  .List(lreq, timeout=self.timeout_s))
        return [_policy_brief(p) for p in list(lresp.policies)[:max(1, limit)]]

    async def get_scheduler(self, name: str, version: str = "") -> dict[str, Any]:
        req = services_pb2.GetPolicyRequest(name=name, version=version)
        policy = await self._unary("repository", lambda ch: services_pb2_grpc.RepositoryServiceStub(ch)
                                   .Get(req, timeout=self.timeout_s))
        return to_dict(policy)

    # ---------------------------------------------------------------- observer

    async def profile(self, *, pid: int = 0, cgroup: str = "", node: bool = False, window_s: float = 2.0,
                      deep: bool = False, publish: bool = False) -> dict[str, Any]:
        selector = services_pb2.WorkloadSelector()
        if pid:
            selector.pid = pid
        elif cgroup:
            selector.cgroup = cgroup
        elif node:
            selector.node = True
        else:
            raise InvalidArgument("say which workload to profile", hint="give pid, cgroup, or node=true")
        if deep:
            dreq = services_pb2.DeepProfileRequest(selector=selector, window_seconds=window_s, publish=publish)
            resp = await self._unary("observer", lambda ch: services_pb2_grpc.ObserverServiceStub(ch)
                                     .DeepProfile(dreq, timeout=self.timeout_s + window_s * 2))
        else:
            sreq = services_pb2.SummaryRequest(selector=selector, window_seconds=window_s, publish=publish)
            resp = await self._unary("observer", lambda ch: services_pb2_grpc.ObserverServiceStub(ch)
                                     .Summary(sreq, timeout=self.timeout_s + window_s * 2))
        return to_dict(resp)

    # ---------------------------------------------------------------- learner

    async def history(self, *, workload: str = "", limit: int = 20) -> dict[str, Any]:
        req = services_pb2.HistoryRequest(workload_class=workload_class(workload), limit=max(1, min(limit, 200)))
        resp = await self._unary("learner", lambda ch: services_pb2_grpc.LearnerServiceStub(ch)
                                 .History(req, timeout=self.timeout_s))
        return to_dict(resp)

    # ---------------------------------------------------------------- verifier

    async def verify(self, plan: plan_pb2.Plan, *, workload: str = "", skip_performance: bool = False,
                     progress: Progress | None = None) -> verdict_pb2.Verdict:
        """Stream the verifier's stages (reported through ``progress``); the signed verdict."""
        req = services_pb2.VerifyRequest(plan=plan, workload_class=workload_class(workload),
                                         skip_performance=skip_performance)
        stub = services_pb2_grpc.VerifierServiceStub(self._channel("verifier"))
        verdict: verdict_pb2.Verdict | None = None
        step = 0.0
        try:
            async for update in stub.Verify(req, timeout=self.verify_timeout_s):
                if update.HasField("verdict"):
                    verdict = update.verdict
                elif progress is not None:
                    step += 1
                    await progress(min(step, _VERIFY_STAGES), _VERIFY_STAGES, update.message)
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("verifier", self.address("verifier"), exc) from exc
        if verdict is None:
            raise GatewayError("the verifier ended the stream without a verdict",
                               hint="check the verifier's log; nothing was deployed")
        return verdict

    async def get_verdict(self, verdict_id: str) -> verdict_pb2.Verdict:
        req = services_pb2.GetVerdictRequest(verdict_id=verdict_id)
        return await self._unary("verifier", lambda ch: services_pb2_grpc.VerifierServiceStub(ch)
                                 .GetVerdict(req, timeout=self.timeout_s))  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- executor

    async def _deploy_stream(self, req: services_pb2.DeployRequest, progress: Progress | None) -> list[dict[str, Any]]:
        stub = services_pb2_grpc.ExecutorServiceStub(self._channel("executor"))
        reports: list[dict[str, Any]] = []
        try:
            async for report in stub.Deploy(req, timeout=self.deploy_timeout_s):
                reports.append(to_dict(report))
                if progress is not None:
                    await progress(float(len(reports)), None, f"{report.node}: "
                                   f"{_phase_name(report.phase)} {report.message}"[:200])
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("executor", self.address("executor"), exc) from exc
        return reports

    async def verify_and_deploy(self, plan: plan_pb2.Plan, *, nodes: Sequence[str] = (), all_nodes: bool = False,
                                canary: float = 0.0, bake_s: float = 0.0, workload: str = "",
                                progress: Progress | None = None) -> dict[str, Any]:
        """Verify ``plan``; deploy the verdict only if it passed, exactly as the verifier signed it."""
        verdict = await self.verify(plan, workload=workload, progress=progress)
        summary = verdict_summary(verdict)
        if not verdict.passed or not verdict.HasField("token"):
            raise DeployRefused(
                f"the verifier did not pass {plan.policy.name or 'the scheduler'} "
                f"(verdict {verdict.verdict_id}): {_failure_text(verdict)}",
                hint="fix what the findings say and verify again; nothing was deployed", verdict=summary)
        req = services_pb2.DeployRequest(verdict=verdict, nodes=node_selector(nodes, all_nodes=all_nodes),
                                         canary=canary, bake_seconds=bake_s)
        reports = await self._deploy_stream(req, progress)
        return {"verdict": summary, "reports": reports, "outcome": _rollout_outcome(reports)}

    async def deploy_verdict(self, verdict_id: str, *, nodes: Sequence[str] = (), all_nodes: bool = False,
                             canary: float = 0.0, bake_s: float = 0.0,
                             progress: Progress | None = None) -> dict[str, Any]:
        """Deploy an earlier verdict by id: the executor fetches it from the verifier and checks its token."""
        if not verdict_id.strip():
            raise InvalidArgument("verdict_id is empty", hint="use the verdict_id a verification returned")
        req = services_pb2.DeployRequest(verdict_id=verdict_id.strip(),
                                         nodes=node_selector(nodes, all_nodes=all_nodes),
                                         canary=canary, bake_seconds=bake_s)
        reports = await self._deploy_stream(req, progress)
        return {"verdict_id": verdict_id, "reports": reports, "outcome": _rollout_outcome(reports)}

    async def rollback(self, *, nodes: Sequence[str] = (), all_nodes: bool = False, reason: str = "",
                       rollout_id: str = "") -> list[dict[str, Any]]:
        req = services_pb2.RollbackRequest(nodes=node_selector(nodes, all_nodes=all_nodes),
                                           reason=reason or "stopped through the MCP gateway",
                                           rollout_id=rollout_id or f"mcp-stop-{uuid.uuid4().hex[:8]}")
        stub = services_pb2_grpc.ExecutorServiceStub(self._channel("executor"))
        try:
            return [to_dict(r) async for r in stub.Rollback(req, timeout=self.deploy_timeout_s)]
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("executor", self.address("executor"), exc) from exc

    async def status(self, *, nodes: Sequence[str] = ()) -> dict[str, Any]:
        req = services_pb2.StatusRequest(nodes=node_selector(nodes))
        resp = await self._unary("executor", lambda ch: services_pb2_grpc.ExecutorServiceStub(ch)
                                 .Status(req, timeout=self.timeout_s))
        return to_dict(resp)


def plan_for(*, name: str, version: str = "", source: str = "", tunables: Mapping[str, Any] | None = None,
             description: str = "", workload: str = "", nodes: Sequence[str] = ()) -> plan_pb2.Plan:
    """A Plan the verifier accepts: a library policy with tunables, or new source."""
    if not name.strip():
        raise InvalidArgument("a scheduler needs a name", hint="e.g. name='mcp_fifo'")
    plan = plan_pb2.Plan(plan_id=f"mcp-{uuid.uuid4().hex[:12]}",
                         path=plan_pb2.COMPOSE_NEW if source else plan_pb2.CONFIGURE_EXISTING,
                         source=source, rationale=description[:2000] or "requested through the MCP gateway")
    plan.meta.correlation_id = plan.plan_id
    plan.policy.name = name.strip()
    plan.policy.version = version
    if workload:
        plan.profile.workload_class = workload_class(workload)  # type: ignore[assignment]
    if nodes:
        plan.target.nodes.extend(nodes)
    clean: dict[str, Any] = {}
    for key, value in (tunables or {}).items():
        if not isinstance(value, bool | int | float | str):
            raise InvalidArgument(f"tunable {key!r} has a {type(value).__name__} value",
                                  hint="tunables are integers, booleans, numbers or strings")
        clean[str(key)] = value
    tunables_to_proto(clean, plan.tunables)
    return plan


def _policy_brief(p: policy_pb2.Policy) -> dict[str, Any]:
    return {"name": p.name, "version": p.version,
            "status": policy_pb2.PolicyStatus.Name(p.status).removeprefix("POLICY_").lower(),
            "description": p.metadata.description,
            "target_workloads": [common_pb2.WorkloadClass.Name(w).lower() for w in p.metadata.target_workloads],
            "tags": list(p.metadata.tags),
            "tunables": [{"name": t.name, "type": policy_pb2.TunableType.Name(t.type).removeprefix("TUNABLE_").lower(),
                          "min": t.min, "max": t.max, "description": t.description} for t in p.tunables],
            "parent": p.parent, "runs_recorded": len(p.history)}


def _phase_name(phase: int) -> str:
    from schedcp.v1 import deployment_pb2

    return deployment_pb2.DeploymentPhase.Name(phase).removeprefix("PHASE_")  # type: ignore[arg-type]


def _rollout_outcome(reports: list[dict[str, Any]]) -> dict[str, str]:
    """The last phase each node reported (the ``*`` entry is the coordinator's summary)."""
    last: dict[str, str] = {}
    for r in reports:
        last[r.get("node", "?")] = str(r.get("phase", "")).removeprefix("PHASE_")
    return last


def _failure_text(verdict: verdict_pb2.Verdict) -> str:
    parts = []
    for stage in verdict.stages:
        if stage.status == verdict_pb2.STAGE_FAILED:
            findings = "; ".join(f"{f.rule}: {f.message}" for f in stage.findings[:5])
            parts.append(f"{stage.name} failed" + (f" ({findings})" if findings else ""))
    return ", ".join(parts)[:1500] or "no stage passed"
