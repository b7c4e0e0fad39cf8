"""The four stages, each a thin adapter from a substrate capability to findings.

Dependencies arrive through constructors typed by Protocols: a builder (the
project's BPF build chain), a node provider (a micro-VM from the pool, or the
host), and the performance runner. Nothing here imports grpc or nats.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.verifier.domain import Finding, Severity
from services.verifier.pipeline import StageFailed, StageOutcome, VerifyContext
from services.verifier.static_analysis import StaticAnalyzer
from services.verifier.verifier_log import summarize

# ------------------------------------------------------------------ build


class Builder(Protocol):
    """The slice of :class:`schedcp.substrate.build.BpfBuilder` the stage uses."""

    include_dirs: tuple[Path, ...]

    def build_source(self, text: str, *, name: str = ..., out: Path | None = ...,
                     extra_cflags: Sequence[str] = ...) -> Any: ...

    def command(self, source: Path, out: Path, extra_cflags: Sequence[str] = ...,
                extra_includes: Sequence[Path] = ...) -> list[str]: ...


_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]")


class BuildStage:
    """Compile source + check that every tunable names a ``const volatile`` global."""

    name = "build"

    def __init__(self, *, builder: Builder, objdump: str = "llvm-objdump-19") -> None:
        self.builder = builder
        self.objdump = objdump

    def run(self, ctx: VerifyContext) -> StageOutcome:
        from schedcp.substrate.build import BuildError

        cand = ctx.candidate
        name = _NAME_OK.sub("_", cand.name)[:64] or "candidate"
        try:
            res = self.builder.build_source(cand.source, name=name)
        except BuildError as exc:
            diags = [d for d in exc.diagnostics if d.severity in ("error", "fatal error")]
            findings = [Finding(Severity.ERROR, "compile-error", d.message, d.line,
                                "fix the compiler error at this line", d.file) for d in diags]
            if not findings:
                findings = [Finding(Severity.ERROR, "compile-error", exc.message,
                                    hint=exc.hint or "")]
            raise StageFailed(findings, exc.log) from exc
        ctx.object_path = Path(res.object_path)
        ctx.artifact_digest = res.digest
        ctx.source_path = ctx.object_path.parent / f"{name}.bpf.c"
        cmd = self.builder.command(Path("x.bpf.c"), Path("x.o"))
        ctx.clang_args = cmd[1:cmd.index("-c")] if "-c" in cmd else cmd[1:]
        findings = [Finding(Severity.WARNING, "compiler-warning", d.message, d.line, "", d.file)
                    for d in getattr(res, "diagnostics", ())]
        findings += self._check_tunables(ctx.object_path, cand.tunables)
        if any(f.severity is Severity.ERROR for f in findings):
            raise StageFailed(findings)
        return StageOutcome(findings=findings,
                            details={"artifact_digest": res.digest,
                                     "object_bytes": ctx.object_path.stat().st_size})

    def _check_tunables(self, obj: Path, tunables: Mapping[str, object]) -> list[Finding]:
        if not tunables:
            return []
        proc = subprocess.run([self.objdump, "-t", str(obj)], capture_output=True, text=True,
                              check=False)
        rodata = {ln.split()[-1] for ln in proc.stdout.splitlines() if ".rodata" in ln}
        return [Finding(Severity.ERROR, "unknown-tunable",
                        f"tunable {k!r} is not a `const volatile` global of this scheduler",
                        hint=f"known tunables: {', '.join(sorted(rodata)) or 'none'}")
                for k in tunables if k not in rodata]


# ------------------------------------------------------------------ static


class StaticStage:
    """Scheduler-specific rules over clang's AST (see static_analysis)."""

    name = "static"

    def __init__(self, *, project_include_dirs: Sequence[Path], clang: str = "clang-19",
                 cache_dir: Path | None = None) -> None:
        from schedcp.substrate.build import default_cache_dir

        self.project_include_dirs = list(project_include_dirs)
        self.clang = clang
        # Where the precompiled kernel/libbpf prelude lives (one per BTF + flags).
        self.cache_dir = cache_dir or default_cache_dir() / "static"

    def run(self, ctx: VerifyContext) -> StageOutcome:
        assert ctx.source_path is not None, "build stage runs first"
        analyzer = StaticAnalyzer(clang_args=ctx.clang_args,
                                  project_include_dirs=self.project_include_dirs, clang=self.clang,
                                  cache_dir=self.cache_dir)
        report = analyzer.analyze_file(ctx.source_path, tunables=ctx.candidate.tunables,
                                       cwd=ctx.source_path.parent)
        return StageOutcome(findings=report.findings,
                            details={"ops": report.ops,
                                     "errors": sum(f.severity is Severity.ERROR
                                                   for f in report.findings)})


# ------------------------------------------------------------------ nodes


