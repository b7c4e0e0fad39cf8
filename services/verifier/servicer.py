"""Thin gRPC servicer: VerifierService (Verify streams progress per stage)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from schedcp.errors import NotFound, SchedcpError
from schedcp.rpc import abort_for
from schedcp.v1 import services_pb2, services_pb2_grpc, verdict_pb2
from services.verifier.convert import candidate_from_plan, stage_to_proto, verdict_to_proto
from services.verifier.domain import StageResult
from services.verifier.verifier import ExecutionVerifier


class VerifierServicer(services_pb2_grpc.VerifierServiceServicer):
    def __init__(self, *, verifier: ExecutionVerifier, keys_export: Path | None = None) -> None:
        self.verifier = verifier
        self.keys_export = keys_export

    async def Verify(self, request: services_pb2.VerifyRequest,  # noqa: N802
                     context: grpc.aio.ServicerContext) -> AsyncIterator[services_pb2.VerifyProgress]:
        try:
            cand = candidate_from_plan(request.plan, workload_class=request.workload_class)
        except SchedcpError as exc:
            await abort_for(context, exc)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StageResult | None] = asyncio.Queue()

        def progress(stage: StageResult) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, stage)

        # to_thread (not run_in_executor) carries the RPC's trace context along.
        task = asyncio.ensure_future(asyncio.to_thread(
            self.verifier.verify, cand,
            node_selector=request.plan.target if request.plan.HasField("target") else None,
            policy=request.plan.policy, progress=progress,
            skip_performance=request.skip_performance))
        task.add_done_callback(lambda _f: loop.call_soon_threadsafe(queue.put_nowait, None))
        while True:
            stage = await queue.get()
            if stage is None:
                break
            yield services_pb2.VerifyProgress(stage=stage_to_proto(stage),
                                              message=f"{stage.name}: {stage.status.value}")
        try:
            signed = await task
        except SchedcpError as exc:
            await abort_for(context, exc)
            return
        verdict = verdict_to_proto(signed.record, plan=request.plan, token=signed.token)
        yield services_pb2.VerifyProgress(verdict=verdict,
                                          message="pass" if signed.record.passed else "fail")

    async def GetVerdict(self, request: services_pb2.GetVerdictRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> verdict_pb2.Verdict:
        rec = self.verifier.get(request.verdict_id)
        if rec is None:
            await abort_for(context, NotFound(f"no verdict {request.verdict_id!r}",
                                              hint="verdicts are kept in the verifier's cache"))
            raise AssertionError("abort_for always raises")
        # A passing verdict comes with the token its verification issued (if
        # it has not expired), so a deploy can name just the verdict id.
        return verdict_to_proto(rec, token=self.verifier.token_for(rec.verdict_id) if rec.passed else None)

    async def PublicKeys(self, request: services_pb2.PublicKeysRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> services_pb2.PublicKeysResponse:
        keys = self.verifier.keyring.public_keys()
        return services_pb2.PublicKeysResponse(keys=[
            services_pb2.VerifierKey(key_id=k.key_id, public_key=k.public_key, active=k.active)
            for k in keys])
