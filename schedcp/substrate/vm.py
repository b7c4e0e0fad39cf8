"""qemu micro-VMs that boot the sched_ext kernel and run host commands inside.

Shape of a VM: q35 + qboot + ``-kernel vmlinux`` (PVH entry, no decompressor),
an initramfs from :mod:`schedcp.substrate.initramfs`, the host's root shared
read-only over virtiofs (so host python, bpftool, compilers and benchmarks run
in the guest's chroot), and three channels kept apart:

- serial console -> ``console.log`` (kernel and init messages, for humans);
- virtio-serial ``schedcp.control`` <-> a unix socket: JSON-line requests to
  the guest agent and its replies;
- virtio-serial ``schedcp.results`` -> a unix socket: JSON records written by
  guest commands to ``$SCHEDCP_RESULTS``.

Teardown is guaranteed three ways: qemu and virtiofsd run in their own process
groups with ``PR_SET_PDEATHSIG=SIGKILL`` (so they die with the caller even on
SIGKILL), every VM has a hard lifetime, and ``shutdown``/``atexit`` kill the
process groups.

Two modes: :class:`VmNode` (boot once, run many commands) and :func:`run_job`
(boot, run one command, tear down). Both are async; :class:`BlockingVmNode` and
:func:`run_job_sync` wrap them for synchronous callers.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedcp.substrate import VmCrashed, VmError, VmTimeout
from schedcp.substrate import accel as accel_mod
from schedcp.substrate import qemu as qemu_mod
from schedcp.substrate.accel import Accel
from schedcp.substrate.initramfs import InitramfsBuilder, JobArchive, resolve_modules
from schedcp.substrate.kernel import Kernel, cache_dir, ensure_kernel

QEMU = "qemu-system-x86_64"
QBOOT = "/usr/share/qemu/qboot.rom"
VIRTIOFSD_CANDIDATES = ("/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd")
CONTROL_PORT = "schedcp.control"
RESULTS_PORT = "schedcp.results"
#: Path of the results FIFO inside the guest (also exported as $SCHEDCP_RESULTS).
GUEST_RESULTS_PATH = "/run/schedcp/results.fifo"
#: Extra time the host grants a command beyond its own timeout before it
#: declares the guest wedged and kills the VM. (The ``timeout`` parameters of
#: the async methods are budgets forwarded to the guest, hence the ASYNC109
#: exemptions: a caller-side asyncio.timeout could not kill the guest command.)
HOST_GRACE_S = 15.0

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In the forked child: die with the parent, whatever kills the parent."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died between fork and prctl: then nobody would
    # deliver the signal, so go now.
    if os.getppid() == 1:
        os._exit(1)


# Process groups of every live VM, killed at interpreter exit.
_LIVE_PGIDS: set[int] = set()
_LIVE_LOCK = threading.Lock()


def _kill_pgid(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@atexit.register
def _kill_all_live() -> None:
    with _LIVE_LOCK:
        for pgid in list(_LIVE_PGIDS):
            _kill_pgid(pgid)
        _LIVE_PGIDS.clear()


def _sweep_stale_workdirs() -> None:
    """Remove work dirs left by callers that were SIGKILLed (their VMs died with them)."""
    for d in Path(tempfile.gettempdir()).glob("schedcp-vm-*-*"):
        pid = d.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


_INVALID = object()  # marks a non-JSON line on the results channel

_CRASH_MARKERS = ("Kernel panic", "Oops:", "BUG:", "general protection fault",
                  "invalid opcode:")


def _guest_crashed(console: str) -> bool:
    return any(m in console for m in _CRASH_MARKERS)


def _keep_failed_console(name: str, text: str, keep: int = 20) -> Path | None:
    """Save a failed VM's console under <cache>/vm-logs (the work dir is removed)."""
    if not text:
        return None
    d = cache_dir() / "vm-logs"
    with contextlib.suppress(OSError):
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{time.strftime('%Y%m%dT%H%M%S')}-{name}-console.log"
        path.write_text(text)
        old = sorted(d.glob("*-console.log"))
        for p in old[:-keep]:
            p.unlink()
        return path
    return None