class SchedNodeLike(Protocol):
    """What the kernel and dynamic stages need from a node (schedcp.substrate.nodes)."""

    def load(self, obj: Path, *, tunables: Mapping[str, object] | None = None,
             metadata_path: Path | None = None,
             ops_overrides: Mapping[str, int] | None = None) -> Any: ...

    def state(self, name: str | None = None) -> Any: ...

    def unload(self, name: str) -> Any: ...

    def run(self, argv: Sequence[str], *, timeout_s: float) -> Any: ...


NodeProvider = Callable[[], contextlib.AbstractContextManager[SchedNodeLike]]


class KernelVerifierStage:
    """Load the object in a node; a rejection becomes a summarised finding.

    On success the scheduler stays loaded (with a short watchdog timeout) for
    the dynamic stage in the same VM, which saves a boot per candidate.
    """

    name = "kernel_verifier"

    def __init__(self, *, nodes: NodeProvider, watchdog_timeout_ms: int = 5000) -> None:
        self.nodes = nodes
        self.watchdog_timeout_ms = watchdog_timeout_ms

    def run(self, ctx: VerifyContext) -> StageOutcome:
        from schedcp.substrate.loader import AttachFailed, Ejected, VerifierRejected

        assert ctx.object_path is not None
        node = ctx.exit_stack.enter_context(self.nodes())
        ctx.node = node
        try:
            res = node.load(ctx.object_path, tunables=ctx.candidate.tunables,
                            ops_overrides={"timeout_ms": self.watchdog_timeout_ms})
        except VerifierRejected as exc:
            log = str(exc.details.get("log") or "")
            summary = summarize(log)
            raise StageFailed([summary.to_finding()], log,
                              {"program": summary.program, "insn": summary.insn,
                               "reason": summary.reason}) from exc
        except (AttachFailed, Ejected) as exc:
            raw = exc.details.get("kernel_log")
            klog = "\n".join(str(x) for x in raw) if isinstance(raw, list) else str(raw or "")
            rule = "attach-failed" if isinstance(exc, AttachFailed) else "ejected"
            raise StageFailed([Finding(Severity.ERROR, rule, exc.message,
                                       hint=exc.hint or "check ops.init and the kernel log")],
                              klog or str(exc.details.get("log") or "")) from exc
        ctx.loaded_name = res.name
        ctx.exit_stack.callback(_quiet_unload, node, res.name)
        return StageOutcome(log=str(getattr(res, "libbpf_log", "")),
                            details={"ops_name": res.name, "load_ms": round(res.load_ms, 1),
                                     "total_ms": round(res.total_ms, 1)})


def _quiet_unload(node: SchedNodeLike, name: str) -> None:
    with contextlib.suppress(Exception):
        node.unload(name)


# ------------------------------------------------------------------ dynamic


@dataclass(frozen=True)
class SuiteConfig:
    """Knobs of the guest stress/correctness suite (see guest_suite)."""

    duration_s: float = 6.0
    #: Longest tolerated wait of any task (TCG is ~16x slower than native).
    max_wait_s: float = 2.0
    short_tasks: int = 200
    forks: int = 150


class PerformanceRunner(Protocol):
    """A/B of the loaded candidate against EEVDF on one node (see dynamic)."""

    def compare(self, *, node: SchedNodeLike, ctx: VerifyContext) -> Any: ...


class DynamicStage:
    """Stress + starvation suite with the candidate loaded, then the A/B check."""

    name = "dynamic"

    def __init__(self, *, suite: SuiteConfig = SuiteConfig(),
                 performance: PerformanceRunner | None = None,
                 python: str | None = None) -> None:
        self.suite = suite
        self.performance = performance
        self.python = python or sys.executable

    def suite_argv(self) -> list[str]:
        s = self.suite
        return [self.python, "-m", "services.verifier.guest_suite", "--duration", str(s.duration_s),
                "--short-tasks", str(s.short_tasks), "--forks", str(s.forks)]

    def run(self, ctx: VerifyContext) -> StageOutcome:
        node = ctx.node
        if node is None:
            raise StageFailed([Finding(Severity.ERROR, "internal-error",
                                       "no node: kernel_verifier did not run")],
                              details={"internal": True})
        from schedcp.substrate.build import REPO_ROOT

        argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(REPO_ROOT), *self.suite_argv()]
        res = node.run(argv, timeout_s=self.suite.duration_s * 6 + 60)
        report = parse_suite_output(str(getattr(res, "stdout", "")))
        state = node.state(ctx.loaded_name)
        findings = judge_suite(report, state, max_wait_s=self.suite.max_wait_s)
        log = tail(str(getattr(res, "stderr", "")))
        details: dict[str, Any] = {"suite": report, "state": _state_dict(state)}
        if any(f.severity is Severity.ERROR for f in findings):
            raise StageFailed(findings, log, details)
        if self.performance is not None and ctx.candidate.workload and not ctx.skip_performance:
            perf = self.performance.compare(node=node, ctx=ctx)
            ctx.performance = perf.result
            findings += perf.findings
            details["performance"] = perf.result.to_dict() if perf.result else None
            if any(f.severity is Severity.ERROR for f in findings):
                raise StageFailed(findings, log, details)
        return StageOutcome(findings=findings, log=log, details=details)


