"""``schedcp verify``: run the Execution Verifier on a scheduler source.

    schedcp verify my.bpf.c --set slice_us=5000 --workload LATENCY_SERVER
    schedcp verify bpf/wvtime.bpf.c --json

Stages: build -> static -> kernel_verifier (micro-VM) -> dynamic (stress +
starvation suite, then A/B against EEVDF for --workload). A stage after the
first failure is reported as skipped. On a pass a signed DeploymentToken is
issued (key ring in $SCHEDCP_DATA_DIR/keys).

Exit codes: 0 pass, 1 fail, 2 usage or internal error.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

from schedcp.errors import SchedcpError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("verify", help="verify a scheduler and get a deployment token",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("file", metavar="FILE.bpf.c", help="scheduler source")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="tunable value (repeatable)")
    p.add_argument("--workload", metavar="CLASS", default="",
                   help="workload class for the A/B performance check, e.g. LATENCY_SERVER")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--out", type=Path, metavar="VERDICT_FILE",
                   help="also write the Verdict (with its token and the object's bytes) for `schedcp deploy`")
    p.add_argument("--no-cache", action="store_true", help="verify even if a verdict is cached")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of the stress suite (default $SCHEDCP_VERIFIER_SUITE_SECONDS, 6)")
    p.add_argument("--max-wait", type=float, default=None,
                   help="wait in seconds any task may see whatever EEVDF does; longer waits are "
                        "judged against EEVDF in the same VM (default $SCHEDCP_VERIFIER_MAX_WAIT_S, 2)")
    p.add_argument("--host", action="store_true",
                   help="use this machine's kernel instead of a micro-VM (needs sched_ext + root)")
    p.set_defaults(func=_run)

    k = subparsers.add_parser("verifier-keys", help="list, rotate, retire or export the "
                              "verifier's token signing keys")
    ks = k.add_subparsers(dest="keys_command", metavar="ACTION")
    ks.required = True
    ks.add_parser("list", help="show the key ring").set_defaults(func=_keys_list)
    ks.add_parser("rotate", help="make a new active key (old ones stay trusted)").set_defaults(
        func=_keys_rotate)
    r = ks.add_parser("retire", help="stop trusting a key")
    r.add_argument("key_id")
    r.set_defaults(func=_keys_retire)
    e = ks.add_parser("export", help="write the trusted public keys for executors")
    e.add_argument("path", type=Path)
    e.set_defaults(func=_keys_export)


def _ring():
    from schedcp.settings import data_dir
    from schedcp.tokens import KeyRing

    return KeyRing(data_dir() / "keys")


def _keys_list(args: argparse.Namespace) -> int:
    for key in _ring().public_keys(include_retired=True):
        state = "active" if key.active else ("retired" if key.retired else "trusted")
        print(f"{key.key_id}  {state:8}  created {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(key.created_at))}Z  "
              f"{base64.b64encode(key.public_key).decode()}")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    ring = _ring()
    new = ring.rotate()
    print(f"active key is now {new}; re-export the public keys to executors")
    return 0


def _keys_retire(args: argparse.Namespace) -> int:
    _ring().retire(args.key_id)
    print(f"retired {args.key_id}: tokens it signed are no longer accepted")
    return 0


def _keys_export(args: argparse.Namespace) -> int:
    print(_ring().export_public(args.path))
    return 0


def parse_sets(pairs: list[str]) -> dict[str, int | float | bool | str]:
    out: dict[str, int | float | bool | str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise _Usage(f"--set {pair!r}: expected KEY=VALUE")
        k, v = pair.split("=", 1)
        k = k.strip()
        if not k:
            raise _Usage(f"--set {pair!r}: empty key")
        low = v.strip().lower()
        if low in ("true", "false"):
            out[k] = low == "true"
        else:
            try:
                out[k] = int(v, 0)
            except ValueError:
                out[k] = v
    return out


class _Usage(Exception):
    pass


_SYMBOL = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip", "running": "... "}


def _run(args: argparse.Namespace) -> int:
    from schedcp.settings import data_dir
    from services.verifier.domain import Candidate, StageStatus
    from services.verifier.verifier import default_verifier

    try:
        tunables = parse_sets(args.set)
    except _Usage as exc:
        print(f"schedcp verify: {exc}", file=sys.stderr)
        return 2
    from schedcp.workloads.spec import WORKLOAD_CLASSES

    if args.workload and args.workload not in WORKLOAD_CLASSES:
        print(f"schedcp verify: unknown workload class {args.workload!r}; "
              f"use one of {', '.join(WORKLOAD_CLASSES)}", file=sys.stderr)
        return 2
    path = Path(args.file)
    if not path.is_file():
        print(f"schedcp verify: {path} does not exist", file=sys.stderr)
        return 2
    name = path.name.removesuffix(".c").removesuffix(".bpf")
    cand = Candidate(source=path.read_text(), name=name, tunables=tunables,
                     workload=args.workload, origin=str(path))
    t0 = time.monotonic()

    def progress(stage) -> None:
        if args.json:
            return
        if stage.status is StageStatus.RUNNING:
            print(f"  ... {stage.name}", file=sys.stderr, flush=True)
            return
        print(f"  {_SYMBOL[stage.status.value]} {stage.name:<16} {stage.duration_s:7.2f}s",
              flush=True)
        for f in stage.findings:
            loc = f":{f.line}" if f.line else ""
            print(f"         {f.severity.label:<7} {f.rule}{loc}: {f.message}")
            if f.hint and f.severity.label != "info":
                print(f"                 hint: {f.hint}")

    try:
        verifier = default_verifier(data_dir(), duration_s=args.duration,
                                    max_wait_s=args.max_wait, use_vm=not args.host)
        if not args.json:
            print(f"verifying {path} ({len(tunables)} tunables"
                  f"{', workload ' + args.workload if args.workload else ''})", flush=True)
        signed = verifier.verify(
            cand, progress=progress, skip_performance=not args.workload,
            use_cache=not args.no_cache)
    except SchedcpError as exc:
        print(f"schedcp verify: {exc}", file=sys.stderr)
        return 2
    rec = signed.record
    token = signed.token
    if args.out is not None:
        _write_verdict(args.out, signed, name=name)
    token_b64 = base64.b64encode(token.SerializeToString()).decode() if token else None
    if args.json:
        doc = rec.to_dict()
        doc["token"] = token_b64
        doc["token_key_id"] = token.key_id if token else None
        doc["wall_s"] = round(time.monotonic() - t0, 3)
        print(json.dumps(doc, indent=2))
    else:
        verdict = "PASS" if rec.passed else "FAIL"
        cached = " (cached: verified before with the same artifact, config and bounds)" \
            if rec.cached else ""
        print(f"verdict: {verdict}{cached}  artifact {rec.artifact_digest[:19]}  "
              f"config {rec.config_digest[:19]}  {time.monotonic() - t0:.1f}s")
        if rec.performance:
            perf = rec.performance
            print(f"performance: {perf.workload} score {perf.score:.3f}x EEVDF "
                  f"({perf.decision or 'pass'}, {perf.repetitions} runs per side)")
        if token is not None and token_b64:
            print(f"token ({token.key_id}): {token_b64[:48]}…")
    if rec.internal_error:
        return 2
    return 0 if rec.passed else 1


def _write_verdict(path: Path, signed, *, name: str) -> None:  # type: ignore[no-untyped-def]
    """The Verdict as protobuf JSON: self-contained (artifact bytes included), deployable anywhere."""
    from google.protobuf import json_format

    from services.verifier.convert import verdict_to_proto

    verdict = verdict_to_proto(signed.record, token=signed.token)
    verdict.plan.policy.name = name
    path.write_text(json_format.MessageToJson(verdict, preserving_proto_field_name=True) + "\n")
    print(f"verdict written to {path}", file=sys.stderr)