#: virtiofs cache modes.
#: - ``fresh`` (default for persistent nodes): the guest keeps file pages
#:   across opens and revalidates attributes every second, so a host file
#:   rebuilt or replaced between commands shows up within ~1 s (its new mtime
#:   drops the stale pages). Measured in a 2-vCPU TCG guest: spawning a small
#:   dynamically linked program costs ~20-30 ms, against ~240 ms with ``auto``.
#: - ``auto``: the same 1 s revalidation, but every open of a file drops its
#:   pages, so each exec re-reads the binary and libc from the host; that
#:   made process creation, not the scheduler, dominate spawn-heavy workloads.
#: - ``always``: attributes cached for a day; fastest, but a host file
#:   rewritten after the guest read it may stay stale, so only for one-shot
#:   jobs, whose VM lives for one command.
#: - ``none``: no caching at all.
VIRTIOFS_CACHE_MODES = ("fresh", "auto", "always", "none")


def _virtiofsd_cache_args(mode: str) -> list[str]:
    if mode == "fresh":
        # virtiofsd's "always" is what sets keep_cache on open; the timeout
        # brings attribute revalidation back to auto's 1 s.
        return ["-o", "cache=always", "-o", "timeout=1"]
    return ["-o", f"cache={mode}"]


def find_qemu() -> list[str]:
    """The qemu command prefix (binary, and ``-L`` for a fetched one): see
    :func:`schedcp.substrate.qemu.find_qemu`."""
    return qemu_mod.find_qemu().args


def find_virtiofsd() -> str:
    """SCHEDCP_VIRTIOFSD, else the C virtiofsd shipped with qemu 7.2."""
    override = os.environ.get("SCHEDCP_VIRTIOFSD", "").strip()
    if override:
        return override
    for p in VIRTIOFSD_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    found = shutil.which("virtiofsd")
    if found:
        return found
    raise VmError("virtiofsd not found", hint="install qemu-system-common (scripts/install-system.sh)")


def guest_python() -> str:
    """The host interpreter the guest agent runs with (no venv: stdlib only)."""
    return os.path.realpath(sys.base_prefix + "/bin/python3") if os.path.exists(
        sys.base_prefix + "/bin/python3") else os.path.realpath(sys.executable)


# ---------------------------------------------------------------------------
# Results


@dataclass
class CommandResult:
    """What one command in the guest did."""

    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    duration_s: float = 0.0
    #: JSON records the command wrote to $SCHEDCP_RESULTS, in arrival order.
    records: list[Any] = field(default_factory=list)
    #: Lines on the results channel that were not JSON.
    invalid_records: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class JobResult(CommandResult):
    """A one-shot job: the command's result plus the VM's console and timings."""

    console: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    kernel: str = ""
    accel: str = ""


