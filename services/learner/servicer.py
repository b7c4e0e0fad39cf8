"""LearnerService over gRPC: wire <-> domain, errors -> status codes."""

from __future__ import annotations

import grpc

from schedcp.errors import SchedcpError
from schedcp.rpc import abort_for
from schedcp.v1 import services_pb2, services_pb2_grpc
from services.learner.learner import Learner


class LearnerServicer(services_pb2_grpc.LearnerServiceServicer):
    def __init__(self, *, learner: Learner) -> None:
        self.learner = learner

    async def History(  # noqa: N802 - gRPC method name
        self, request: services_pb2.HistoryRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.HistoryResponse:
        try:
            return await self.learner.history(request.workload_class, request.limit)
        except SchedcpError as exc:
            await abort_for(context, exc)
            raise
