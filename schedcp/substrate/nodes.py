"""One interface for "a machine that can run a sched_ext scheduler".

:class:`SchedNode` is what the CLI, the verifier and the executor program
against; two implementations:

- :class:`VmSchedNode`: a persistent micro-VM (the VM layer's guest agent).
  The loader runs INSIDE the guest, as ``python -m schedcp.substrate.loader``
  from the host's own tree over read-only virtiofs, and answers in JSON.
- :class:`HostSchedNode`: this machine, when its kernel has sched_ext and we
  are root. The loader runs in-process.

Both build against the BTF of the kernel that will load the object
(:meth:`SchedNode.btf_path`), return the same :class:`LoadResult` /
:class:`SchedState` and raise the same :class:`LoaderError` subclasses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from schedcp.substrate import loader as _loader
from schedcp.substrate.build import REPO_ROOT
from schedcp.substrate.loader import (
    AttachFailed,
    Ejected,
    ExitInfo,
    LoaderError,
    LoadResult,
    NoSchedExt,
    SchedState,
    SchedulerBusy,
    VerifierRejected,
)
from schedcp.substrate.sched_metadata import TunableError

if TYPE_CHECKING:
    from schedcp.substrate.kernel import Kernel


@dataclass
class CommandResult:
    """A command run on a node."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"argv": self.argv, "returncode": self.returncode, "stdout": self.stdout,
                "stderr": self.stderr, "seconds": round(self.seconds, 3),
                "timed_out": self.timed_out}


class SchedNode(Protocol):
    """A kernel we can load sched_ext schedulers into."""

    kind: str  # "vm" | "host"

    def describe(self) -> str: ...

    def btf_path(self) -> Path:
        """The BTF (vmlinux ELF or raw BTF) objects for this node are built against."""
        ...

    def load(self, obj: Path, *, tunables: Mapping[str, object] | None = None,
             metadata_path: Path | None = None,
             ops_overrides: Mapping[str, int] | None = None) -> LoadResult: ...

    def state(self, name: str | None = None) -> SchedState: ...

    def watch(self, name: str, *, duration_s: float) -> SchedState:
        """Return early if the kernel ejects ``name``; else after ``duration_s``."""
        ...

    def unload(self, name: str) -> SchedState: ...

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- host

class HostSchedNode:
    """This machine. Refuses clearly if the kernel lacks sched_ext or we are not root."""

    kind = "host"

    def __init__(self) -> None:
        _loader.check_privileges()  # raises NoSchedExt with what to do

    def describe(self) -> str:
        return f"host {os.uname().release}"

    def btf_path(self) -> Path:
        p = Path("/sys/kernel/btf/vmlinux")
        if not p.exists():
            raise NoSchedExt("this kernel exposes no BTF (/sys/kernel/btf/vmlinux)",
                             hint="it needs CONFIG_DEBUG_INFO_BTF=y")
        return p

    def load(self, obj: Path, *, tunables: Mapping[str, object] | None = None,
             metadata_path: Path | None = None,
             ops_overrides: Mapping[str, int] | None = None) -> LoadResult:
        from schedcp.substrate.sched_metadata import load_metadata

        meta = load_metadata(metadata_path) if metadata_path else None
        return _loader.load(obj, tunables=tunables, metadata=meta, ops_overrides=ops_overrides)

    def state(self, name: str | None = None) -> SchedState:
        return _loader.state(name)

    def watch(self, name: str, *, duration_s: float) -> SchedState:
        return _loader.watch(name, duration_s=duration_s)

    def unload(self, name: str) -> SchedState:
        return _loader.unload(name)

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult:
        return run_local(list(argv), timeout_s=timeout_s)

    def close(self) -> None:
        pass


