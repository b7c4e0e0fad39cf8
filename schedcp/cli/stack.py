"""``schedcp up | down | status | watch``: the local control plane and its bus."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from schedcp import settings, stack
from schedcp.bus import Bus
from schedcp.codec import HEADER_DLQ_REASON, HEADER_TYPE
from schedcp.errors import SchedcpError, Unavailable
from schedcp.rpc import check_health
from schedcp.v1 import common_pb2, deployment_pb2, plan_pb2, profile_pb2, verdict_pb2

WATCHED: dict[str, tuple[str, type[Message] | None]] = {
    "profiles": ("schedcp.v1.profiles.>", profile_pb2.WorkloadProfile),
    "plans": ("schedcp.v1.plans", plan_pb2.Plan),
    "verdicts": ("schedcp.v1.verdicts", verdict_pb2.Verdict),
    "deployments": ("schedcp.v1.deployments.>", deployment_pb2.DeploymentReport),
    "outcomes": ("schedcp.v1.outcomes", deployment_pb2.DeploymentOutcome),
    "feedback": ("schedcp.v1.feedback.>", profile_pb2.FeedbackReport),
    "dlq": ("schedcp.v1.dlq", None),
}
TYPES = {t.DESCRIPTOR.full_name: t for _, t in WATCHED.values() if t is not None}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    up = sub.add_parser("up", help="start nats-server and the six services in the background")
    up.add_argument("--nats-port", type=int, default=None, help="NATS client port (default 4222 or SCHEDCP_NATS_PORT)")
    up.add_argument("--timeout", type=float, default=300.0,
                    help="seconds to wait for every service to be healthy (the executor boots its micro-VM node)")
    up.add_argument("--llm", default=None,
                    help="'local' starts the bundled SmolLM2 server (default), 'none' plans without an LLM, "
                         "or the base URL of an OpenAI-compatible endpoint such as vLLM")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop exactly what `schedcp up` started")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="health of each service, stream and consumer lag")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    watch = sub.add_parser("watch", help="follow profiles, plans, verdicts and deployments on the bus")
    watch.add_argument("--json", action="store_true", help="one JSON object per message")
    watch.add_argument("--all", action="store_true", help="replay what the stream still holds first")
    watch.add_argument("--limit", type=int, default=0, help="exit after this many messages")
    watch.add_argument("--only", action="append", choices=sorted(WATCHED), help="restrict to these kinds")
    watch.set_defaults(func=cmd_watch)


class ServiceStatus(TypedDict):
    service: str
    address: str
    healthy: bool
    pid: int | None


class StreamStatus(TypedDict):
    name: str
    messages: int


class StackStatus(TypedDict):
    """What ``schedcp status`` reports (``--json`` prints it as is)."""

    services: list[ServiceStatus]
    nats_url: str | None
    stream: StreamStatus | None
    consumers: list[dict[str, Any]]
    nats_error: NotRequired[str]


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _data_dir() -> Path:
    return settings.data_dir()


def current_nats_url() -> str:
    """The NATS URL of the running local stack, else SCHEDCP_NATS_URL."""
    state = stack.StackState.load(stack.state_path(_data_dir()))
    if state and state.nats_url and any(stack.process_matches(p) for p in state.processes):
        return state.nats_url
    return settings.nats_url()


def cmd_up(args: argparse.Namespace) -> int:
    port = args.nats_port or settings.env_int("SCHEDCP_NATS_PORT", 4222, minimum=1, maximum=65535,
                                              doc="Client port of the nats-server `schedcp up` starts.")
    data_dir = _data_dir()
    started = time.monotonic()
    llm = args.llm or settings.env_str("SCHEDCP_UP_LLM", "local",
                                       doc="What `schedcp up` uses for the LLM: local, none, or a base URL.")
    llm_port = settings.env_int("SCHEDCP_LLM_PORT", 8089, minimum=1, maximum=65535,
                                doc="Port of the local LLM server `schedcp up --llm local` starts.")
    state = stack.start_stack(data_dir=data_dir, nats_port=port, progress=_progress, health_timeout=args.timeout,
                              llm=llm or "local", llm_port=llm_port)
    services = [p for p in state.processes if p.name in settings.SERVICES]
    _progress(f"schedcp is up in {time.monotonic() - started:.1f}s: NATS {state.nats_url}, "
              f"{len(services)} services, LLM {state.env.get('SCHEDCP_LLM_URL', 'none')}, "
              f"logs in {data_dir / 'logs'}")
    print("next: `schedcp status`, `schedcp watch`, `schedcp down`", file=sys.stderr)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    path = stack.state_path(_data_dir())
    state = stack.StackState.load(path)
    if state is None:
        print("schedcp: nothing to stop (no stack was started from this data directory)", file=sys.stderr)
        return 0
    stack.stop_stack(state, progress=_progress)
    path.unlink(missing_ok=True)
    _progress("schedcp is down")
    return 0


async def _status() -> StackStatus:
    state = stack.StackState.load(stack.state_path(_data_dir()))
    services: list[ServiceStatus] = []
    for svc in settings.SERVICES:
        addr = settings.service_address(svc)
        proc = next((p for p in (state.processes if state else []) if p.name == svc), None)
        services.append({
            "service": svc, "address": addr, "healthy": await check_health(addr, deadline_s=1.5),
            "pid": proc.pid if proc and stack.process_matches(proc) else None,
        })
    out: StackStatus = {"services": services, "nats_url": None, "stream": None, "consumers": []}
    url = current_nats_url()
    out["nats_url"] = url
    try:
        bus = await Bus.connect(url=url, service="cli", prefix=settings.subject_prefix(), connect_timeout=2)
    except Unavailable as exc:
        out["nats_error"] = str(exc)
        return out
    try:
        out["stream"] = {"name": bus.stream, "messages": await bus.stream_messages()}
        out["consumers"] = [lag.__dict__ for lag in await bus.consumer_lag()]
    finally:
        await bus.close()
    return out


def cmd_status(args: argparse.Namespace) -> int:
    status = asyncio.run(_status())
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"{'service':<12} {'health':<10} {'pid':>8}  address")
        for s in status["services"]:
            health = "SERVING" if s["healthy"] else "DOWN"
            print(f"{s['service']:<12} {health:<10} {str(s['pid'] or '-'):>8}  {s['address']}")
        print()
        if "nats_error" in status:
            print(f"NATS: {status['nats_error']}")
        else:
            st = status["stream"]
            if st is None:  # _status sets either stream or nats_error
                raise RuntimeError("NATS status has neither a stream nor an error")
            print(f"NATS {status['nats_url']}  stream {st['name']}: {st['messages']} messages")
            print(f"{'consumer':<32} {'subject':<30} {'pending':>8} {'unacked':>8} {'redeliv':>8}")
            for c in status["consumers"]:
                print(f"{c['durable']:<32} {c['subject']:<30} {c['pending']:>8} {c['ack_pending']:>8} {c['redelivered']:>8}")
    healthy = all(s["healthy"] for s in status["services"])
    return 0 if healthy and "nats_error" not in status else 1


def describe(subject: str, message: object) -> str:
    """A one-line human summary of a bus message."""
    if isinstance(message, profile_pb2.WorkloadProfile):
        cls = common_pb2.WorkloadClass.Name(message.workload_class) if message.workload_class else "?"
        return (f"profile  {message.node:<12} {message.workload.name or message.workload.comm!r} "
                f"class={cls} conf={message.class_confidence:.2f} tier={profile_pb2.AnalysisTier.Name(message.tier)}")
    if isinstance(message, plan_pb2.Plan):
        return (f"plan     {plan_pb2.DecisionPath.Name(message.path)} {message.policy.name}@{message.policy.version or 'latest'} "
                f"tunables={dict((k, v.WhichOneof('kind') and getattr(v, v.WhichOneof('kind'))) for k, v in message.tunables.items())} "
                f"llm_tokens={message.llm.prompt_tokens + message.llm.completion_tokens}")
    if isinstance(message, verdict_pb2.Verdict):
        stages = " ".join(f"{s.name}={verdict_pb2.StageStatus.Name(s.status).removeprefix('STAGE_').lower()}"
                          for s in message.stages)
        return f"verdict  {'PASS' if message.passed else 'FAIL'} {message.plan.policy.name} {stages} score={message.performance.score:.2f}"
    if isinstance(message, deployment_pb2.DeploymentReport):
        return (f"deploy   {message.node:<12} {deployment_pb2.DeploymentPhase.Name(message.phase)} "
                f"{message.policy.name} {message.message}")
    if isinstance(message, deployment_pb2.DeploymentOutcome):
        return f"outcome  {message.policy.name} improvement={message.improvement:.2f} success={message.success} {message.reason}"
    if isinstance(message, profile_pb2.FeedbackReport):
        deltas = ", ".join(f"{d.metric}={d.ratio:.2f}x" for d in message.deltas)
        return f"feedback {message.node:<12} {deltas}"
    return f"{subject}"


async def _watch(args: argparse.Namespace) -> int:
    kinds = args.only or [k for k in WATCHED]
    bus = await Bus.connect(url=current_nats_url(), service="cli-watch", prefix=settings.subject_prefix())
    seen = 0
    try:
        async for subject, data, headers in bus.watch([WATCHED[k][0] for k in kinds], deliver_all=args.all):
            mtype = TYPES.get(headers.get(HEADER_TYPE, ""))
            message = None
            if mtype is not None and not subject.endswith(".dlq"):
                message = mtype()
                try:
                    message.ParseFromString(data)
                except Exception:  # noqa: BLE001 - watch shows bad messages rather than dying
                    message = None
            if args.json:
                body = MessageToDict(message, preserving_proto_field_name=True) if message is not None else None
                entry = {"subject": subject, "type": headers.get(HEADER_TYPE), "message": body}
                if subject.endswith(".dlq"):
                    entry["dlq_reason"] = headers.get(HEADER_DLQ_REASON)
                print(json.dumps(entry), flush=True)
            elif subject.endswith(".dlq"):
                print(f"{time.strftime('%H:%M:%S')} dlq      {headers.get(HEADER_DLQ_REASON, '?')}", flush=True)
            else:
                text = describe(subject, message) if message is not None else f"{subject}: undecodable message"
                print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)
            seen += 1
            if args.limit and seen >= args.limit:
                break
    finally:
        await bus.close()
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_watch(args))
    except KeyboardInterrupt:
        return 0
    except SchedcpError:
        raise
