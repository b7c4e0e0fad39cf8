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


class SchedNodeAdapter:
    """A substrate ``SchedNode`` (micro-VM or sched_ext host) as a ``BenchNode``.

    Builds schedulers against the node's own BTF, loads them with their
    metadata (so tunables are range-checked), and treats a scheduler that is
    no longer enabled after a run as ejected.
    """

    def __init__(self, node, *, name: str, progress: Callable[[str], None] | None = None,
                 builder=None) -> None:
        self.node = node
        self.name = name
        self.kernel_release = getattr(node, "release", "") or ""
        self._progress = progress or (lambda _m: None)
        self._builder = builder
        self._loaded: str | None = None
        self._metadata: dict[Path, Path | None] = {}
        #: sched_ext (state, ops) read right after the last run, in the same
        #: guest command: saves a loader round trip (seconds under TCG).
        self._after_run: tuple[str, str] | None = None

    def supports_sched_ext(self) -> bool:
        return True

    def scheduler(self, name: str, sets: dict[str, str]) -> SchedulerUnderTest:
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
        meta_path = source.with_name(source.name.removesuffix(".bpf.c") + ".json")
        self._metadata[built.object_path] = meta_path if meta_path.is_file() else None
        return SchedulerUnderTest(meta.name if meta else source.name.removesuffix(".bpf.c"),
                                  obj=built.object_path, tunables=tunables)

    def load_scheduler(self, scheduler: SchedulerUnderTest) -> None:
        assert scheduler.obj is not None
        self._after_run = None
        result = self.node.load(scheduler.obj, tunables=dict(scheduler.tunables),
                                metadata_path=self._metadata.get(scheduler.obj))
        self._loaded = result.name

    def unload_scheduler(self) -> None:
        self._after_run = None
        if self._loaded is not None:
            name, self._loaded = self._loaded, None
            self.node.unload(name)

    def active_scheduler(self) -> str | None:
        if self._after_run is not None:
            state, ops = self._after_run
            if state != "enabled" or not ops:
                return None
            return ops if self._loaded is None or ops == self._loaded else None
        if self._loaded is None:
            state = self.node.state()
            return state.root_ops or None if state.sched_ext_state == "enabled" else None
        state = self.node.state(self._loaded)
        return self._loaded if state.enabled and not state.ejected else None

    def run_command(self, argv: Sequence[str], *, timeout: float) -> str:
        # Read the sched_ext state as soon as the workload ends, in the same
        # command, so an ejection during the run is seen without another call.
        wrapped = ["/bin/sh", "-c", 'rc=0; "$@" || rc=$?; '
                   'echo "schedcp-sched-ext: $(cat /sys/kernel/sched_ext/state 2>/dev/null) '
                   '$(cat /sys/kernel/sched_ext/root/ops 2>/dev/null)" >&2; exit $rc', "sh", *argv]
        self._after_run = None
        res = self.node.run(wrapped, timeout_s=timeout)
        for line in reversed(res.stderr.splitlines()):
            if line.startswith("schedcp-sched-ext:"):
                fields = line.split()[1:]
                if fields:
                    self._after_run = (fields[0], fields[1] if len(fields) > 1 else "")
                break
        if res.timed_out:
            raise BenchError(f"workload run exceeded {timeout:.0f} s on {self.name}",
                             hint="a scheduler may be starving it; try smaller --param sizes")
        if res.returncode != 0:
            raise BenchError(f"workload run failed on {self.name} (exit {res.returncode})",
                             hint=(res.stderr or res.stdout).strip()[-600:])
        return res.stdout


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
            yield _LocalHostNode()
        return
    if kind != "vm":
        raise BenchError(f"unknown node kind {kind!r}", hint="use vm or host")
    from schedcp.substrate.nodes import boot_vm_node

    say(f"booting a {vcpus}-vCPU micro-VM with the sched_ext kernel")
    with boot_vm_node(cpus=vcpus, mem_mb=mem_mb, lifetime=lifetime_s) as node:
        say(f"micro-VM up: {node.describe()}")
        yield SchedNodeAdapter(node, name=f"vm:{vcpus}vcpu", progress=say)
