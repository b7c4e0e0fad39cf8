"""Follow schedcp's events on NATS with nothing but nats-py and the generated classes.

    python examples/subscribe.py                       # every schedcp.v1 event from now on
    python examples/subscribe.py plans verdicts        # just these kinds
    python examples/subscribe.py --from-start --count 5 --json

This is the example docs/bus.md walks through: an ordered push consumer per
subject (no server-side state; it sees new messages, or the stream's history
with --from-start), decoding each payload by its ``Schedcp-Type`` header.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import nats
from google.protobuf import json_format
from nats.js.api import DeliverPolicy

from schedcp.v1 import deployment_pb2, plan_pb2, profile_pb2, verdict_pb2

#: Message types by their full protobuf name, as carried in the Schedcp-Type header.
TYPES = {cls.DESCRIPTOR.full_name: cls for cls in (
    profile_pb2.WorkloadProfile, profile_pb2.FeedbackReport, plan_pb2.Plan, verdict_pb2.Verdict,
    deployment_pb2.DeploymentReport, deployment_pb2.DeploymentOutcome)}

#: Event kinds and their subjects (per-node kinds end in a wildcard for every node).
KINDS = {"profiles": "schedcp.v1.profiles.*", "plans": "schedcp.v1.plans", "verdicts": "schedcp.v1.verdicts",
         "deployments": "schedcp.v1.deployments.*", "outcomes": "schedcp.v1.outcomes",
         "feedback": "schedcp.v1.feedback.*", "dlq": "schedcp.v1.dlq"}


def describe(message: object) -> str:
    """One human line for a decoded event."""
    name = type(message).__name__
    if isinstance(message, plan_pb2.Plan):
        return f"{name} {message.plan_id}: {plan_pb2.DecisionPath.Name(message.path)} {message.policy.name}"
    if isinstance(message, verdict_pb2.Verdict):
        return f"{name} {message.verdict_id[:19]}: {'PASS' if message.passed else 'FAIL'} {message.plan.policy.name}"
    if isinstance(message, deployment_pb2.DeploymentReport):
        return f"{name} {message.node}: {deployment_pb2.DeploymentPhase.Name(message.phase)} {message.message}"
    if isinstance(message, profile_pb2.WorkloadProfile):
        return f"{name} {message.profile_id}: {message.workload.name} cpu={message.features.cpu_utilization:.2f}"
    return name


async def follow(url: str, kinds: list[str], *, prefix: str, from_start: bool, count: int, as_json: bool) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    done = asyncio.Event()
    seen = 0

    async def on_message(msg: nats.aio.msg.Msg) -> None:
        nonlocal seen
        headers = msg.headers or {}
        if msg.subject.endswith("schedcp.v1.dlq"):
            print(f"{msg.subject} dead letter: {headers.get('Schedcp-Dlq-Reason', '?')}", flush=True)
        else:
            cls = TYPES.get(headers.get("Schedcp-Type", ""))
            if cls is None:
                return  # a type this script does not know: newer producer, skip it
            message = cls.FromString(msg.data)
            correlation = message.meta.correlation_id
            if as_json:
                print(json.dumps({"subject": msg.subject, "type": cls.DESCRIPTOR.full_name,
                                  "correlation_id": correlation,
                                  "message": json_format.MessageToDict(message, preserving_proto_field_name=True)}),
                      flush=True)
            else:
                print(f"{msg.subject} [{correlation}] {describe(message)}", flush=True)
        seen += 1
        if count and seen >= count:
            done.set()

    policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
    for kind in kinds:
        subject = f"{prefix}.{KINDS[kind]}" if prefix else KINDS[kind]
        await js.subscribe(subject, cb=on_message, ordered_consumer=True, deliver_policy=policy)
    try:
        await done.wait()
    finally:
        await nc.drain()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="*", help=f"event kinds: {', '.join(KINDS)} (default: all but dlq)")
    parser.add_argument("--url", default=os.environ.get("SCHEDCP_NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--prefix", default=os.environ.get("SCHEDCP_SUBJECT_PREFIX", ""),
                        help="subject prefix of the stack (SCHEDCP_SUBJECT_PREFIX)")
    parser.add_argument("--from-start", action="store_true", help="replay the stream's history first")
    parser.add_argument("--count", type=int, default=0, help="exit after this many events (0: run until ^C)")
    parser.add_argument("--json", action="store_true", help="one JSON document per line")
    args = parser.parse_args()
    kinds = args.kinds or [k for k in KINDS if k != "dlq"]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown event kinds {unknown}; choose from {', '.join(KINDS)}")
    try:
        asyncio.run(follow(args.url, kinds, prefix=args.prefix, from_start=args.from_start, count=args.count,
                           as_json=args.json))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
