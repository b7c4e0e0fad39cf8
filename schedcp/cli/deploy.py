"""``schedcp deploy``, ``schedcp rollback`` and ``schedcp nodes``: drive the executor service.

    schedcp verify my.bpf.c --out verdict.json
    schedcp deploy verdict.json --nodes all --canary 1 --bake 30
    schedcp deploy 3f2c9a...              # a verdict id the executor fetches from the verifier
    schedcp rollback --nodes n2 --reason "latency alarm"
    schedcp nodes

The executor is reached at ``SCHEDCP_EXECUTOR_ADDR``; with ``SCHEDCP_EXECUTOR_PEERS``
it coordinates a canary-then-fleet rollout across the other nodes' executors.

Exit codes: 0 success, 1 the rollout failed, was refused or halted (or a
rollback did not complete), 2 usage error or the executor is unreachable.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from schedcp.errors import InvalidArgument, SchedcpError

#: Phases after which a node does nothing more in this rollout.
_FINAL = {"COMPLETE", "ROLLED_BACK", "REFUSED", "FAILED", "HALTED"}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("deploy", help="deploy a verified scheduler through the executor",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("source", metavar="TOKEN_FILE|VERDICT_ID",
                   help="a verdict file (`schedcp verify --out`, `schedcp verify --json`, or a binary "
                        "Verdict) or the id of a verdict the verifier holds")
    p.add_argument("--nodes", metavar="SELECTOR", default="",
                   help="which nodes: all, a comma list of names, or key=value labels "
                        "(default: the executor's own node)")
    p.add_argument("--canary", type=float, default=0.0, metavar="N",
                   help="canary size: a node count (>= 1) or a fraction (< 1); default: the executor's")
    p.add_argument("--bake", type=float, default=0.0, metavar="SECONDS",
                   help="bake time per wave before widening; default: the executor's")
    p.add_argument("--regression-pct", type=float, default=0.0, metavar="PCT",
                   help="regression of the target metric that trips the breaker; default: the executor's")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                   help="give up waiting for the rollout after this long (default 1800)")
    p.add_argument("--json", action="store_true", help="print every report as one JSON line")
    p.set_defaults(func=_deploy)

    r = subparsers.add_parser("rollback", help="roll nodes back to their known-good scheduler (or EEVDF)")
    r.add_argument("--nodes", metavar="SELECTOR", default="",
                   help="which nodes: all, a comma list of names (default: the executor's own node)")
    r.add_argument("--reason", default="", help="why, for the audit log and the reports")
    r.add_argument("--json", action="store_true", help="print every report as one JSON line")
    r.set_defaults(func=_rollback)

    n = subparsers.add_parser("nodes", help="what each node runs, since when, its known-good and health")
    n.add_argument("--nodes", metavar="SELECTOR", default="", help="only these nodes (comma list of names)")
    n.add_argument("--json", action="store_true", help="print the status as JSON")
    n.set_defaults(func=_nodes)


# ----------------------------------------------------------------- inputs


def parse_selector(text: str) -> Any:
    """``all`` | ``n1,n2`` | ``zone=a,tier=web`` (names and labels may be mixed) -> NodeSelector."""
    from schedcp.v1 import common_pb2

    sel = common_pb2.NodeSelector()
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        if item in ("all", "*"):
            sel.all_nodes = True
        elif "=" in item:
            key, _, value = item.partition("=")
            if not key.strip() or not value.strip():
                raise InvalidArgument(f"--nodes item {item!r} is not key=value",
                                      hint="e.g. --nodes zone=a or --nodes n1,n2 or --nodes all")
            sel.labels[key.strip()] = value.strip()
        else:
            sel.nodes.append(item)
    return sel


def load_verdict(path: Path) -> Any:
    """A Verdict from a file: protobuf JSON (``verify --out``), ``verify --json`` output, or binary."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    from schedcp.v1 import verdict_pb2

    data = path.read_bytes()
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        doc = None
    if isinstance(doc, dict):
        if isinstance(doc.get("token"), str) or "object_path" in doc:
            return _verdict_from_verify_json(doc, path)
        try:
            return json_format.ParseDict(doc, verdict_pb2.Verdict(), ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise InvalidArgument(f"{path} is JSON but not a Verdict: {exc}",
                                  hint="write it with `schedcp verify FILE --out VERDICT_FILE`") from exc
    verdict = verdict_pb2.Verdict()
    try:
        verdict.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidArgument(f"{path} is neither JSON nor a binary Verdict",
                              hint="write it with `schedcp verify FILE --out VERDICT_FILE`") from exc
    if not verdict.verdict_id and not verdict.HasField("token"):
        raise InvalidArgument(f"{path} does not hold a verdict",
                              hint="write it with `schedcp verify FILE --out VERDICT_FILE`")
    return verdict


def _verdict_from_verify_json(doc: dict[str, Any], path: Path) -> Any:
    # `schedcp verify --json` prints the verdict record and the token; the
    # artifact is the object the verifier built, still at object_path.
    from schedcp.v1 import verdict_pb2
    from services.verifier.convert import verdict_to_proto
    from services.verifier.pipeline import VerdictRecord

    if not doc.get("token"):
        raise InvalidArgument(f"{path}: the verdict has no deployment token (passed: {doc.get('passed')})",
                              hint="only a verdict that passed verification can be deployed")
    token = verdict_pb2.DeploymentToken()
    token.ParseFromString(base64.b64decode(doc["token"]))
    record = VerdictRecord.from_dict(doc)
    object_path = Path(record.object_path)
    if not object_path.is_file():
        raise InvalidArgument(f"{path}: the verified object {object_path} is gone",
                              hint="verify again with `--out VERDICT_FILE`, which carries the object's bytes")
    verdict = verdict_to_proto(record, token=token)
    verdict.plan.policy.name = record.candidate_name
    return verdict


# ---------------------------------------------------------------- rendering


def _phase(report: Any) -> str:
    from schedcp.v1 import deployment_pb2

    return str(deployment_pb2.DeploymentPhase.Name(report.phase)).removeprefix("PHASE_")


def _report_line(report: Any) -> str:
    node = "fleet" if report.node == "*" else report.node
    policy = f" {report.policy.name}" + (f"@{report.policy.version}" if report.policy.version else "")
    line = f"{node:<12} {_phase(report):<11}{policy if report.policy.name else ''}"
    if report.message:
        line += f"  {report.message[:200]}"
    if report.metrics_before or report.metrics_after:
        metrics = sorted(set(report.metrics_before) | set(report.metrics_after))
        parts = []
        for m in metrics:
            before, after = report.metrics_before.get(m), report.metrics_after.get(m)
            parts.append(f"{m} {_num(before)} -> {_num(after)}")
        line += "\n" + " " * 13 + "; ".join(parts)
    for event in report.breaker_events:
        line += (f"\n{'':13}breaker: {event.kind}: {event.reason[:160]}"
                 + (f" ({event.metric} {event.value:.3g} vs {event.threshold:.3g})" if event.metric else ""))
    return line


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _report_json(report: Any) -> str:
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(report, preserving_proto_field_name=True), sort_keys=True)


