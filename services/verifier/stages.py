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
import threading
import time
import weakref
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

    def __init__(self, *, nodes: NodeProvider, watchdog_timeout_ms: int = 5000,
                 leftover_settle_s: float = 30.0) -> None:
        self.nodes = nodes
        self.watchdog_timeout_ms = watchdog_timeout_ms
        self.leftover_settle_s = leftover_settle_s

    def run(self, ctx: VerifyContext) -> StageOutcome:
        from schedcp.substrate.loader import AttachFailed, Ejected, VerifierRejected

        assert ctx.object_path is not None
        node = ctx.exit_stack.enter_context(self.nodes())
        ctx.node = node
        try:
            res = self._load(node, ctx)
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

    def _load(self, node: Any, ctx: VerifyContext) -> Any:
        """Load the candidate; on a reused node, first clear what an earlier
        candidate left behind (its unload failed or the kernel was still
        disabling it), which is not this candidate's fault."""
        from schedcp.substrate.loader import SchedulerBusy

        def load() -> Any:
            return node.load(ctx.object_path, tunables=ctx.candidate.tunables,
                             ops_overrides={"timeout_ms": self.watchdog_timeout_ms})

        try:
            return load()
        except SchedulerBusy as exc:
            left = _clear_leftover(node, settle_s=self.leftover_settle_s)
            if left is not None:
                raise SchedulerBusy(
                    f"the verification node still runs {left!r} from an earlier candidate "
                    f"({exc.message}) and it could not be unloaded",
                    hint="this is not the candidate's fault: restart the node (or the "
                         "verifier) and retry") from exc
            return load()


def _quiet_unload(node: SchedNodeLike, name: str) -> None:
    with contextlib.suppress(Exception):
        node.unload(name)


def _clear_leftover(node: Any, *, settle_s: float, poll_s: float = 0.5) -> str | None:
    """Unload whatever scheduler a node still runs and wait (up to
    ``settle_s``) for sched_ext to be disabled; None once it is, else the
    name of what is still there."""
    deadline = time.monotonic() + settle_s
    tried: set[str] = set()
    while True:
        st = node.state()
        if st.sched_ext_state == "disabled":
            return None
        ops = st.root_ops or ""
        if st.sched_ext_state == "enabled" and ops and ops not in tried:
            tried.add(ops)
            with contextlib.suppress(Exception):
                node.unload(ops)
            continue
        if time.monotonic() >= deadline:
            return ops or st.sched_ext_state
        time.sleep(poll_s)


# ------------------------------------------------------------------ dynamic


@dataclass(frozen=True)
class SuiteConfig:
    """Knobs of the guest stress/correctness suite (see guest_suite)."""

    duration_s: float = 6.0
    #: Longest wait of any task that passes whatever EEVDF did (TCG is ~16x
    #: slower than native). A wait past it is judged against EEVDF in the same VM.
    max_wait_s: float = 2.0
    short_tasks: int = 200
    forks: int = 150
    #: A task may wait up to this many times what EEVDF's tasks of the same
    #: kind waited in the same VM (host load stretches both alike).
    wait_factor: float = 3.0
    #: Measure EEVDF's waits when a task passes ``max_wait_s`` (off: the
    #: absolute bound with the uniform-slowness heuristic only).
    calibrate: bool = True
    #: Watchdog timeout the candidate is (re)loaded with, as kernel_verifier does.
    watchdog_timeout_ms: int = 5000


class PerformanceRunner(Protocol):
    """A/B of the loaded candidate against EEVDF on one node (see dynamic)."""

    def compare(self, *, node: SchedNodeLike, ctx: VerifyContext) -> Any: ...


class EevdfBaselines:
    """EEVDF's waits on the stress suite, measured once per node (VM boot).

    Keyed weakly by the node object, so a VM that is shut down drops its
    entry and a node shared by several candidates is measured once.
    """

    def __init__(self) -> None:
        self._by_node: weakref.WeakKeyDictionary[Any, dict[str, Any]] = \
            weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, node: Any) -> dict[str, Any] | None:
        with self._lock:
            try:
                return self._by_node.get(node)
            except TypeError:  # not weak-referenceable: never cached
                return None

    def put(self, node: Any, baseline: dict[str, Any]) -> None:
        with self._lock, contextlib.suppress(TypeError):
            self._by_node[node] = baseline