def run_local(argv: list[str], *, timeout_s: float) -> CommandResult:
    """Run ``argv`` in its own process group and kill the whole group on timeout,
    on error and when we are interrupted, so nothing it forked outlives us."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        return CommandResult(argv, proc.returncode, out, err, time.monotonic() - t0)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return CommandResult(argv, -9, out, err, time.monotonic() - t0, timed_out=True)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- micro-VM

class GuestRunner(Protocol):
    """The one capability VmSchedNode needs from a running micro-VM: run argv
    in the guest (host userspace chroot) and return an object with
    ``exit_code``/``stdout``/``stderr``/``timed_out`` (schedcp.substrate.vm's
    ``BlockingVmNode`` is one)."""

    def run(self, argv: Sequence[str], *, timeout: float,
            env: Mapping[str, str] | None = None, cwd: str | None = None) -> object: ...


#: Host directories the guest does not see (it mounts its own tmpfs there).
_GUEST_PRIVATE = ("/tmp", "/run", "/dev/shm", "/var/tmp")


_ERRORS: dict[str, type[LoaderError]] = {
    VerifierRejected.code: VerifierRejected,
    AttachFailed.code: AttachFailed,
    Ejected.code: Ejected,
    SchedulerBusy.code: SchedulerBusy,
    NoSchedExt.code: NoSchedExt,
}


def _raise_from_json(err: Mapping[str, object]) -> None:
    code = str(err.get("code", "loader"))
    message = str(err.get("message", "loader failed in the guest"))
    hint = err.get("hint")
    details = {k: v for k, v in err.items() if k not in ("code", "message", "hint")}
    if code in ("invalid_tunable", "invalid_metadata"):
        raise TunableError(message, hint=str(hint) if hint else None)
    cls = _ERRORS.get(code, LoaderError)
    exc = cls(message, hint=str(hint) if hint else None, **details)
    exc.code = code
    raise exc


def _state_from_dict(d: Mapping[str, object]) -> SchedState:
    ei = d.get("exit")
    return SchedState(sched_ext_state=str(d["sched_ext_state"]), root_ops=str(d["root_ops"]),
                      name=d.get("name"), pinned=bool(d.get("pinned")),  # type: ignore[arg-type]
                      enabled=bool(d.get("enabled")), ejected=bool(d.get("ejected")),
                      exit=ExitInfo(**ei) if isinstance(ei, dict) else None)


#: Where the guest-side loader server keeps its FIFOs (tmpfs in the guest).
SERVE_DIR = "/run/schedcp/loader"


class VmSchedNode:
    """A micro-VM node: loader calls go to the guest as JSON commands.

    ``guest`` is a running persistent VM from the VM layer (anything with
    ``run(argv, timeout=..., env=...)`` returning an object with
    ``returncode``/``stdout``/``stderr``); ``vmlinux`` is the kernel it booted,
    whose BTF objects are built against. The node does not own the VM's
    lifetime unless ``owns_guest`` (then :meth:`close` shuts it down).
    """

    kind = "vm"

    def __init__(self, *, guest: GuestRunner, vmlinux: Path, release: str = "",
                 python: str | None = None, repo: Path = REPO_ROOT,
                 call_timeout_s: float = 120.0, owns_guest: bool = False,
                 persistent_loader: bool = True) -> None:
        self.guest = guest
        self.vmlinux = Path(vmlinux)
        self.release = release
        # The guest sees the host root read-only, so the host's interpreter
        # (with this checkout's venv) runs there unchanged.
        self.python = python or sys.executable
        self.repo = Path(repo)
        self.call_timeout_s = call_timeout_s
        self.owns_guest = owns_guest
        self.persistent_loader = persistent_loader
        self._served: bool | None = None
        self._lock = threading.Lock()  # the guest loader serves one request at a time

    def describe(self) -> str:
        return f"micro-VM {self.release or self.vmlinux.name}"

    def btf_path(self) -> Path:
        return self.vmlinux

    def _start_server(self) -> bool:
        """Start ``loader serve`` in the guest once (detached from the agent's
        process group with setsid); later calls cost a shell, not a Python start."""
        script = ('d="$0"; mkdir -p "$d"; setsid "$@" serve "$d" >"$d.log" 2>&1 </dev/null & '
                  'i=0; while [ ! -p "$d/req" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; '
                  '[ -p "$d/req" ]')
        res = self.guest.run(["/bin/sh", "-c", script, SERVE_DIR, self.python, "-m",
                              "schedcp.substrate.loader"], timeout=self.call_timeout_s,
                             cwd=str(self.repo), env={"PYTHONDONTWRITEBYTECODE": "1"})
        return getattr(res, "exit_code", 1) == 0

    def _loader(self, *args: str, timeout: float | None = None) -> dict[str, object]:
        timeout = timeout or self.call_timeout_s
        if self.persistent_loader and self._served is None:
            self._served = self._start_server()
        if self._served:
            rid = uuid.uuid4().hex
            request = json.dumps({"id": rid, "argv": list(args)})
            # Builtins only (printf, read, case): each exec costs ~1 s under TCG.
            script = ('d="$0"; printf "%s\\n" "$2" > "$d/req" || exit 97; '
                      'while read -r line < "$d/resp"; do case "$line" in '
                      '*"\\"id\\": \\"$1\\""*) printf "%s\\n" "$line"; exit 0;; esac; done; exit 98')
            with self._lock:
                res = self.guest.run(["/bin/sh", "-c", script, SERVE_DIR, rid, request],
                                     timeout=timeout)
            if getattr(res, "timed_out", False):
                self._served = False  # the server is wedged or gone: go one-shot
                raise LoaderError(f"the guest loader server did not answer {args[0]} "
                                  f"within {timeout:.0f}s")
        else:
            argv = [self.python, "-m", "schedcp.substrate.loader", *args]
            res = self.guest.run(argv, timeout=timeout, cwd=str(self.repo),
                                 env={"PYTHONDONTWRITEBYTECODE": "1"})
        stdout = str(getattr(res, "stdout", ""))
        line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            raise LoaderError("the loader in the guest gave no JSON answer "
                              f"(exit {getattr(res, 'exit_code', '?')})",
                              hint="see stderr", stdout=stdout[-2000:],
                              stderr=str(getattr(res, "stderr", ""))[-4000:]) from None
        if not isinstance(doc, dict):
            raise LoaderError("the loader in the guest answered with non-object JSON")
        return doc

    def load(self, obj: Path, *, tunables: Mapping[str, object] | None = None,
             metadata_path: Path | None = None,
             ops_overrides: Mapping[str, int] | None = None) -> LoadResult:
        args = ["load", self._guest_visible(Path(obj).resolve())]
        for k, v in (tunables or {}).items():
            args += ["--set", f"{k}={_set_value(v)}"]
        if metadata_path:
            args += ["--meta", str(Path(metadata_path).resolve())]
        for k, v in (ops_overrides or {}).items():
            if k != "timeout_ms":
                raise LoaderError(f"ops override {k} is not supported on a VM node yet")
            args += ["--timeout-ms", str(int(v))]
        doc = self._loader(*args)
        if not doc.get("ok"):
            _raise_from_json(doc.get("error") or {})  # type: ignore[arg-type]
        return LoadResult(**doc["result"])  # type: ignore[arg-type]

    def _guest_visible(self, path: Path) -> str:
        """A guest path holding ``path``'s bytes: the same path when the
        read-only host view shows it, else a copy in the guest's tmpfs."""
        text = str(path)
        if not any(text == d or text.startswith(d + "/") for d in _GUEST_PRIVATE):
            return text
        writer = getattr(self.guest, "write_file", None)
        if not callable(writer):
            raise LoaderError(f"{path} is in a directory the guest cannot see",
                              hint="keep objects outside /tmp, /run, /dev/shm and /var/tmp")
        data = path.read_bytes()
        target = f"/run/schedcp-objects/{hashlib.sha256(data).hexdigest()[:16]}-{path.name}"
        self.guest.run(["mkdir", "-p", "/run/schedcp-objects"], timeout=30)
        writer(target, data)
        return target

    def state(self, name: str | None = None) -> SchedState:
        doc = self._loader("state", *([name] if name else []))
        if not doc.get("ok"):
            _raise_from_json(doc.get("error") or {})  # type: ignore[arg-type]
        return _state_from_dict(doc["result"])  # type: ignore[arg-type]

    def watch(self, name: str, *, duration_s: float) -> SchedState:
        doc = self._loader("watch", name, "--seconds", str(duration_s),
                           timeout=duration_s + self.call_timeout_s)
        if "result" not in doc:
            _raise_from_json(doc.get("error") or {})  # type: ignore[arg-type]
        return _state_from_dict(doc["result"])  # type: ignore[arg-type]

    def unload(self, name: str) -> SchedState:
        doc = self._loader("unload", name)
        if not doc.get("ok"):
            _raise_from_json(doc.get("error") or {})  # type: ignore[arg-type]
        return _state_from_dict(doc["result"])  # type: ignore[arg-type]

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult:
        t0 = time.monotonic()
        res = self.guest.run(list(argv), timeout=timeout_s)
        rc = getattr(res, "exit_code", None)
        return CommandResult(list(argv), int(rc) if rc is not None else -1,
                             str(getattr(res, "stdout", "")), str(getattr(res, "stderr", "")),
                             time.monotonic() - t0,
                             timed_out=bool(getattr(res, "timed_out", False)))

    def close(self) -> None:
        if self.owns_guest:
            closer = getattr(self.guest, "shutdown", None)
            if callable(closer):
                closer()


