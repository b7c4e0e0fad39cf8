"""Call schedcp's gRPC APIs from your own tooling: health, reflection, then real calls.

    python examples/grpc_client.py                          # the local stack's default addresses
    python examples/grpc_client.py --repository 10.0.0.5:50066 --observer 10.0.0.5:50061

It uses only grpcio, its health/reflection packages and the generated
``schedcp.v1`` stubs, so it is the shape of any client you write (docs/grpc.md):

1. ask the standard health service whether the server is SERVING;
2. list what it serves through server reflection (what ``grpcurl list`` does);
3. list the repository's schedulers and rank them for a workload class;
4. take a one-second profile of the whole node from the observer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from schedcp.v1 import common_pb2, services_pb2, services_pb2_grpc

#: Default ports of a local stack (`schedcp up`); SCHEDCP_<SERVICE>_ADDR overrides them.
DEFAULTS = {"repository": "127.0.0.1:50066", "observer": "127.0.0.1:50061"}


async def healthy(channel: grpc.aio.Channel, service: str = "") -> bool:
    """The standard grpc.health.v1 check; "" asks about the server as a whole."""
    resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return resp.status == health_pb2.HealthCheckResponse.SERVING


async def list_services(channel: grpc.aio.Channel) -> list[str]:
    """Service names through server reflection, like ``grpcurl -plaintext HOST:PORT list``."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one_request():  # the reflection RPC is a bidirectional stream
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: list[str] = []
    async for resp in stub.ServerReflectionInfo(one_request(), timeout=5):
        names.extend(s.name for s in resp.list_services_response.service)
    return sorted(names)


async def describe_method(channel: grpc.aio.Channel, service: str, method: str) -> str:
    """Request and response types of one method, read from the server's descriptors."""
    from google.protobuf import descriptor_pb2

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one_request():
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)

    async for resp in stub.ServerReflectionInfo(one_request(), timeout=5):
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            for svc in fd.service:
                if f"{fd.package}.{svc.name}" == service:
                    for m in svc.method:
                        if m.name == method:
                            stream = "stream " if m.server_streaming else ""
                            return f"rpc {m.name}({m.input_type.lstrip('.')}) returns ({stream}{m.output_type.lstrip('.')})"
    return f"{service}/{method}: not found"


async def main(repository: str, observer: str) -> int:
    async with grpc.aio.insecure_channel(repository) as channel:
        if not await healthy(channel):
            print(f"repository at {repository} is not serving", file=sys.stderr)
            return 1
        print(f"repository {repository}: SERVING")
        for name in await list_services(channel):
            print(f"  serves {name}")
        print("  " + await describe_method(channel, "schedcp.v1.RepositoryService", "Search"))

        repo = services_pb2_grpc.RepositoryServiceStub(channel)
        listed = await repo.List(services_pb2.ListPoliciesRequest(), timeout=30)
        print(f"{len(listed.policies)} schedulers in the library:")
        for policy in listed.policies:
            print(f"  {policy.name}@{policy.version}: {policy.metadata.description[:70]}")

        hits = await repo.Search(services_pb2.SearchRequest(
            query="keep request latency low while batch jobs run",
            workload_classes=[common_pb2.LATENCY_SERVER], limit=3), timeout=30)
        print("best for latency_server:")
        for hit in hits.hits:
            print(f"  {hit.policy.name}: score {hit.score:.3f} (similarity {hit.similarity:.3f})")

        # Errors arrive as status codes with a message that says what to do.
        try:
            await repo.Get(services_pb2.GetPolicyRequest(name="no-such-scheduler"), timeout=10)
        except grpc.aio.AioRpcError as exc:
            print(f"Get(no-such-scheduler) -> {exc.code().name}: {exc.details()}")

    async with grpc.aio.insecure_channel(observer) as channel:
        observer_stub = services_pb2_grpc.ObserverServiceStub(channel)
        request = services_pb2.SummaryRequest(window_seconds=1.0)
        request.selector.node = True
        profile = await observer_stub.Summary(request, timeout=60)
        print(f"node profile {profile.profile_id}: cpu_utilization={profile.features.cpu_utilization:.2f} "
              f"class={common_pb2.WorkloadClass.Name(profile.workload_class)}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", default=os.environ.get("SCHEDCP_REPOSITORY_ADDR", DEFAULTS["repository"]))
    parser.add_argument("--observer", default=os.environ.get("SCHEDCP_OBSERVER_ADDR", DEFAULTS["observer"]))
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.repository, args.observer)))
