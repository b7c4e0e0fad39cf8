"""The RepositoryService gRPC servicer: wire messages <-> the PolicyStore.

The store is synchronous (SQLite and the embedding model are CPU work), so
each call runs in a worker thread and the event loop stays free for other
RPCs and bus messages. Errors become status codes here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from schedcp.errors import SchedcpError
from schedcp.rpc import abort_for
from schedcp.v1 import policy_pb2, services_pb2, services_pb2_grpc

from . import convert
from .events import performance_event_id
from .store import InvalidPolicy, PolicyStatus, PolicyStore

T = TypeVar("T")


class RepositoryServicer(services_pb2_grpc.RepositoryServiceServicer):
    """Thin adapter; ``store`` is any PolicyStore backend."""

    def __init__(self, *, store: PolicyStore) -> None:
        self._store = store

    async def _call(self, context: grpc.aio.ServicerContext, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        except SchedcpError as exc:
            await abort_for(context, exc)
        raise AssertionError("unreachable: context.abort raises")

    async def Search(self, request: services_pb2.SearchRequest, context: grpc.aio.ServicerContext
                     ) -> services_pb2.SearchResponse:
        query = await self._call(context, convert.query_from_proto, request)
        hits = await self._call(context, self._store.search, query)
        return services_pb2.SearchResponse(hits=[convert.hit_to_proto(h) for h in hits])

    async def Get(self, request: services_pb2.GetPolicyRequest, context: grpc.aio.ServicerContext
                  ) -> policy_pb2.Policy:
        policy = await self._call(context, self._store.get, request.name, request.version)
        return convert.policy_to_proto(policy)

    async def Put(self, request: services_pb2.PutPolicyRequest, context: grpc.aio.ServicerContext
                  ) -> policy_pb2.Policy:
        if request.policy.status not in (policy_pb2.POLICY_STATUS_UNSPECIFIED, policy_pb2.POLICY_CANDIDATE):
            await abort_for(context, InvalidPolicy(
                "Put stores new candidates only",
                hint="leave status unset; a passed verdict verifies it and Promote promotes it"))
        policy = await self._call(context, convert.policy_from_proto, request.policy)
        stored = await self._call(context, self._store.put, policy, status=PolicyStatus.CANDIDATE)
        return convert.policy_to_proto(stored)

    async def List(self, request: services_pb2.ListPoliciesRequest, context: grpc.aio.ServicerContext
                   ) -> services_pb2.ListPoliciesResponse:
        statuses = await self._call(context, lambda: [convert.status(s) for s in request.statuses])
        policies = await self._call(context, self._store.list, statuses=statuses,
                                    all_versions=request.all_versions)
        return services_pb2.ListPoliciesResponse(policies=[convert.policy_to_proto(p) for p in policies])

    async def RecordOutcome(self, request: services_pb2.RecordOutcomeRequest,
                            context: grpc.aio.ServicerContext) -> policy_pb2.Policy:
        record = await self._call(context, convert.record_from_proto, request.record)
        policy = await self._call(context, self._store.record_outcome, request.policy.name,
                                  request.policy.version, record, event_id=performance_event_id(record))
        return convert.policy_to_proto(policy)

    async def Promote(self, request: services_pb2.SetStatusRequest, context: grpc.aio.ServicerContext
                      ) -> policy_pb2.Policy:
        policy = await self._call(context, self._store.set_status, request.policy.name, request.policy.version,
                                  PolicyStatus.PROMOTED, reason=request.reason)
        return convert.policy_to_proto(policy)

    async def Deprecate(self, request: services_pb2.SetStatusRequest, context: grpc.aio.ServicerContext
                        ) -> policy_pb2.Policy:
        policy = await self._call(context, self._store.set_status, request.policy.name, request.policy.version,
                                  PolicyStatus.DEPRECATED, reason=request.reason)
        return convert.policy_to_proto(policy)

    async def ListAntipatterns(self, request: services_pb2.ListAntipatternsRequest,
                               context: grpc.aio.ServicerContext) -> services_pb2.ListAntipatternsResponse:
        wclass = await self._call(context, lambda: convert.workload_class(request.workload_class)
                                  if request.workload_class else None)
        aps = await self._call(context, self._store.list_antipatterns, name=request.policy.name,
                               version=request.policy.version, workload_class=wclass,
                               limit=request.limit or 50)
        return services_pb2.ListAntipatternsResponse(antipatterns=[convert.antipattern_to_proto(a) for a in aps])

    async def RecordAntipattern(self, request: services_pb2.RecordAntipatternRequest,
                                context: grpc.aio.ServicerContext) -> policy_pb2.Antipattern:
        ap = await self._call(context, convert.antipattern_from_proto, request.antipattern)
        stored = await self._call(context, self._store.record_antipattern, ap)
        return convert.antipattern_to_proto(stored)