class DynamicStage:
    """Stress + starvation suite with the candidate loaded, then the A/B check.

    Waits are judged against an absolute bound first; only when a task passes
    it is EEVDF measured on the same suite in the same VM (once per VM), and
    the task then fails only past ``wait_factor`` times EEVDF's wait for its
    kind. A failure on waits alone is confirmed by a second run of the suite
    before it counts, because one task's longest wait is a heavy-tailed
    measure on a loaded host. Ejection and a task that never finished fail
    at once.
    """

    name = "dynamic"

    def __init__(self, *, suite: SuiteConfig = SuiteConfig(),
                 performance: PerformanceRunner | None = None,
                 python: str | None = None, baselines: EevdfBaselines | None = None) -> None:
        self.suite = suite
        self.performance = performance
        self.python = python or sys.executable
        self.baselines = baselines or EevdfBaselines()

    def suite_argv(self) -> list[str]:
        s = self.suite
        return [self.python, "-m", "services.verifier.guest_suite", "--duration", str(s.duration_s),
                "--short-tasks", str(s.short_tasks), "--forks", str(s.forks)]

    def _run_suite(self, node: SchedNodeLike) -> tuple[dict[str, Any], str]:
        from schedcp.substrate.build import REPO_ROOT

        argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(REPO_ROOT), *self.suite_argv()]
        res = node.run(argv, timeout_s=self.suite.duration_s * 6 + 60)
        return (parse_suite_output(str(getattr(res, "stdout", ""))),
                str(getattr(res, "stderr", "")))

    def _eevdf_baseline(self, node: SchedNodeLike, ctx: VerifyContext) -> dict[str, Any]:
        cached = self.baselines.get(node)
        if cached is not None:
            return {**cached, "cached": True}
        object_path = ctx.object_path
        if object_path is None:  # checked before unloading: the candidate could not be reloaded
            raise StageFailed([Finding(Severity.ERROR, "internal-error",
                                       "no object to reload after the EEVDF baseline: "
                                       "kernel_verifier did not run")],
                              details={"internal": True})
        node.unload(ctx.loaded_name)
        try:
            report, _err = self._run_suite(node)
        finally:
            node.load(object_path, tunables=ctx.candidate.tunables,
                      ops_overrides={"timeout_ms": self.suite.watchdog_timeout_ms})
        baseline = suite_baseline(report)
        if baseline["waits"]:
            self.baselines.put(node, baseline)
        return {**baseline, "cached": False}

    def run(self, ctx: VerifyContext) -> StageOutcome:
        node = ctx.node
        if node is None:
            raise StageFailed([Finding(Severity.ERROR, "internal-error",
                                       "no node: kernel_verifier did not run")],
                              details={"internal": True})
        s = self.suite
        report, stderr = self._run_suite(node)
        state = node.state(ctx.loaded_name)
        findings = judge_suite(report, state, max_wait_s=s.max_wait_s)
        details: dict[str, Any] = {"suite": report, "state": _state_dict(state)}
        if (s.calibrate and _wait_starvation(findings)
                and needs_baseline(report, state, max_wait_s=s.max_wait_s)):
            baseline = self._eevdf_baseline(node, ctx)
            details["eevdf_baseline"] = baseline
            findings = judge_suite(report, state, max_wait_s=s.max_wait_s, baseline=baseline,
                                   wait_factor=s.wait_factor)
            if _wait_starvation(findings):
                # Confirm: the same suite again with the candidate still loaded.
                report2, stderr = self._run_suite(node)
                state = node.state(ctx.loaded_name)
                second = judge_suite(report2, state, max_wait_s=s.max_wait_s,
                                     baseline=baseline, wait_factor=s.wait_factor)
                details["suite_confirm"] = report2
                details["state"] = _state_dict(state)
                if _wait_starvation(second) or any(f.severity is Severity.ERROR
                                                   for f in second):
                    findings = second + [Finding(
                        Severity.INFO, "starvation-confirmed",
                        "a second run of the suite confirmed the failure")]
                else:
                    findings = [_downgrade(f) for f in findings] + second
        log = tail(stderr)
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


_NUMBERED = re.compile(r"^([A-Za-z_]+?)\d+$")


def task_kind(name: str) -> str:
    """The suite's task class: ``hog3`` -> ``hog``, ``bursty0`` -> ``bursty``;
    other names (``nice10``, ``nice-5``, ``pinned_spin``) are their own kind."""
    m = _NUMBERED.match(name)
    return m.group(1) if m and m.group(1) in ("hog", "bursty") else name


def suite_baseline(report: Mapping[str, Any]) -> dict[str, Any]:
    """EEVDF's longest wait per task kind (judged, completed tasks only)."""
    waits: dict[str, float] = {}
    for t in report.get("tasks", []):
        if not t.get("judged", True) or not t.get("completed", False):
            continue
        kind = task_kind(str(t.get("name", "")))
        waits[kind] = max(waits.get(kind, 0.0), float(t.get("max_wait_s", 0.0)))
    return {"waits": waits, "median": statistics.median(waits.values()) if waits else 0.0,
            "elapsed_s": report.get("elapsed_s"), "error": report.get("error")}


def _is_ejected(state: Any) -> bool:
    return bool(getattr(state, "ejected", False)) or not bool(getattr(state, "enabled", True))