@dataclass(frozen=True)
class Job:
    """A command to run in a fresh micro-VM."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    #: Seconds for the command; the VM's hard lifetime is boot + this + grace.
    timeout: float = 60.0
    stdin: str | None = None
    cpus: int = 2
    mem_mb: int = 1024
    #: Kernel modules to insmod at boot (e.g. "overlay").
    modules: Sequence[str] = ()
    #: Extra files put into the guest's /run/schedcp/files/<name>.
    files: Mapping[str, bytes] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# The persistent node


class VmNode:
    """One micro-VM with a guest agent: boot once, run many commands.

    ``async with VmNode(cpus=2) as node: res = await node.run(["uname", "-r"])``.
    Dependencies (kernel, accelerator, initramfs builder) can be injected;
    by default they are fetched/decided/built and cached.
    """

    def __init__(self, *, kernel: Kernel | None = None, cpus: int = 2, mem_mb: int = 1024,
                 lifetime: float = 3600.0, boot_timeout: float | None = None,
                 modules: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 files: Mapping[str, bytes] | None = None, accel: Accel | None = None,
                 initramfs: InitramfsBuilder | None = None, kernel_args: Sequence[str] = (),
                 keep_workdir: bool = False, name: str | None = None,
                 boot_retries: int = 2, virtiofs_cache: str = "fresh") -> None:
        if virtiofs_cache not in VIRTIOFS_CACHE_MODES:
            raise VmError(f"virtiofs_cache={virtiofs_cache!r} is not one of {VIRTIOFS_CACHE_MODES}")
        if cpus < 1 or mem_mb < 128:
            raise VmError(f"bad VM size: cpus={cpus} mem_mb={mem_mb}",
                          hint="use at least 1 vCPU and 128 MB")
        self.kernel = kernel
        self.cpus = cpus
        self.mem_mb = mem_mb
        self.lifetime = lifetime
        self.boot_timeout = boot_timeout
        self.modules = tuple(modules)
        self.env = dict(env or {})
        self.files = dict(files or {})
        self.accel = accel
        self.initramfs = initramfs
        self.kernel_args = tuple(kernel_args)
        self.keep_workdir = keep_workdir
        self.name = name or f"vm-{os.getpid()}-{id(self) & 0xFFFF:x}"
        self.boot_retries = boot_retries
        self.virtiofs_cache = virtiofs_cache
        self.boot_attempts = 0
        self.timings: dict[str, float] = {}
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """Per-boot state (a boot retry starts from scratch)."""
        self.workdir: Path | None = None
        self.guest_info: dict[str, Any] = {}
        self._qemu: asyncio.subprocess.Process | None = None
        self._fsd: asyncio.subprocess.Process | None = None
        self._pgids: list[int] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._ctl_w: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._lifetime_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._ends: dict[int, asyncio.Event] = {}
        # (None, record) | (request id, None) for an end marker | (_INVALID, line)
        self._records: list[tuple[object, Any]] = []
        self._next_id = 1
        self._runs_in_flight = 0
        self._dead: BaseException | None = None
        self._killed_reason: str | None = None
        self._closed = False
        self.console_text = ""
        self.failed_console: Path | None = None

    # -- paths --------------------------------------------------------------

    @property
    def console_path(self) -> Path | None:
        return None if self.workdir is None else self.workdir / "console.log"

    def console_tail(self, lines: int = 30) -> str:
        if self.console_text:
            return "\n".join(self.console_text.splitlines()[-lines:])
        p = self.console_path
        if p is None or not p.exists():
            return ""
        return "\n".join(p.read_text(errors="replace").splitlines()[-lines:])

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> VmNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def start(self) -> None:
        """Boot and wait for the guest agent; raises VmError/VmTimeout (VM torn down).

        A guest kernel that crashes *during boot* is retried with a fresh VM
        (``boot_retries`` times): under multi-threaded TCG a boot occasionally
        oopses while the kernel patches its own code, which says nothing
        about the job. Crashes after the agent is ready are never retried.
        """
        while True:
            self.boot_attempts += 1
            try:
                await self._start()
                self.timings["boot_attempts"] = self.boot_attempts
                return
            except BaseException as exc:
                await self._kill("boot failed")
                crashed = isinstance(exc, VmError) and _guest_crashed(self.console_text)
                if not crashed or self.boot_attempts > self.boot_retries:
                    if isinstance(exc, VmError) and self.failed_console is not None:
                        exc.hint = f"{exc.hint or ''}\nfull console: {self.failed_console}"
                    raise
                self._reset_runtime()

    async def _start(self) -> None:
        t0 = time.monotonic()
        if self.kernel is None:
            self.kernel = await asyncio.to_thread(ensure_kernel)
        kernel = self.kernel
        cache = cache_dir()
        if self.accel is None:
            self.accel = await asyncio.to_thread(default_accel, kernel)
        builder = self.initramfs or InitramfsBuilder(cache=cache)
        _sweep_stale_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"schedcp-vm-{os.getpid()}-"))
        wd = self.workdir
        # The guest copies /schedcp into /run/schedcp, so ship extras under /schedcp/files.
        files = {f"schedcp/files/{k.lstrip('/')}": v for k, v in self.files.items()}
        job = JobArchive(python=guest_python(), env=self.env,
                         modules=resolve_modules(kernel, self.modules), files=files,
                         extra={"name": self.name})
        initrd = await asyncio.to_thread(builder.assemble, job, wd / "initrd.cpio")
        self.timings["prepare_s"] = time.monotonic() - t0

        ctl_sock, res_sock, fs_sock = wd / "ctl.sock", wd / "res.sock", wd / "fs.sock"
        ctl_conn: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
            asyncio.get_running_loop().create_future()
        res_conn: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
            asyncio.get_running_loop().create_future()

        def on_conn(fut: asyncio.Future[Any]) -> Any:
            async def cb(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                if not fut.done():
                    fut.set_result((r, w))
                else:
                    w.close()
            return cb

        # We listen; qemu connects as a client at start-up, before the guest runs.
        self._servers.append(await asyncio.start_unix_server(on_conn(ctl_conn), path=str(ctl_sock),
                                                             limit=64 * 1024 * 1024))
        self._servers.append(await asyncio.start_unix_server(on_conn(res_conn), path=str(res_sock),
                                                             limit=16 * 1024 * 1024))

        fsd_log = os.open(wd / "virtiofsd.log", os.O_WRONLY | os.O_CREAT, 0o644)
        self._fsd = await asyncio.create_subprocess_exec(
            find_virtiofsd(), f"--socket-path={fs_sock}", "-o", "source=/",
            *_virtiofsd_cache_args(self.virtiofs_cache),
            "-o", "sandbox=chroot", "-o", "log_level=warn",
            stdin=asyncio.subprocess.DEVNULL, stdout=fsd_log, stderr=fsd_log,
            start_new_session=True, preexec_fn=_child_setup)
        os.close(fsd_log)
        self._track(self._fsd.pid)
        deadline = time.monotonic() + 10
        while not fs_sock.exists():
            if self._fsd.returncode is not None or time.monotonic() > deadline:
                raise VmError("virtiofsd did not create its socket",
                              hint=(wd / "virtiofsd.log").read_text(errors="replace")[-500:])
            await asyncio.sleep(0.01)

        clock = ["tsc=reliable"]
        if self.accel.name == "tcg":
            khz = await asyncio.to_thread(accel_mod.host_tsc_khz, cache_dir() / "host_tsc.json")
            if khz:
                # The guest's TSC is the host's; do not let it guess the rate.
                clock.append(f"tsc_early_khz={khz}")
        cmdline = " ".join(["console=ttyS0", *clock, "panic=-1", "reboot=t", "quiet",
                            "loglevel=4", "rdinit=/init", "8250.nr_uarts=1", "i8042.noaux",
                            "i8042.nokbd", *self.kernel_args])
        mem = f"{self.mem_mb}M"
        args = [
            *find_qemu(), "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-machine", "q35,memory-backend=mem", *self.accel.qemu_args,
            "-smp", str(self.cpus), "-m", mem,
            "-object", f"memory-backend-memfd,id=mem,size={mem},share=on",
            "-bios", QBOOT, "-kernel", str(kernel.vmlinux), "-initrd", str(initrd),
            "-append", cmdline,
            "-serial", f"file:{wd / 'console.log'}",
            "-device", "virtio-serial-pci,id=vser",
            "-chardev", f"socket,id=ctl,path={ctl_sock}",
            "-device", f"virtserialport,bus=vser.0,chardev=ctl,name={CONTROL_PORT}",
            "-chardev", f"socket,id=res,path={res_sock}",
            "-device", f"virtserialport,bus=vser.0,chardev=res,name={RESULTS_PORT}",
            "-chardev", f"socket,id=fs,path={fs_sock}",
            "-device", "vhost-user-fs-pci,chardev=fs,tag=hostroot,queue-size=1024",
        ]
        (wd / "qemu.cmd").write_text(" ".join(args) + "\n")
        qlog = os.open(wd / "qemu.log", os.O_WRONLY | os.O_CREAT, 0o644)
        t_spawn = time.monotonic()
        self._qemu = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=qlog, stderr=qlog,
            start_new_session=True, preexec_fn=_child_setup)
        os.close(qlog)
        self._track(self._qemu.pid)
        self._tasks.append(asyncio.create_task(self._watch_qemu()))
        self._lifetime_task = asyncio.create_task(self._lifetime_guard(self.lifetime))
        self._tasks.append(self._lifetime_task)

        boot_timeout = self.boot_timeout or (120.0 if self.accel.name == "tcg" else 60.0)
        try:
            (ctl_r, ctl_w) = await self._until_dead(asyncio.wait_for(ctl_conn, 10))
            (res_r, _res_w) = await self._until_dead(asyncio.wait_for(res_conn, 10))
        except TimeoutError:
            raise VmError("qemu never connected its serial ports",
                          hint=(wd / "qemu.log").read_text(errors="replace")[-500:]) from None
        self._ctl_w = ctl_w
        self._ready = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.create_task(self._read_control(ctl_r)))
        self._tasks.append(asyncio.create_task(self._read_results(res_r)))
        try:
            info = await self._until_dead(asyncio.wait_for(asyncio.shield(self._ready), boot_timeout))
        except TimeoutError:
            raise VmTimeout(f"guest did not become ready within {boot_timeout:.0f}s",
                            hint="console tail:\n" + self.console_tail()) from None
        self.guest_info = info
        self.timings["boot_s"] = time.monotonic() - t_spawn
        self.timings["guest_uptime_at_ready_s"] = float(info.get("uptime_s", 0.0))
        if info.get("init_uptime_s") is not None:
            # kernel boot + init mounts, before the agent's python starts
            self.timings["guest_uptime_at_init_s"] = float(info["init_uptime_s"])
        self.timings["ready_s"] = time.monotonic() - t0

    def _track(self, pid: int) -> None:
        self._pgids.append(pid)  # start_new_session: pgid == pid
        with _LIVE_LOCK:
            _LIVE_PGIDS.add(pid)

    async def _until_dead(self, aw: Any) -> Any:
        """Await ``aw`` but fail fast if qemu dies meanwhile."""
        task = asyncio.ensure_future(aw)
        assert self._qemu is not None
        dead = asyncio.ensure_future(self._qemu.wait())
        done, _ = await asyncio.wait({task, dead}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            dead.cancel()
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise self._death_error()

    def _death_error(self) -> VmError:
        if self._killed_reason and "lifetime" in self._killed_reason:
            return VmTimeout(f"VM {self.name} killed: {self._killed_reason}",
                             hint="raise the lifetime/timeout if the work needs longer")
        rc = None if self._qemu is None else self._qemu.returncode
        qlog = ""
        if self.workdir and (self.workdir / "qemu.log").exists():
            qlog = (self.workdir / "qemu.log").read_text(errors="replace")[-800:]
        why = self._killed_reason or f"qemu exited with {rc}"
        hint = f"qemu: {qlog.strip() or '-'}\nconsole tail:\n{self.console_tail()}"
        console = self.console_text or (
            self.console_path.read_text(errors="replace")
            if self.console_path is not None and self.console_path.exists() else "")
        if _guest_crashed(console):
            tcg = self.accel is not None and self.accel.name == "tcg" and "Oops: int3" in console
            return VmCrashed(f"VM {self.name} died: guest kernel crashed ({why})", hint=hint,
                             likely_tcg_artifact=tcg)
        return VmError(f"VM {self.name} died: {why}", hint=hint)

    async def _watch_qemu(self) -> None:
        assert self._qemu is not None
        await self._qemu.wait()
        err = self._death_error()
        self._dead = err
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(err)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        for ev in self._ends.values():
            ev.set()

    async def _lifetime_guard(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._kill(f"hard lifetime of {self.lifetime:.0f}s reached")

    def set_lifetime(self, seconds: float) -> None:
        """Re-arm the hard limit: the VM is killed ``seconds`` from now."""
        if self._closed or self._qemu is None:
            raise VmError(f"VM {self.name} is not running")
        if self._lifetime_task is not None:
            self._lifetime_task.cancel()
        self.lifetime = seconds
        self._lifetime_task = asyncio.create_task(self._lifetime_guard(seconds))
        self._tasks.append(self._lifetime_task)

    async def _read_control(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") == "ready":
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(msg)
                continue
            fut = self._pending.pop(msg.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def _read_results(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                rec = json.loads(text)
            except ValueError:
                self._records.append((_INVALID, text))
                continue
            if isinstance(rec, dict) and set(rec) == {"schedcp_end"}:
                ev = self._ends.setdefault(rec["schedcp_end"], asyncio.Event())
                self._records.append((rec["schedcp_end"], None))
                ev.set()
                continue
            self._records.append((None, rec))

    # -- requests ------------------------------------------------------------

    async def _request(self, msg: dict[str, Any], *, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        if self._dead is not None:
            raise self._dead
        if self._ctl_w is None:
            raise VmError(f"VM {self.name} is not running", hint="call start() first")
        req_id = self._next_id
        self._next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        self._ends.setdefault(req_id, asyncio.Event())
        self._ctl_w.write((json.dumps({**msg, "id": req_id}) + "\n").encode())
        await self._ctl_w.drain()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            await self._kill(f"guest agent did not answer {msg.get('op')} within {timeout:.0f}s")
            raise VmTimeout(f"VM {self.name}: no answer to {msg.get('op')} within {timeout:.0f}s; "
                            "VM killed", hint="console tail:\n" + self.console_tail()) from None
        finally:
            self._pending.pop(req_id, None)

    async def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                  cwd: str | None = None, timeout: float = 60.0,  # noqa: ASYNC109
                  stdin: str | None = None) -> CommandResult:
        """Run ``argv`` in the guest (host userspace, chrooted) and collect its output.

        The guest kills the command's process group after ``timeout`` seconds
        (``timed_out=True``); if the agent itself does not answer within
        ``timeout + 15 s`` the VM is killed and VmTimeout raised.
        """
        if not argv:
            raise VmError("empty command", hint="pass argv, e.g. ['uname', '-r']")
        msg = {"op": "run", "argv": list(argv), "env": dict(env or {}), "cwd": cwd,
               "timeout": timeout, "stdin": stdin}
        first = len(self._records)
        reply = await self._request(msg, timeout=timeout + HOST_GRACE_S)
        req_id = reply["id"]
        ev = self._ends.setdefault(req_id, asyncio.Event())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ev.wait(), 10)
        self._ends.pop(req_id, None)
        records, invalid = [], []
        for marker, rec in self._records[first:]:
            if marker == req_id:
                break
            if marker is None:
                records.append(rec)
            elif marker is _INVALID:
                invalid.append(rec)
        if not self._runs_in_flight:
            # No other run holds an index: a long-lived node need not keep old records.
            self._records.clear()
        if not reply.get("ok"):
            return CommandResult(argv=list(argv), exit_code=reply.get("exit_code", 127), stdout="",
                                 stderr=str(reply.get("error", "")), records=records)
        return CommandResult(
            argv=list(argv), exit_code=reply.get("exit_code"), stdout=reply.get("stdout", ""),
            stderr=reply.get("stderr", ""), timed_out=bool(reply.get("timed_out")),
            duration_s=float(reply.get("duration_s", 0.0)), records=records,
            invalid_records=invalid, truncated=bool(reply.get("truncated")))

    async def read_file(self, path: str, *, max_bytes: int = 16 * 1024 * 1024,
                        timeout: float = 30.0) -> bytes:  # noqa: ASYNC109
        """Read a file in the guest (e.g. /sys/kernel/sched_ext/state)."""
        reply = await self._request({"op": "read_file", "path": path, "max_bytes": max_bytes},
                                    timeout=timeout)
        if not reply.get("ok"):
            raise VmError(f"guest read_file {path}: {reply.get('error')}")
        return base64.b64decode(reply["data_b64"])

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644,
                         timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Write a file in the guest (only tmpfs paths are writable: /tmp, /run, /sys/fs/bpf)."""
        reply = await self._request({"op": "write_file", "path": path, "mode": mode,
                                     "data_b64": base64.b64encode(data).decode()}, timeout=timeout)
        if not reply.get("ok"):
            raise VmError(f"guest write_file {path}: {reply.get('error')}")

    async def ping(self, *, timeout: float = 10.0) -> float:  # noqa: ASYNC109
        """Round-trip check; returns the guest's uptime."""
        reply = await self._request({"op": "ping"}, timeout=timeout)
        return float(reply.get("uptime_s", 0.0))

    @property
    def alive(self) -> bool:
        return self._qemu is not None and self._qemu.returncode is None and self._dead is None

    @property
    def death_reason(self) -> str | None:
        """Why the VM is gone (e.g. its agent did not answer in time), or None."""
        return str(self._dead) if self._dead is not None else None

    async def shutdown(self, *, grace: float = 5.0) -> None:
        """Ask the agent to power off; kill after ``grace`` seconds. Idempotent."""
        if self._closed:
            return
        if self.alive and self._ctl_w is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._request_nokill({"op": "shutdown"}), grace)
            if self._qemu is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._qemu.wait(), grace)
        await self._kill("shutdown")

    async def _request_nokill(self, msg: dict[str, Any]) -> None:
        assert self._ctl_w is not None
        self._ctl_w.write((json.dumps({**msg, "id": 0}) + "\n").encode())
        await self._ctl_w.drain()

    async def _kill(self, reason: str) -> None:
        """Kill both process groups, reap them, close channels, remove the workdir."""
        if self._closed:
            return
        self._closed = True
        if self._killed_reason is None and reason != "shutdown":
            self._killed_reason = reason
        for pgid in self._pgids:
            _kill_pgid(pgid)
        for proc in (self._qemu, self._fsd):
            if proc is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(proc.wait(), 10)
        # Whoever still waits on the guest learns why it is gone.
        err = self._death_error()
        self._dead = self._dead or err
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(err)
            self._ready.exception()  # mark retrieved: start() reports it its own way
        with _LIVE_LOCK:
            for pgid in self._pgids:
                _LIVE_PGIDS.discard(pgid)
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current and not t.done():
                t.cancel()
        for s in self._servers:
            s.close()
        if self._ctl_w is not None:
            self._ctl_w.close()
        if self.console_path is not None and self.console_path.exists():
            self.console_text = self.console_path.read_text(errors="replace")
        if reason != "shutdown" or _guest_crashed(self.console_text):
            saved = _keep_failed_console(self.name, self.console_text)
            if saved is not None:
                self.failed_console = saved
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Accelerator probe


