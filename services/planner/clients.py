"""gRPC adapters for the planner's and learner's ports (repository, learner history).

They translate gRPC status codes back into schedcp errors so the domain code
handles "repository down" like any other Unavailable, without importing grpc.
The learner uses :class:`RepositoryClient` too.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from schedcp.errors import InvalidArgument, NotFound, SchedcpError, Unavailable
from schedcp.rpc import grpc_channel
from schedcp.v1 import common_pb2, policy_pb2, services_pb2, services_pb2_grpc

_TIMEOUT_S = 10.0


def _error(exc: grpc.aio.AioRpcError, what: str) -> SchedcpError:
    code = exc.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(f"{what}: {exc.details()}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(f"{what}: {exc.details()}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"{what}: {exc.details()}", hint="is the service running?")
    return SchedcpError(f"{what}: {code.name}: {exc.details()}")


class RepositoryClient:
    """The repository over gRPC; satisfies the planner's and the learner's repository ports."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = grpc_channel(address)
        self._stub = services_pb2_grpc.RepositoryServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, request: object, what: str) -> object:
        try:
            return await getattr(self._stub, method)(request, timeout=_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc, f"repository {what}") from exc

    async def search(
        self, query: str, *, workload_classes: Sequence[int], limit: int, workload_key: str = ""
    ) -> list[services_pb2.SearchHit]:
        resp = await self._call(
            "Search",
            services_pb2.SearchRequest(
                query=query,
                # protoc's .pyi types enum fields as WorkloadClass | str, but the
                # runtime takes plain ints (WorkloadClass values are ints).
                workload_classes=list(workload_classes),  # type: ignore[arg-type]
                limit=limit,
                workload_key=workload_key,
            ),
            "search",
        )
        return list(resp.hits)  # type: ignore[attr-defined]

    async def get(self, name: str, version: str = "") -> policy_pb2.Policy:
        return await self._call(  # type: ignore[return-value]
            "Get", services_pb2.GetPolicyRequest(name=name, version=version), f"get {name}"
        )

    async def list_policies(self) -> list[policy_pb2.Policy]:
        resp = await self._call("List", services_pb2.ListPoliciesRequest(), "list")
        return list(resp.policies)  # type: ignore[attr-defined]

    async def list_antipatterns(
        self, *, workload_class: int, limit: int
    ) -> list[policy_pb2.Antipattern]:
        resp = await self._call(
            "ListAntipatterns",
            services_pb2.ListAntipatternsRequest(workload_class=workload_class, limit=limit),  # type: ignore[arg-type]
            "list antipatterns",
        )
        return list(resp.antipatterns)  # type: ignore[attr-defined]

    async def record_antipattern(self, antipattern: policy_pb2.Antipattern) -> None:
        await self._call(
            "RecordAntipattern",
            services_pb2.RecordAntipatternRequest(antipattern=antipattern),
            "record antipattern",
        )

    async def record_outcome(
        self, policy: common_pb2.PolicyRef, record: policy_pb2.PerformanceRecord
    ) -> policy_pb2.Policy:
        return await self._call(  # type: ignore[return-value]
            "RecordOutcome",
            services_pb2.RecordOutcomeRequest(policy=policy, record=record),
            "record outcome",
        )

    async def promote(self, policy: common_pb2.PolicyRef, reason: str) -> None:
        await self._call(
            "Promote", services_pb2.SetStatusRequest(policy=policy, reason=reason), "promote"
        )

    async def deprecate(self, policy: common_pb2.PolicyRef, reason: str) -> None:
        await self._call(
            "Deprecate", services_pb2.SetStatusRequest(policy=policy, reason=reason), "deprecate"
        )


class HistoryClient:
    """The learner's History over gRPC (the planner's history port)."""

    def __init__(self, address: str) -> None:
        self._channel = grpc_channel(address)
        self._stub = services_pb2_grpc.LearnerServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def history(self, workload_class: int, limit: int) -> services_pb2.HistoryResponse:
        try:
            return await self._stub.History(
                services_pb2.HistoryRequest(workload_class=workload_class, limit=limit),  # type: ignore[arg-type]
                timeout=5.0,
            )
        except grpc.aio.AioRpcError as exc:
            raise _error(exc, "learner history") from exc
