"""``schedcp policies list | search | show | history | seed``: the scheduler policy repository.

Where the data comes from: if the repository service answers its health check
at SCHEDCP_REPOSITORY_ADDR (default 127.0.0.1:50066, i.e. after ``schedcp up``),
commands go to it over gRPC; otherwise they open the embedded store directly
(SCHEDCP_REPOSITORY_DB, default $SCHEDCP_DATA_DIR/repository/policies.db). The
two see the same data on one host: the service uses that same SQLite file,
which is safe to share between processes. ``--local`` forces the embedded
store; ``seed`` always uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from google.protobuf.json_format import MessageToDict

from schedcp.errors import AlreadyExists, InvalidArgument, NotFound, SchedcpError, Unavailable

CLASS_CHOICES = ("BATCH_LONG_TAIL", "LATENCY_SERVER", "PARALLEL_BUILD", "INTERACTIVE_BACKGROUND",
                 "CPU_THROUGHPUT", "UNKNOWN_WORKLOAD")
STATUS_CHOICES = ("CANDIDATE", "VERIFIED", "PROMOTED", "DEPRECATED")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("policies", help="list, search and inspect scheduler policies in the repository",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    psub = p.add_subparsers(dest="policies_command", metavar="SUBCOMMAND")
    psub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.add_argument("--local", action="store_true", help="open the embedded store even if the service is up")

    ls = psub.add_parser("list", help="latest version of each policy")
    common(ls)
    ls.add_argument("--all-versions", action="store_true", help="every version, not just the latest")
    ls.add_argument("--status", action="append", choices=STATUS_CHOICES, help="only these statuses")
    ls.set_defaults(func=cmd_list)

    se = psub.add_parser("search", help="semantic + keyword search, ranked with performance history")
    common(se)
    se.add_argument("query", help="what the workload is like, or what the scheduler should do")
    se.add_argument("--class", dest="classes", action="append", choices=CLASS_CHOICES,
                    help="only policies targeting (or proven on) this workload class")
    se.add_argument("--keyword", action="append", default=[], help="word that must appear (repeatable)")
    se.add_argument("--status", action="append", choices=STATUS_CHOICES,
                    help="statuses to include (default: all but DEPRECATED)")
    se.add_argument("--limit", type=int, default=5, help="hits to show (1-100)")
    se.set_defaults(func=cmd_search)

    sh = psub.add_parser("show", help="one policy: metadata, tunables, lineage, history")
    common(sh)
    sh.add_argument("ref", metavar="NAME[@VERSION]")
    sh.add_argument("--source", action="store_true", help="print the scheduler source too")
    sh.set_defaults(func=cmd_show)

    hi = psub.add_parser("history", help="performance records and failed attempts of every version of NAME")
    common(hi)
    hi.add_argument("name")
    hi.set_defaults(func=cmd_history)

    sd = psub.add_parser("seed", help="load the bpf/ library into the embedded store (idempotent)")
    sd.add_argument("--bpf-dir", type=Path, default=None, help="library directory (default: the repo's bpf/)")
    sd.add_argument("--json", action="store_true")
    sd.set_defaults(func=cmd_seed)


# ------------------------------------------------------------------ backends


class _Repo(Protocol):
    def list(self, *, statuses: Sequence[Any] = (), all_versions: bool = False) -> builtins.list[Any]: ...
    def search(self, query: Any) -> builtins.list[Any]: ...
    def get(self, name: str, version: str = "") -> Any: ...
    def list_antipatterns(self, *, name: str = "", version: str = "", workload_class: Any = None,
                          limit: int = 50) -> builtins.list[Any]: ...
    def close(self) -> None: ...


class _RemoteRepo:
    """The PolicyStore read methods over gRPC, returning domain types."""

    def __init__(self, address: str) -> None:
        import grpc

        from schedcp.v1 import services_pb2_grpc

        self._grpc = grpc
        self._channel = grpc.insecure_channel(address)
        self._stub = services_pb2_grpc.RepositoryServiceStub(self._channel)
        self.address = address

    def _call(self, method: str, request: Any) -> Any:
        grpc = self._grpc
        try:
            return getattr(self._stub, method)(request, timeout=30)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
            cls = {grpc.StatusCode.NOT_FOUND: NotFound, grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
                   grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
                   grpc.StatusCode.UNAVAILABLE: Unavailable}.get(code, SchedcpError)
            raise cls(f"repository service at {self.address}: {details}") from None

    def list(self, *, statuses: Sequence[Any] = (), all_versions: bool = False) -> builtins.list[Any]:
        from schedcp.v1 import services_pb2
        from services.repository import convert

        resp = self._call("List", services_pb2.ListPoliciesRequest(statuses=[_e(s) for s in statuses],
                                                                     all_versions=all_versions))
        return [convert.policy_from_proto_full(p) for p in resp.policies]

    def search(self, query: Any) -> builtins.list[Any]:
        from schedcp.v1 import services_pb2
        from services.repository import convert

        req = services_pb2.SearchRequest(query=query.text, workload_classes=[_e(c) for c in query.workload_classes],
                                         statuses=[_e(s) for s in query.statuses], keywords=list(query.keywords),
                                         limit=query.limit)
        return [convert.hit_from_proto(h) for h in self._call("Search", req).hits]

    def get(self, name: str, version: str = "") -> Any:
        from schedcp.v1 import services_pb2
        from services.repository import convert

        return convert.policy_from_proto_full(self._call("Get", services_pb2.GetPolicyRequest(name=name,
                                                                                              version=version)))

    def list_antipatterns(self, *, name: str = "", version: str = "", workload_class: Any = None,
                          limit: int = 50) -> builtins.list[Any]:
        from schedcp.v1 import common_pb2, services_pb2
        from services.repository import convert

        req = services_pb2.ListAntipatternsRequest(policy=common_pb2.PolicyRef(name=name, version=version),
                                                   workload_class=_e(workload_class or 0), limit=limit)
        return [convert.antipattern_from_proto(a) for a in self._call("ListAntipatterns", req).antipatterns]

    def close(self) -> None:
        self._channel.close()


def _e(value: Any) -> Any:
    # Proto stubs type enum fields as their wrapper class; the runtime takes ints.
    return int(value)


def _service_address() -> str:
    from schedcp.settings import service_address

    return service_address("repository")


def _open(args: argparse.Namespace) -> _Repo:
    """The running service if it is healthy, else the embedded store (see module docstring)."""
    if not getattr(args, "local", False):
        from schedcp.rpc import check_health

        address = _service_address()
        if asyncio.run(check_health(address, deadline_s=1.0)):
            return _RemoteRepo(address)
    return _open_local()


def _open_local() -> Any:
    from services.repository.backends import open_store
    from services.repository.settings import load_store

    return open_store(load_store())


# ------------------------------------------------------------------ commands


def _status_names(values: Sequence[str] | None) -> tuple[Any, ...]:
    from services.repository.store import PolicyStatus

    return tuple(PolicyStatus[v] for v in values or ())


def _policy_json(policy: Any) -> dict[str, Any]:
    from services.repository import convert

    return MessageToDict(convert.policy_to_proto(policy), preserving_proto_field_name=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _classes(policy: Any) -> str:
    return ",".join(c.name for c in policy.metadata.target_workloads) or "-"


def cmd_list(args: argparse.Namespace) -> int:
    repo = _open(args)
    try:
        policies = repo.list(statuses=_status_names(args.status), all_versions=args.all_versions)
    finally:
        repo.close()
    if args.json:
        print(json.dumps([_policy_json(p) for p in policies], indent=2))
        return 0
    if not policies:
        print("no policies (seed the library with `schedcp policies seed`)")
        return 0
    print(_table(["NAME", "VERSION", "STATUS", "TARGETS", "DESCRIPTION"],
                 [[p.name, p.version, p.status.name, _classes(p), _short(p.metadata.description, 60)]
                  for p in policies]))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from services.repository.store import SearchQuery, WorkloadClass

    query = SearchQuery(text=args.query, workload_classes=tuple(WorkloadClass[c] for c in args.classes or ()),
                        statuses=_status_names(args.status), keywords=tuple(args.keyword), limit=args.limit)
    repo = _open(args)
    try:
        hits = repo.search(query)
    finally:
        repo.close()
    if args.json:
        print(json.dumps([{"policy": _policy_json(h.policy), "similarity": round(h.similarity, 4),
                           "historical_ratio": round(h.historical_ratio, 4), "score": round(h.score, 4)}
                          for h in hits], indent=2))
        return 0
    if not hits:
        print("no matching policies")
        return 0
    print(_table(["#", "POLICY", "STATUS", "SCORE", "SIM", "HIST", "TARGETS", "DESCRIPTION"],
                 [[i + 1, h.policy.ref, h.policy.status.name, f"{h.score:.3f}", f"{h.similarity:.3f}",
                   f"{h.historical_ratio:.2f}" if h.historical_ratio else "-", _classes(h.policy),
                   _short(h.policy.metadata.description, 50)] for i, h in enumerate(hits)]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from services.repository.store import parse_ref

    name, version = parse_ref(args.ref)
    repo = _open(args)
    try:
        policy = repo.get(name, version)
        antipatterns = repo.list_antipatterns(name=policy.name, version=policy.version, limit=20)
    finally:
        repo.close()
    if args.json:
        doc = _policy_json(policy)
        if not args.source:
            doc.pop("source", None)
        from services.repository import convert

        doc["antipatterns"] = [MessageToDict(convert.antipattern_to_proto(a), preserving_proto_field_name=True)
                               for a in antipatterns]
        print(json.dumps(doc, indent=2))
        return 0
    md = policy.metadata
    print(f"{policy.ref}  [{policy.status.name}]")
    print(f"  description: {md.description}")
    print(f"  targets:     {_classes(policy)}")
    print(f"  tags:        {', '.join(md.tags) or '-'}")
    print(f"  author:      {md.author or '-'}")
    print(f"  source:      {policy.source_digest} ({len(policy.source.encode())} bytes)")
    print(f"  artifact:    {policy.artifact_digest or '-'}")
    print(f"  parent:      {policy.parent or '-'}")
    print(f"  created:     {policy.created_at.isoformat(timespec='seconds') if policy.created_at else '-'}")
    if policy.tunables:
        print("  tunables:")
        print(_indent(_table(["NAME", "TYPE", "DEFAULT", "MIN", "MAX", "UNIT", "DESCRIPTION"],
                             [[t.name, t.type.name.lower(), t.default, _num(t.min), _num(t.max), t.unit or "-",
                               _short(t.description, 40)] for t in policy.tunables])))
    if policy.history:
        print("  performance:")
        print(_indent(_history_table(policy.history)))
    if antipatterns:
        print("  failed attempts:")
        for ap in antipatterns:
            print(f"    - [{ap.stage}] {_short(ap.reason, 100)}")
    if policy.patch:
        print("  patch:\n" + _indent(policy.patch))
    if args.source:
        print("  source:\n" + _indent(policy.source))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from services.repository.store import historical_ratio

    repo = _open(args)
    try:
        versions = [p for p in repo.list(all_versions=True) if p.name == args.name]
        if not versions:
            repo.get(args.name)  # raises PolicyNotFound with the helpful hint
        full = [repo.get(p.name, p.version) for p in versions]
        antipatterns = repo.list_antipatterns(name=args.name, limit=200)
    finally:
        repo.close()
    if args.json:
        from services.repository import convert

        print(json.dumps({
            "name": args.name,
            "versions": [{"version": p.version, "status": p.status.name, "parent": p.parent,
                          "history": [MessageToDict(convert.record_to_proto(r), preserving_proto_field_name=True)
                                      for r in p.history]} for p in full],
            "antipatterns": [MessageToDict(convert.antipattern_to_proto(a), preserving_proto_field_name=True)
                             for a in antipatterns],
        }, indent=2))
        return 0
    for p in full:
        mean = historical_ratio(p.history)
        summary = f"{len(p.history)} records, mean ratio {mean:.3f}" if p.history else "no records yet"
        print(f"{p.ref}  [{p.status.name}]  parent={p.parent or '-'}  {summary}")
        if p.history:
            print(_indent(_history_table(p.history)))
    if antipatterns:
        print("failed attempts:")
        print(_indent(_table(["AT", "VERSION", "CLASS", "STAGE", "REASON"],
                             [[a.at.isoformat(timespec="seconds") if a.at else "-", a.policy_version or "-",
                               a.workload_class.name, a.stage or "-", _short(a.reason, 70)] for a in antipatterns])))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from services.repository.seed import seed_from_library

    bpf_dir = args.bpf_dir or Path(__file__).resolve().parents[2] / "bpf"
    if not bpf_dir.is_dir():
        raise InvalidArgument(f"library directory {bpf_dir} does not exist", hint="pass --bpf-dir")
    store = _open_local()
    try:
        report = seed_from_library(store, bpf_dir)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"stored": report.stored, "unchanged": report.unchanged,
                          "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}, indent=2))
    else:
        print(f"seeded from {bpf_dir}: {len(report.stored)} new, {len(report.unchanged)} unchanged, "
              f"{len(report.skipped)} skipped")
        for ref in report.stored:
            print(f"  + {ref}")
        for path, why in report.skipped:
            print(f"  ! {path}: {why}", file=sys.stderr)
    invalid = [s for s in report.skipped if "no metadata file" not in s[1]]
    return 1 if invalid else 0


def _history_table(records: Sequence[Any]) -> str:
    return _table(["AT", "CLASS", "METRIC", "RATIO", "OK", "SOURCE", "CONFIG"],
                  [[r.at.isoformat(timespec="seconds") if r.at else "-", r.workload_class.name, r.metric or "-",
                    f"{r.ratio:.3f}", "yes" if r.success else "no", f"{r.source}:{_short(r.source_id, 16)}",
                    r.config_digest[7:19] or "-"] for r in records])


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
