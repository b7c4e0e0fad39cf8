"""Nodes the A/B engine can run on.

``LocalHost`` runs workloads as local processes; it has sched_ext only when
the host kernel does (this project's build hosts do not). ``SchedNodeAdapter``
wraps the substrate's ``SchedNode`` (a micro-VM or a real host) once loaded.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from schedcp.bench.engine import BenchError, NoSchedExt, SchedulerUnderTest

SCHED_EXT_SYSFS = Path("/sys/kernel/sched_ext")


def host_has_sched_ext() -> bool:
    """Whether the running kernel was built with CONFIG_SCHED_CLASS_EXT."""
    return (SCHED_EXT_SYSFS / "state").exists()


class LocalHost:
    """This machine, running workloads as child processes (EEVDF only)."""

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or f"host:{os.uname().nodename}"

    def supports_sched_ext(self) -> bool:
        return host_has_sched_ext()

    def load_scheduler(self, scheduler: SchedulerUnderTest) -> None:
        raise NoSchedExt(
            f"loading {scheduler.name} on this host is not supported by LocalHost",
            hint="use --node vm; this host's kernel has no sched_ext" if not host_has_sched_ext()
            else "use the substrate's HostNode for a sched_ext host")

    def unload_scheduler(self) -> None:
        return None

    def active_scheduler(self) -> str | None:
        try:
            state = (SCHED_EXT_SYSFS / "state").read_text().strip()
        except OSError:
            return None
        if state != "enabled":
            return None
        try:
            return (SCHED_EXT_SYSFS / "root" / "ops").read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def run_command(self, argv: Sequence[str], *, timeout: float) -> str:
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"workload run exceeded {timeout:.0f} s on {self.name}") from None
        if proc.returncode != 0:
            raise BenchError(f"workload run failed on {self.name} (exit {proc.returncode})",
                             hint=proc.stderr.strip()[-600:])
        return proc.stdout


class _LocalHostNode(LocalHost):
    """LocalHost plus the scheduler resolution the CLI needs."""

    def scheduler(self, name: str, sets: dict[str, str]) -> SchedulerUnderTest:
        if name == "eevdf":
            return SchedulerUnderTest("eevdf")
        if not host_has_sched_ext():
            raise NoSchedExt(
                f"this host's kernel ({os.uname().release}) has no sched_ext "
                "(built without CONFIG_SCHED_CLASS_EXT), so it cannot run "
                f"{name}", hint="use --node vm (a micro-VM with a sched_ext kernel), "
                                "or --sched eevdf to measure only the baseline here")
        raise NoSchedExt("loading schedulers on a sched_ext host needs the substrate's HostNode",
                         hint="use --node vm")


@contextlib.contextmanager
def open_node(kind: str, *, vcpus: int = 2, progress: Callable[[str], None] | None = None) -> Iterator:
    """A ready node for the CLI: ``host`` or ``vm`` (one micro-VM boot)."""
    if kind == "host":
        yield _LocalHostNode()
        return
    raise BenchError(f"unknown node kind {kind!r}", hint="use vm or host")