def tail(text: str, n: int = 3000) -> str:
    return text[-n:]


def _state_dict(state: Any) -> dict[str, Any]:
    to = getattr(state, "to_dict", None)
    return to() if callable(to) else {}


def parse_suite_output(stdout: str) -> dict[str, Any]:
    """The suite prints one JSON object as its last stdout line."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "tasks" in doc:
            return doc
    return {"error": "the guest suite printed no JSON report", "tasks": [],
            "stdout_tail": stdout[-1000:]}


def judge_suite(report: Mapping[str, Any], state: Any, *, max_wait_s: float) -> list[Finding]:
    """Turn the suite's measurements + the scheduler state into findings."""
    findings: list[Finding] = []
    ejected = bool(getattr(state, "ejected", False)) or not bool(getattr(state, "enabled", True))
    if ejected:
        ei = getattr(state, "exit", None)
        why = ei.summary() if ei is not None and hasattr(ei, "summary") else "unknown reason"
        klog = [str(x) for x in (getattr(ei, "kernel_log", None) or [])]
        detail = [ln for ln in klog if "disabled" not in ln][-2:]
        if detail:
            why += " (kernel: " + " | ".join(d.strip() for d in detail) + ")"
        if "stall" in why:
            # The kernel's watchdog (timeout_ms, set short by kernel_verifier)
            # saw a runnable task wait that long: starvation, measured by it.
            findings.append(Finding(
                Severity.ERROR, "starvation",
                "a runnable task waited longer than the watchdog timeout during the suite",
                hint="some class of tasks is never dispatched under load; check priority/aging"))
        findings.append(Finding(
            Severity.ERROR, "ejected",
            f"the kernel disabled the scheduler during the stress suite: {why}",
            hint="a runnable task stall means some task was never dispatched; a runtime error "
                 "names the offending kfunc call (e.g. SCX_DSQ_LOCAL_ON outside the cpumask)"))
    if report.get("error"):
        findings.append(Finding(Severity.ERROR, "suite-error", str(report["error"]),
                                hint="the suite could not run to completion under this "
                                     "scheduler (a stall or hang is likely)"))
    if report.get("sched_ext_left_enabled") is False and not ejected:
        findings.append(Finding(Severity.ERROR, "ejected",
                                "sched_ext did not stay enabled throughout the suite",
                                hint="see the kernel log for the exit reason"))
    tasks = list(report.get("tasks", []))
    judged = [float(t.get("max_wait_s", 0.0)) for t in tasks if t.get("judged", True)]
    typical = statistics.median(judged) if judged else 0.0
    if typical > 2.5 * max_wait_s:
        # Not host noise any more (a loaded host inflated the median to ~1 s at
        # worst here): every task waits for seconds, e.g. enormous slices.
        findings.append(Finding(
            Severity.ERROR, "starvation",
            f"the median task waited {typical:.2f} s for a CPU (bound {max_wait_s:.2f} s): "
            "every task is starved in turn",
            hint="check slice lengths and that idle CPUs pick up queued work"))
    for t in tasks:
        wait = float(t.get("max_wait_s", 0.0))
        if not t.get("completed", True):
            findings.append(Finding(
                Severity.ERROR, "starvation",
                f"task {t['name']} never finished its work (longest wait {wait:.2f} s)",
                hint="some class of tasks is never dispatched; check priority/aging logic"))
        elif not t.get("judged", True):
            continue
        elif wait > max_wait_s and wait <= 3 * typical:
            # Every task waited about as long: the host starved the whole VM
            # (TCG on a loaded machine), which says nothing about the policy.
            findings.append(Finding(
                Severity.WARNING, "slow-host",
                f"task {t['name']} waited {wait:.2f} s, but so did most tasks (median "
                f"{typical:.2f} s): the VM itself was starved by the host",
                hint="re-run on a less loaded host for a meaningful latency bound"))
        elif wait > max_wait_s:
            findings.append(Finding(
                Severity.ERROR, "starvation",
                f"task {t['name']} waited {wait:.2f} s to run (bound {max_wait_s:.2f} s)",
                hint="a task class is starved under load: age waiting tasks or bound the "
                     "priority boost"))
    return findings


@contextlib.contextmanager
def host_node() -> Iterator[SchedNodeLike]:
    """The local host as a node (only where it has sched_ext and we are root)."""
    from schedcp.substrate.nodes import HostSchedNode

    yield HostSchedNode()