def default_accel(kernel: Kernel) -> Accel:
    """The cached accelerator decision, probing KVM with a test boot if plausible."""

    def probe() -> tuple[bool, str]:
        async def boot() -> tuple[bool, str]:
            node = VmNode(kernel=kernel, cpus=1, mem_mb=256, lifetime=90, boot_timeout=60,
                          accel=Accel("kvm", "probe"))
            try:
                await node.start()
                res = await node.run(["/bin/true"], timeout=20)
                return res.ok, "ok" if res.ok else f"exit {res.exit_code}"
            except VmError as exc:
                return False, exc.message
            finally:
                await node.shutdown()

        return asyncio.run(boot())

    return accel_mod.choose(cache_file=cache_dir() / "accel.json", kernel_release=kernel.release,
                            probe=probe)


# ---------------------------------------------------------------------------
# One-shot jobs


async def run_job(job: Job, *, kernel: Kernel | None = None, accel: Accel | None = None,
                  boot_timeout: float | None = None, virtiofs_cache: str = "always",
                  tcg_crash_retries: int = 1) -> JobResult:
    """Boot a fresh VM, run ``job``, tear the VM down, return everything.

    The VM's hard lifetime is the boot timeout + the job's timeout + grace, so
    nothing outlives a job. A command that times out returns ``timed_out=True``
    (the VM is destroyed with it); a VM that dies or wedges raises VmError.
    A guest crash that looks like the MTTCG stray-INT3 artifact
    (``VmCrashed.likely_tcg_artifact``) reruns the job on a fresh VM up to
    ``tcg_crash_retries`` times (``timings["job_attempts"]`` says how many ran);
    the host side is read-only to the guest, so a rerun has no side effects
    beyond the results it reports.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            res = await _run_job_once(job, kernel=kernel, accel=accel,
                                      boot_timeout=boot_timeout, virtiofs_cache=virtiofs_cache)
        except VmCrashed as exc:
            if not exc.likely_tcg_artifact or attempt > tcg_crash_retries:
                raise
            continue
        res.timings["job_attempts"] = attempt
        return res


async def _run_job_once(job: Job, *, kernel: Kernel | None, accel: Accel | None,
                        boot_timeout: float | None, virtiofs_cache: str) -> JobResult:
    boot = boot_timeout or 120.0
    # cache=always: the VM lives for one command, so host files cannot go stale
    # under it in any way that matters, and python starts 2-3x faster.
    node = VmNode(kernel=kernel, cpus=job.cpus, mem_mb=job.mem_mb, accel=accel,
                  modules=job.modules, files=job.files, boot_timeout=boot,
                  lifetime=boot + job.timeout + HOST_GRACE_S + 10, virtiofs_cache=virtiofs_cache)
    try:
        await node.start()
        res = await node.run(job.argv, env=job.env, cwd=job.cwd, timeout=job.timeout,
                             stdin=job.stdin)
    finally:
        await node.shutdown(grace=3.0)
    assert node.kernel is not None and node.accel is not None
    return JobResult(**res.__dict__, console=node.console_text, timings=dict(node.timings),
                     kernel=node.kernel.release, accel=node.accel.name)


def run_job_sync(job: Job, **kw: Any) -> JobResult:
    """:func:`run_job` for synchronous callers (runs its own event loop)."""
    return asyncio.run(run_job(job, **kw))


class BlockingVmNode:
    """A :class:`VmNode` for synchronous code: a private event loop on a thread.

    ``with BlockingVmNode(cpus=2) as node: node.run(["bpftool", "version"])``.
    The loop thread lives as long as the node (the children's parent-death
    signal is tied to it, so it must not exit early).
    """

    def __init__(self, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="schedcp-vm-loop")
        self._thread.start()
        self.node = VmNode(**kw)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(self) -> BlockingVmNode:
        try:
            self._call(self.node.start())
        except BaseException:
            self._stop_loop()  # the VM is already torn down; do not leak the thread
            raise
        return self

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def run(self, argv: Sequence[str], **kw: Any) -> CommandResult:
        return self._call(self.node.run(argv, **kw))

    def read_file(self, path: str, **kw: Any) -> bytes:
        return self._call(self.node.read_file(path, **kw))

    def write_file(self, path: str, data: bytes, **kw: Any) -> None:
        self._call(self.node.write_file(path, data, **kw))

    def shutdown(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self.node.shutdown())
        finally:
            self._stop_loop()

    def __enter__(self) -> BlockingVmNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
