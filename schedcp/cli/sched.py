"""``schedcp sched load``: build, load, (run), watch and unload a scheduler.

    schedcp sched load fifo --set slice_us=5000 --run -- hackbench -g 2 -l 200
    schedcp sched load ./my.bpf.c --node host --json

Every step is reported as a state transition with a timestamp (building,
built, booting, loading, enabled, running, ejected, unloaded). The exit code
is 0 only if the scheduler built, loaded, stayed enabled throughout and (with
``--run``) the command succeeded; 1 when the operation ran and failed (build
error, verifier rejection, ejection, failing command); 2 for usage errors.

SIGTERM/SIGINT unload the scheduler and tear the VM down before exiting, so
killing this command leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from schedcp.errors import SchedcpError
from schedcp.substrate.build import BpfBuilder, BuildError, find_scheduler_source
from schedcp.substrate.loader import Ejected, LoaderError, VerifierRejected
from schedcp.substrate.nodes import HostSchedNode, SchedNode
from schedcp.substrate.sched_metadata import metadata_for_source, parse_set_args


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("sched", help="build and load sched_ext schedulers")
    sub = p.add_subparsers(dest="sched_command", metavar="SUBCOMMAND",
                           parser_class=_CommandTailParser)
    sub.required = True
    lp = sub.add_parser("load", help="build, load, optionally run a command, and unload",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lp.add_argument("scheduler", metavar="NAME|FILE.bpf.c",
                    help="a scheduler in bpf/ (e.g. fifo) or a source file")
    lp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="set a tunable (const volatile global) before load; repeatable")
    lp.add_argument("--node", choices=("vm", "host"), default="vm",
                    help="where to load: a fresh micro-VM (default) or this host")
    lp.add_argument("--timeout-ms", type=int, default=None,
                    help="override ops.timeout_ms (the sched_ext watchdog)")
    lp.add_argument("--hold", type=float, default=2.0,
                    help="without --run: watch for ejection this many seconds (default 2)")
    lp.add_argument("--run-timeout", type=float, default=600.0,
                    help="hard timeout for the --run command in seconds")
    lp.add_argument("--cpus", type=int, default=2, help="vCPUs of the micro-VM")
    lp.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    lp.add_argument("--run", action="store_true",
                    help="run the command given after -- under the scheduler")

    lp.set_defaults(func=cmd_load)


class _CommandTailParser(argparse.ArgumentParser):
    """Everything after the first ``--`` is the command for ``--run``.

    argparse cannot express "options, then -- CMD..." (a REMAINDER option
    drops the ``--``, a REMAINDER positional swallows the options), so split
    before parsing and hand the tail over as ``args.command``.
    """

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def, override]
        argv = list(sys.argv[1:] if args is None else args)
        tail: list[str] = []
        if "--" in argv:
            i = argv.index("--")
            argv, tail = argv[:i], argv[i + 1:]
        ns, extras = super().parse_known_args(argv, namespace)
        ns.command = tail
        return ns, extras


class _Terminated(Exception):
    """SIGTERM arrived: unwind so cleanup (unload, VM teardown) runs."""


class _Report:
    """State transitions with timestamps, printed as they happen."""

    def __init__(self, *, as_json: bool) -> None:
        self.t0 = time.monotonic()
        self.as_json = as_json
        self.events: list[dict[str, object]] = []
        self.doc: dict[str, object] = {"ok": False}

    def event(self, state: str, detail: str = "", **extra: object) -> None:
        t = round(time.monotonic() - self.t0, 3)
        self.events.append({"t": t, "state": state, "detail": detail, **extra})
        if not self.as_json:
            print(f"[{t:8.3f}s] {state:<9} {detail}", flush=True)

    def finish(self, ok: bool) -> int:
        self.doc["ok"] = ok
        self.doc["events"] = self.events
        if self.as_json:
            json.dump(self.doc, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
            sys.stdout.flush()
        return 0 if ok else 1

    def error(self, exc: SchedcpError, state: str = "failed") -> None:
        info: dict[str, object] = {"code": exc.code, "message": exc.message, "hint": exc.hint}
        if isinstance(exc, BuildError):
            info["diagnostics"] = [d.to_dict() for d in exc.diagnostics]
        for k in ("log", "kernel_log", "exit", "errno"):
            if k in exc.details:
                info[k] = exc.details[k]
        self.doc["error"] = info
        self.event(state, exc.message)
        if not self.as_json:
            print(f"schedcp: error: {exc}", file=sys.stderr)
            if isinstance(exc, BuildError):
                for d in exc.diagnostics:
                    if d.severity in ("error", "fatal error"):
                        print(f"  {d}", file=sys.stderr)
            if isinstance(exc, VerifierRejected):
                anchor = exc.message.rsplit(": ", 1)[-1]
                print(_log_excerpt(str(exc.details.get("log", "")), anchor), file=sys.stderr)


def _log_excerpt(log: str, anchor: str, before: int = 10, after: int = 30) -> str:
    """The part of a verifier log around the line that explains the rejection
    (newer kernels append a long "causal path" after it)."""
    body = [ln for ln in log.splitlines() if ln.strip()]
    idx = next((i for i, ln in enumerate(body) if anchor and anchor in ln), len(body) - 1)
    lo, hi = max(0, idx - before), min(len(body), idx + after)
    return "\n".join("  | " + ln for ln in body[lo:hi])


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    old_term = signal.signal(signal.SIGTERM, handler)
    old_hup = signal.signal(signal.SIGHUP, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)


@contextlib.contextmanager
def open_node(kind: str, *, cpus: int, report: _Report,
              kernel: object | None = None) -> Iterator[SchedNode]:
    """A node to load into; the VM (if any) is torn down on exit, whatever happens."""
    if kind == "host":
        node: SchedNode = HostSchedNode()
        report.event("node", node.describe())
        yield node
        return
    from schedcp.substrate.nodes import boot_vm_node

    report.event("booting", f"micro-VM, {cpus} vCPUs")
    with boot_vm_node(cpus=cpus, kernel=kernel) as vm:  # type: ignore[arg-type]
        report.event("booted", vm.describe())
        yield vm


def _target_btf(kind: str) -> tuple[Path, str, object | None]:
    """(BTF to build against, its description, the VM kernel) without booting:
    a build error should not cost a VM boot."""
    if kind == "host":
        node = HostSchedNode()  # refuses clearly without sched_ext or root
        return node.btf_path(), node.describe(), None
    from schedcp.substrate.kernel import ensure_kernel

    k = ensure_kernel()
    return k.vmlinux, f"kernel {k.release}", k


def cmd_load(args: argparse.Namespace) -> int:
    report = _Report(as_json=args.json)
    run_argv = list(getattr(args, "command", None) or [])
    if args.run != bool(run_argv):
        raise SchedcpError("--run needs a command after --, and a command needs --run",
                           hint="schedcp sched load fifo --run -- CMD ...")
    with _terminate_as_exception():
        try:
            return _load_flow(args, report, run_argv)
        except (_Terminated, KeyboardInterrupt):
            report.event("interrupted", "signal received; scheduler unloaded and VM stopped")
            report.finish(False)
            return 130


def _load_flow(args: argparse.Namespace, report: _Report, run_argv: list[str]) -> int:
    try:
        source = find_scheduler_source(args.scheduler)
        meta = metadata_for_source(source)
        requested = parse_set_args(args.set)
        # Check tunables before spending a build and a VM boot on them.
        tunables: dict[str, object] = dict(meta.resolve(requested) if meta else requested)
    except SchedcpError as exc:
        report.error(exc)
        return report.finish(False)
    report.doc["scheduler"] = {"source": str(source), "metadata": meta.to_dict() if meta else None,
                               "tunables": tunables}
    overrides = {"timeout_ms": args.timeout_ms} if args.timeout_ms is not None else {}
    meta_path = source.with_name(source.name.removesuffix(".c").removesuffix(".bpf") + ".json")
    try:
        btf, target, kernel = _target_btf(args.node)
        report.event("building", f"{source.name} against {target}")
        try:
            built = BpfBuilder(btf=btf).build_file(source)
        except BuildError as exc:
            report.error(exc, "build-failed")
            return report.finish(False)
        report.doc["build"] = built.to_dict()
        report.event("built", f"{built.object_path.name} {built.digest[:19]}")
        with open_node(args.node, cpus=args.cpus, report=report, kernel=kernel) as node:
            return _on_node(node, args, report, built.object_path, meta_path if meta else None,
                            tunables, overrides, run_argv)
    except SchedcpError as exc:
        report.error(exc)
        return report.finish(False)


def _on_node(node: SchedNode, args: argparse.Namespace, report: _Report, obj: Path,
             meta_path: Path | None, tunables: dict[str, object], overrides: dict[str, int],
             run_argv: list[str]) -> int:
    report.event("loading", ", ".join(f"{k}={v}" for k, v in tunables.items()) or "defaults")
    try:
        loaded = node.load(obj, tunables=tunables, metadata_path=meta_path,
                           ops_overrides=overrides)
    except VerifierRejected as exc:
        report.error(exc, "rejected")
        return report.finish(False)
    except Ejected as exc:
        report.error(exc, "ejected")
        return report.finish(False)
    except LoaderError as exc:
        report.error(exc, "load-failed")
        return report.finish(False)
    name = loaded.name
    report.doc["load"] = loaded.to_dict()
    report.event("enabled", f"{name} (load {loaded.load_ms:.0f} ms, total {loaded.total_ms:.0f} ms)")

    ok = True
    try:
        if run_argv:
            report.event("running", " ".join(run_argv))
            res = node.run(run_argv, timeout_s=args.run_timeout)
            report.doc["run"] = res.to_dict()
            report.event("ran", f"exit {res.returncode} after {res.seconds:.2f}s"
                         + (" (timed out)" if res.timed_out else ""))
            if not args.json:
                sys.stdout.write(res.stdout)
                sys.stderr.write(res.stderr)
            ok = res.returncode == 0
            st = node.state(name)
        else:
            st = node.watch(name, duration_s=args.hold)
        if st.ejected or not st.enabled:
            reason = st.exit.summary() if st.exit else st.sched_ext_state
            report.doc["exit"] = asdict(st.exit) if st.exit else None
            report.event("ejected", f"{name}: {reason}",
                         kind=st.exit.kind if st.exit else None)
            ok = False
    finally:
        final = node.unload(name)
        report.doc["unload"] = final.to_dict()
        report.event("unloaded", f"sched_ext {final.sched_ext_state}")
    return report.finish(ok)