def needs_baseline(report: Mapping[str, Any], state: Any, *, max_wait_s: float) -> bool:
    """Whether EEVDF's waits could change the verdict: every task finished, the
    scheduler stayed in, and some task still waited past the absolute bound."""
    if _is_ejected(state) or report.get("error") or report.get("sched_ext_left_enabled") is False:
        return False
    tasks = list(report.get("tasks", []))
    if not all(t.get("completed", True) for t in tasks):
        return False
    return any(float(t.get("max_wait_s", 0.0)) > max_wait_s
               for t in tasks if t.get("judged", True))


def _wait_starvation(findings: Sequence[Finding]) -> bool:
    return any(f.severity is Severity.ERROR and f.rule == "starvation" for f in findings)


def _downgrade(f: Finding) -> Finding:
    if f.severity is not Severity.ERROR:
        return f
    return Finding(Severity.WARNING, "starvation-unconfirmed",
                   f"{f.message}; a second run of the suite did not repeat it",
                   f.line, "a one-off wait, likely host load; re-run if in doubt", f.file)


def judge_suite(report: Mapping[str, Any], state: Any, *, max_wait_s: float,
                baseline: Mapping[str, Any] | None = None,
                wait_factor: float = 3.0) -> list[Finding]:
    """Turn the suite's measurements + the scheduler state into findings.

    Without ``baseline`` each judged task is held to ``max_wait_s``, except
    that uniform slowness of all tasks (the host starving the whole VM) is a
    warning. With ``baseline`` (:func:`suite_baseline` of EEVDF in the same
    VM) a task fails only past max(``max_wait_s``, ``wait_factor`` x EEVDF's
    longest wait for its kind). Ejection and a task that never finished
    always fail.
    """
    findings: list[Finding] = []
    ejected = _is_ejected(state)
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
    base_waits: Mapping[str, float] = dict((baseline or {}).get("waits") or {})
    base_typical = float((baseline or {}).get("median") or 0.0)
    if baseline is None:
        # Not host noise any more (a loaded host inflated the median to ~1 s at
        # worst here): every task waits for seconds, e.g. enormous slices.
        all_starved = typical > 2.5 * max_wait_s
    else:
        all_starved = typical > max(2.5 * max_wait_s, wait_factor * base_typical)
    if all_starved:
        eevdf = f", EEVDF's median {base_typical:.2f} s" if baseline is not None else ""
        findings.append(Finding(
            Severity.ERROR, "starvation",
            f"the median task waited {typical:.2f} s for a CPU (bound {max_wait_s:.2f} s"
            f"{eevdf}): every task is starved in turn",
            hint="check slice lengths and that idle CPUs pick up queued work"))
    fallback = max(base_waits.values()) if base_waits else 0.0
    for t in tasks:
        wait = float(t.get("max_wait_s", 0.0))
        name = str(t.get("name", "?"))
        if not t.get("completed", True):
            findings.append(Finding(
                Severity.ERROR, "starvation",
                f"task {name} never finished its work (longest wait {wait:.2f} s)",
                hint="some class of tasks is never dispatched; check priority/aging logic"))
            continue
        if not t.get("judged", True) or wait <= max_wait_s:
            continue
        if baseline is not None:
            kind = task_kind(name)
            ref = base_waits.get(kind, fallback)
            bound = max(max_wait_s, wait_factor * ref)
            if wait > bound:
                findings.append(Finding(
                    Severity.ERROR, "starvation",
                    f"task {name} waited {wait:.2f} s to run; EEVDF's {kind} tasks waited at "
                    f"most {ref:.2f} s in the same VM (bound {bound:.2f} s = max("
                    f"{max_wait_s:.2f} s, {wait_factor:g} x EEVDF))",
                    hint="a task class is starved under load: age waiting tasks or bound the "
                         "priority boost"))
            else:
                findings.append(Finding(
                    Severity.WARNING, "slow-host",
                    f"task {name} waited {wait:.2f} s (past {max_wait_s:.2f} s), but EEVDF's "
                    f"{kind} tasks waited {ref:.2f} s in the same VM: within {wait_factor:g} x "
                    "EEVDF, so the host, not the policy, set this wait",
                    hint="re-run on a less loaded host for a meaningful latency bound"))
        elif wait <= 3 * typical:
            # Every task waited about as long: the host starved the whole VM
            # (TCG on a loaded machine), which says nothing about the policy.
            findings.append(Finding(
                Severity.WARNING, "slow-host",
                f"task {name} waited {wait:.2f} s, but so did most tasks (median "
                f"{typical:.2f} s): the VM itself was starved by the host",
                hint="re-run on a less loaded host for a meaningful latency bound"))
        else:
            findings.append(Finding(
                Severity.ERROR, "starvation",
                f"task {name} waited {wait:.2f} s to run (bound {max_wait_s:.2f} s)",
                hint="a task class is starved under load: age waiting tasks or bound the "
                     "priority boost"))
    return findings


@contextlib.contextmanager
def host_node() -> Iterator[SchedNodeLike]:
    """The local host as a node (only where it has sched_ext and we are root)."""
    from schedcp.substrate.nodes import HostSchedNode

    yield HostSchedNode()