def _when(unix: int) -> str:
    if not unix:
        return "-"
    ago = max(0, int(time.time()) - unix)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix))
    if ago < 120:
        return f"{stamp}Z ({ago}s ago)"
    if ago < 7200:
        return f"{stamp}Z ({ago // 60}m ago)"
    return f"{stamp}Z ({ago // 3600}h ago)"


def _policy(ref: Any) -> str:
    if not ref.name:
        return "EEVDF"
    return ref.name + (f"@{ref.version}" if ref.version else "")


# ------------------------------------------------------------------ commands


def _fail(command: str, message: str, hint: str = "") -> int:
    print(f"schedcp {command}: {message}" + (f"\n  hint: {hint}" if hint else ""), file=sys.stderr)
    return 2


def _rpc_error(command: str, address: str, exc: Any) -> int:
    import grpc

    code, details = exc.code(), exc.details() or ""
    # A transport failure (nothing listening) reads differently from an
    # UNAVAILABLE the executor itself returns (e.g. the verifier is down).
    transport = any(w in details.lower() for w in ("connect", "connection", "dns", "socket closed"))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or (code == grpc.StatusCode.UNAVAILABLE and transport):
        return _fail(command, f"the executor at {address} is unreachable ({code.name}: {details})",
                     "start it with `schedcp up`, or point SCHEDCP_EXECUTOR_ADDR at a running executor")
    return _fail(command, f"the executor said {code.name}: {details}")


def _address() -> str:
    from schedcp.settings import service_address

    return service_address("executor")


