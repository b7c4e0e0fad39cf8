"""Reference workloads with JSON metrics, runnable on a host or in a micro-VM.

Use ``get_workload(name)`` for a workload's spec (metrics, direction, class,
parameters), ``workload_command(name, params)`` for the argv that runs it on
a node, ``prepare(name)`` on the host before that (builds its C programs), and
``parse_result(output, spec)`` to read what a run printed.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from schedcp.errors import NotFound
from schedcp.workloads.library import WORKLOADS
from schedcp.workloads.native import cache_dir, ensure_native
from schedcp.workloads.spec import (
    WORKLOAD_CLASSES,
    MetricSpec,
    ParamSpec,
    WorkloadError,
    WorkloadResult,
    WorkloadSpec,
    parse_result,
)

__all__ = [
    "WORKLOADS", "WORKLOAD_CLASSES", "MetricSpec", "ParamSpec", "WorkloadError", "WorkloadResult",
    "WorkloadSpec", "get_workload", "parse_result", "prepare", "run_workload", "workload_command",
    "workloads_for_class",
]


def get_workload(name: str) -> WorkloadSpec:
    """The workload called ``name``; NotFound lists the known ones."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise NotFound(f"no workload named {name!r}",
                       hint=f"known workloads: {', '.join(sorted(WORKLOADS))}") from None


def workloads_for_class(workload_class: str) -> list[WorkloadSpec]:
    """The workloads representing a WorkloadClass name (e.g. "LATENCY_SERVER")."""
    return [w for w in WORKLOADS.values() if w.workload_class == workload_class]


def prepare(name: str) -> None:
    """Make a workload runnable: build its C programs, check its tools.

    Call on the host before running it anywhere (a guest cannot compile).
    """
    spec = get_workload(name)
    for program in spec.natives:
        ensure_native(program)
    for tool in spec.tools:
        if shutil.which(tool) is None:
            raise WorkloadError(f"workload {name} needs {tool}, which is not installed",
                                hint="run scripts/install-system.sh")


def workload_command(name: str, params: Mapping[str, object] | None = None, *,
                     python: str | None = None) -> list[str]:
    """The argv that runs one repetition and prints its JSON result."""
    spec = get_workload(name)
    values = spec.resolve_params(params)
    # -S skips site-packages (the runner needs only the stdlib and this
    # tree): interpreter start-up is seconds under TCG, mostly imports.
    root = str(Path(__file__).resolve().parents[2])
    boot = (f"import sys; sys.path.insert(0, {root!r}); "
            "from schedcp.workloads.__main__ import main; sys.exit(main())")
    argv = [python or sys.executable, "-S", "-c", boot, "run", name]
    for key, value in values.items():
        argv += ["--param", f"{key}={value}"]
    # The guest's environment may differ; tell it where the host built.
    return argv + ["--cache-dir", str(cache_dir())]


def run_workload(name: str, params: Mapping[str, object] | None = None) -> WorkloadResult:
    """Run one repetition here, in this machine's scheduler, and return its metrics."""
    spec = get_workload(name)
    values = spec.resolve_params(params)
    start = time.monotonic()
    raw = spec.execute(values)
    elapsed = time.monotonic() - start
    declared = {m.name for m in spec.metrics}
    metrics = {k: v for k, v in raw.items() if k in declared}
    extra = {k.lstrip("_"): v for k, v in raw.items() if k not in declared}
    missing = declared - metrics.keys()
    if missing:
        raise WorkloadError(f"{name} did not report {', '.join(sorted(missing))}")
    return WorkloadResult(workload=name, params=values, metrics=metrics, extra=extra, elapsed_s=elapsed)
