"""PlannerService over gRPC: wire <-> domain, errors -> status codes."""

from __future__ import annotations

import grpc

from schedcp.errors import InvalidArgument, SchedcpError
from schedcp.rpc import abort_for
from schedcp.v1 import services_pb2, services_pb2_grpc
from services.planner.planner import Planner


class PlannerServicer(services_pb2_grpc.PlannerServiceServicer):
    def __init__(self, *, planner: Planner) -> None:
        self.planner = planner

    async def Plan(  # noqa: N802 - gRPC method name
        self, request: services_pb2.PlanRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.PlanResponse:
        try:
            if not request.HasField("profile"):
                raise InvalidArgument("PlanRequest.profile is required")
            if request.llm not in ("", "none", "default"):
                # A caller-chosen endpoint would let any client point the
                # planner at an arbitrary URL; the endpoint is configuration.
                raise InvalidArgument(
                    f"PlanRequest.llm={request.llm[:60]!r} is not accepted",
                    hint="use '' (the configured SCHEDCP_LLM_URL) or 'none'",
                )
            plans = await self.planner.plan(
                request.profile,
                max_candidates=min(request.max_candidates, 16),
                use_llm=request.llm != "none",
            )
        except SchedcpError as exc:
            await abort_for(context, exc)
            raise  # abort_for raises; keeps type checkers satisfied
        return services_pb2.PlanResponse(plans=plans)