def _deploy(args: argparse.Namespace) -> int:
    import asyncio

    from schedcp.v1 import services_pb2

    if args.canary < 0 or args.bake < 0 or args.regression_pct < 0:
        return _fail("deploy", "--canary, --bake and --regression-pct must not be negative")
    try:
        selector = parse_selector(args.nodes)
        request = services_pb2.DeployRequest(nodes=selector, canary=args.canary, bake_seconds=args.bake,
                                             regression_threshold_pct=args.regression_pct)
        path = Path(args.source)
        if path.is_file():
            request.verdict.CopyFrom(load_verdict(path))
            described = f"{path}"
        elif "/" in args.source or args.source.endswith((".json", ".pb", ".bin")):
            return _fail("deploy", f"{path} does not exist",
                         "pass a verdict file written by `schedcp verify --out` or a verdict id")
        else:
            request.verdict_id = args.source
            described = f"verdict {args.source}"
    except (SchedcpError, OSError) as exc:
        return _fail("deploy", str(exc))
    address = _address()
    if not args.json:
        print(f"deploying {described} via {address}"
              + (f" to {args.nodes}" if args.nodes else " to the executor's node"), flush=True)
    return asyncio.run(_stream("deploy", address, request, json_out=args.json, deadline_s=args.timeout))


def _rollback(args: argparse.Namespace) -> int:
    import asyncio

    from schedcp.v1 import services_pb2

    try:
        selector = parse_selector(args.nodes)
    except SchedcpError as exc:
        return _fail("rollback", str(exc))
    if selector.labels:
        return _fail("rollback", "rollback takes node names or all, not labels",
                     "see `schedcp nodes` for the names")
    request = services_pb2.RollbackRequest(nodes=selector, reason=args.reason or "operator rollback (schedcp CLI)")
    return asyncio.run(_stream("rollback", _address(), request, json_out=args.json, deadline_s=1800))


async def _stream(command: str, address: str, request: Any, *, json_out: bool, deadline_s: float) -> int:
    import grpc

    from schedcp.rpc import grpc_channel
    from schedcp.v1 import services_pb2_grpc

    finals: dict[str, str] = {}
    t0 = time.monotonic()
    try:
        async with grpc_channel(address) as channel:
            stub = services_pb2_grpc.ExecutorServiceStub(channel)
            call = stub.Deploy if command == "deploy" else stub.Rollback
            async for report in call(request, timeout=deadline_s):
                phase = _phase(report)
                if phase in _FINAL:
                    finals[report.node] = phase
                if json_out:
                    print(_report_json(report), flush=True)
                else:
                    print(f"[{time.monotonic() - t0:6.1f}s] {_report_line(report)}", flush=True)
    except grpc.aio.AioRpcError as exc:
        return _rpc_error(command, address, exc)
    if not finals:
        print(f"schedcp {command}: the executor sent no final report", file=sys.stderr)
        return 1
    if command == "deploy":
        # The coordinator closes a rollout with a fleet-wide ("*") verdict.
        ok = finals.get("*", "") == "COMPLETE" and all(p == "COMPLETE" for p in finals.values())
    else:
        ok = all(p in ("COMPLETE", "ROLLED_BACK") for p in finals.values())
    if not json_out:
        nodes = {n: p for n, p in finals.items() if n != "*"}
        summary = ", ".join(f"{n} {p}" for n, p in sorted(nodes.items()))
        print(f"{command} {'done' if ok else 'FAILED'}: {summary}", flush=True)
    return 0 if ok else 1


def _nodes(args: argparse.Namespace) -> int:
    import asyncio

    import grpc

    from schedcp.rpc import grpc_channel
    from schedcp.v1 import services_pb2, services_pb2_grpc

    try:
        selector = parse_selector(args.nodes)
    except SchedcpError as exc:
        return _fail("nodes", str(exc))
    address = _address()

    async def status() -> Any:
        async with grpc_channel(address) as channel:
            return await services_pb2_grpc.ExecutorServiceStub(channel).Status(
                services_pb2.StatusRequest(nodes=selector), timeout=120)

    try:
        resp = asyncio.run(status())
    except grpc.aio.AioRpcError as exc:
        return _rpc_error("nodes", address, exc)
    if args.json:
        from google.protobuf import json_format

        print(json.dumps([json_format.MessageToDict(n, preserving_proto_field_name=True,
                                                    always_print_fields_with_no_presence=True)
                          for n in resp.nodes], indent=2))
        return 0
    if not resp.nodes:
        print("no nodes")
        return 0
    for n in resp.nodes:
        health = "healthy" if n.healthy else "UNHEALTHY"
        print(f"{n.node}  {health}  sched_ext {n.sched_ext_state or '?'}")
        print(f"  running     {_policy(n.running)}"
              + (f"  config {n.config_digest[:19]}" if n.config_digest else "")
              + (f"  token {n.token_id}" if n.token_id else ""))
        print(f"  since       {_when(n.since_unix)}")
        print(f"  known-good  {_policy(n.known_good)}")
        if n.message and n.message != "ok":
            print(f"  note        {n.message}")
    return 0