@contextlib.contextmanager
def boot_vm_node(*, cpus: int = 2, mem_mb: int = 1024, kernel: Kernel | None = None,
                 **vm_kw: object) -> Iterator[VmSchedNode]:
    """Boot a persistent micro-VM with the sched_ext kernel and yield it as a
    SchedNode; the VM is shut down (qemu and virtiofsd killed) on exit."""
    from schedcp.substrate.kernel import ensure_kernel
    from schedcp.substrate.vm import BlockingVmNode

    k = kernel or ensure_kernel()
    vm = BlockingVmNode(kernel=k, cpus=cpus, mem_mb=mem_mb, **vm_kw)
    try:
        vm.start()
        yield VmSchedNode(guest=vm, vmlinux=k.vmlinux, release=k.release)
    finally:
        vm.shutdown()


class RebootableVmNode:
    """A micro-VM node that outlives its VM: :meth:`reboot` boots a new one.

    A long-lived owner (the executor) keeps one node for days; its VM can die
    under it (its hard lifetime runs out, qemu crashes, the host OOM-kills
    it). Every SchedNode call goes to the current VM; a call on a dead VM
    fails as before, and the owner decides when to :meth:`reboot` (it must
    also reconcile what it believed was loaded: a fresh VM runs EEVDF).
    """

    kind = "vm"

    def __init__(self, *, cpus: int = 2, mem_mb: int = 1024, kernel: Kernel | None = None,
                 **vm_kw: object) -> None:
        self._boot_kw: dict[str, object] = dict(cpus=cpus, mem_mb=mem_mb, **vm_kw)
        self._kernel = kernel
        self._vm: object | None = None
        self._node: VmSchedNode | None = None
        self.boots = 0
        self._lock = threading.Lock()

    def start(self) -> RebootableVmNode:
        from schedcp.substrate.kernel import ensure_kernel
        from schedcp.substrate.vm import BlockingVmNode

        with self._lock:
            self._kernel = self._kernel or ensure_kernel()
            vm = BlockingVmNode(kernel=self._kernel, **self._boot_kw)
            vm.start()  # tears itself down if the boot fails
            self._vm = vm
            self._node = VmSchedNode(guest=vm, vmlinux=self._kernel.vmlinux, release=self._kernel.release)
            self.boots += 1
        return self

    @property
    def alive(self) -> bool:
        """Whether the current VM's qemu still runs and its agent answers requests."""
        vm = self._vm
        return vm is not None and bool(getattr(getattr(vm, "node", None), "alive", False))

    @property
    def death_reason(self) -> str | None:
        vm = self._vm
        return getattr(getattr(vm, "node", None), "death_reason", None) if vm is not None else None

    def responsive(self, timeout_s: float = 10.0) -> bool:
        """Whether the guest agent answers a ping (no process is started in
        the guest, so this is cheap enough to ask every few seconds; the agent
        serves requests concurrently, so a long job does not delay it). The
        VM layer kills a VM whose agent does not answer, so a hung guest
        ends up dead here and is booted again by the owner."""
        vm = self._vm
        if vm is None or not self.alive:
            return False
        try:
            vm._call(vm.node.ping(timeout=timeout_s))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - any failure to answer counts as not answering
            return False
        return True

    def reboot(self) -> None:
        """Tear the current VM down (whatever state it is in) and boot a new one."""
        self._shutdown_vm()
        self.start()

    def _current(self) -> VmSchedNode:
        node = self._node
        if node is None:
            raise LoaderError("the micro-VM node is not running", hint="start() it first")
        return node

    def describe(self) -> str:
        return self._current().describe()

    def btf_path(self) -> Path:
        return self._current().btf_path()

    def load(self, obj: Path, *, tunables: Mapping[str, object] | None = None,
             metadata_path: Path | None = None,
             ops_overrides: Mapping[str, int] | None = None) -> LoadResult:
        return self._current().load(obj, tunables=tunables, metadata_path=metadata_path,
                                    ops_overrides=ops_overrides)

    def state(self, name: str | None = None) -> SchedState:
        return self._current().state(name)

    def watch(self, name: str, *, duration_s: float) -> SchedState:
        return self._current().watch(name, duration_s=duration_s)

    def unload(self, name: str) -> SchedState:
        return self._current().unload(name)

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult:
        return self._current().run(argv, timeout_s=timeout_s)

    def _shutdown_vm(self) -> None:
        with self._lock:
            vm, self._vm, self._node = self._vm, None, None
        if vm is not None:
            with contextlib.suppress(Exception):  # a dead VM may fail its own shutdown
                vm.shutdown()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._shutdown_vm()


def _set_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
