"""Nodes the A/B engine can run on.

- ``LocalHost``: workloads as local processes, EEVDF only (this project's
  hosts have no sched_ext; it says so clearly when asked for a scheduler).
- ``SchedNodeAdapter``: the substrate's ``SchedNode`` (a micro-VM, or a real
  sched_ext host). Each repetition is ONE process on the node
  (``schedcp.bench.guest_run``): load, run, check, unload.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from schedcp.bench.engine import BenchError, NodeLost, NoSchedExt, RunOutcome, SchedulerUnderTest
from schedcp.bench.guest_run import bootstrap_argv
from schedcp.workloads import workload_command
from schedcp.workloads.native import cache_dir

SCHED_EXT_SYSFS = Path("/sys/kernel/sched_ext")


def host_has_sched_ext() -> bool:
    """Whether the running kernel was built with CONFIG_SCHED_CLASS_EXT."""
    return (SCHED_EXT_SYSFS / "state").exists()


def _no_sched_ext(name: str) -> NoSchedExt:
    return NoSchedExt(
        f"this host's kernel ({os.uname().release}) has no sched_ext (built without "
        f"CONFIG_SCHED_CLASS_EXT), so it cannot run {name}",
        hint="use --node vm (a micro-VM with a sched_ext kernel), or --sched eevdf to measure "
             "only the baseline here")


class LocalHost:
    """This machine, running workloads as child processes (EEVDF only)."""

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or f"host:{os.uname().nodename}"

    def supports_sched_ext(self) -> bool:
        return False

    def scheduler(self, name: str, sets: Mapping[str, str]) -> SchedulerUnderTest:
        if name != "eevdf":
            raise _no_sched_ext(name)
        if sets:
            raise BenchError("EEVDF takes no tunables")
        return SchedulerUnderTest("eevdf")

    def run_repetition(self, workload: str, params: Mapping[str, int], *,
                       scheduler: SchedulerUnderTest | None, timeout: float) -> RunOutcome:
        if scheduler is not None:
            raise _no_sched_ext(scheduler.name)
        argv = workload_command(workload, params)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{workload} exceeded {timeout:.0f} s on {self.name}") from None
        if proc.returncode != 0:
            raise BenchError(f"{workload} failed on {self.name} (exit {proc.returncode})",
                             hint=proc.stderr.strip()[-600:])
        return RunOutcome(output=proc.stdout)


class SchedNodeAdapter:
    """A substrate ``SchedNode`` (micro-VM or sched_ext host) as a ``BenchNode``.

    Schedulers are built on the host against the node's own BTF; each
    repetition then runs as one ``guest_run`` process on the node, which
    loads the object (tunables checked against its metadata), runs the
    workload, notes whether the kernel ejected the scheduler, and unloads it.
    """

    def __init__(self, node, *, name: str, progress: Callable[[str], None] | None = None,
                 builder=None, python: str | None = None) -> None:
        self.node = node
        self.name = name
        self.kernel_release = getattr(node, "release", "") or ""
        self._progress = progress or (lambda _m: None)
        self._builder = builder
        self._python = python or sys.executable

    def supports_sched_ext(self) -> bool:
        return True

    def scheduler(self, name: str, sets: Mapping[str, str]) -> SchedulerUnderTest:
        """Build ``name`` (bpf/NAME.bpf.c or a path) for this node, check ``sets``."""
        if name == "eevdf":
            if sets:
                raise BenchError("EEVDF takes no tunables")
            return SchedulerUnderTest("eevdf")
        from schedcp.substrate.build import BpfBuilder, find_scheduler_source
        from schedcp.substrate.sched_metadata import metadata_for_source

        source = find_scheduler_source(name)
        meta = metadata_for_source(source)
        if meta is None and sets:
            raise BenchError(f"{source} has no metadata file, so its tunables cannot be checked",
                             hint=f"add {source.name.removesuffix('.bpf.c')}.json beside it")
        tunables = meta.resolve(sets) if meta is not None else {}
        if self._builder is None:
            self._builder = BpfBuilder(btf=self.node.btf_path())
        self._progress(f"building {source.name} against the node's BTF")
        built = self._builder.build_file(source)
        return SchedulerUnderTest(meta.name if meta else source.name.removesuffix(".bpf.c"),
                                  obj=built.object_path, tunables=tunables)

    def run_repetition(self, workload: str, params: Mapping[str, int], *,
                       scheduler: SchedulerUnderTest | None, timeout: float) -> RunOutcome:
        sched = None
        if scheduler is not None and not scheduler.is_eevdf:
            assert scheduler.obj is not None
            sched = {"obj": str(Path(scheduler.obj).resolve()), "tunables": dict(scheduler.tunables)}
        request: dict[str, object] = {"workload": workload, "params": dict(params),
                                      "cache_dir": str(cache_dir()), "scheduler": sched}
        from schedcp.substrate import VmError

        try:
            res = self.node.run(bootstrap_argv(self._python, request), timeout_s=timeout)
        except VmError as exc:
            who = f" while {scheduler.name} was loaded" if sched and scheduler is not None else ""
            raise NodeLost(f"{self.name} died during {workload}{who}: {exc.message}",
                           hint=exc.hint) from exc
        if res.timed_out:
            raise BenchError(f"{workload} exceeded {timeout:.0f} s on {self.name}",
                             hint="a scheduler may be starving it; try smaller --param sizes")
        doc = None
        for line in reversed(res.stdout.strip().splitlines()):
            if line.startswith("{"):
                try:
                    doc = json.loads(line)
                    break
                except json.JSONDecodeError:
                    continue
        if not isinstance(doc, dict):
            raise BenchError(f"{workload} on {self.name} gave no answer (exit {res.returncode})",
                             hint=(res.stderr or res.stdout).strip()[-800:])
        if not doc.get("ok"):
            raise BenchError(f"{workload} on {self.name}: {doc.get('error')}", hint=doc.get("hint"),
                             kind=doc.get("kind"))
        return RunOutcome(output=json.dumps(doc["result"]), ejected=bool(doc.get("ejected")),
                          exit_reason=doc.get("exit"))


@contextlib.contextmanager
def open_node(kind: str, *, vcpus: int = 2, progress: Callable[[str], None] | None = None,
              mem_mb: int = 1024, lifetime_s: float = 4 * 3600) -> Iterator:
    """A ready node for the CLI: ``host`` or ``vm`` (one micro-VM boot).

    The VM is shut down (qemu and virtiofsd killed) when the block exits.
    """
    say = progress or (lambda _m: None)
    if kind == "host":
        if host_has_sched_ext():
            from schedcp.substrate.nodes import HostSchedNode

            yield SchedNodeAdapter(HostSchedNode(), name=f"host:{os.uname().nodename}", progress=say)
        else:
            yield LocalHost()
        return
    if kind != "vm":
        raise BenchError(f"unknown node kind {kind!r}", hint="use vm or host")
    from schedcp.substrate.nodes import boot_vm_node

    say(f"booting a {vcpus}-vCPU micro-VM with the sched_ext kernel")
    with boot_vm_node(cpus=vcpus, mem_mb=mem_mb, lifetime=lifetime_s) as node:
        say(f"micro-VM up: {node.describe()}")
        yield SchedNodeAdapter(node, name=f"vm:{vcpus}vcpu", progress=say)
