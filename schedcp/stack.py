"""The local control plane started by ``schedcp up``: nats-server + six services.

State lives in ``<data dir>/run/stack.json`` so ``down`` stops exactly what
``up`` started (each pid is checked against its recorded command line before
it is signalled, so a recycled pid is never touched).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from schedcp import natsserver, settings
from schedcp.errors import SchedcpError
from schedcp.rpc import check_health

#: Start order; ``down`` stops in reverse. The repository comes first because
#: the planner searches it, the verifier before the executor that trusts it.
START_ORDER = ("repository", "learner", "verifier", "executor", "planner", "observer")


@dataclass
class Proc:
    name: str
    pid: int
    cmdline_marker: str
    log: str
    address: str = ""


@dataclass
class StackState:
    data_dir: str
    nats_url: str
    started_at: float
    processes: list[Proc] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> StackState | None:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SchedcpError(f"{path} is unreadable: {exc}", hint=f"remove {path} if no stack is running") from exc
        procs = [Proc(**p) for p in raw.pop("processes", [])]
        return cls(processes=procs, **raw)


def state_path(data_dir: Path) -> Path:
    return data_dir / "run" / "stack.json"


def process_matches(proc: Proc) -> bool:
    """True when ``proc.pid`` is alive and still runs the command we started."""
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return proc.cmdline_marker in cmdline


Progress = Callable[[str], None]


def _signal(proc: Proc, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _stop_together(procs: list[Proc], timeout: float, progress: Progress) -> None:
    """SIGTERM every process at once, wait for all (``timeout`` in all), then
    SIGKILL whichever is still running."""
    live = [p for p in procs if process_matches(p)]
    for proc in live:
        progress(f"stopping {proc.name} (pid {proc.pid})")
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(process_matches(p) for p in live):
        time.sleep(0.1)
    for proc in live:
        if process_matches(proc):
            progress(f"{proc.name} did not stop within {timeout:.0f}s; killing it")
            _signal(proc, signal.SIGKILL)


def stop_stack(state: StackState, *, progress: Progress, timeout: float = 25.0) -> None:
    """Stop the services together (each drains its own in-flight work, and
    anything unfinished goes back to the stream), then the LLM, then NATS,
    which the services need until they have drained."""
    procs = list(reversed(state.processes))
    services = [p for p in procs if p.name not in ("llm", "nats-server")]
    _stop_together(services, timeout, progress)
    # The LLM server holds no state worth a wait; it can take many seconds to
    # notice a cancelled generation.
    _stop_together([p for p in procs if p.name == "llm"], min(timeout, 5.0), progress)
    _stop_together([p for p in procs if p.name == "nats-server"], timeout, progress)


def _service_env(base: dict[str, str], nats_url: str, data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    env["SCHEDCP_NATS_URL"] = nats_url
    env["SCHEDCP_DATA_DIR"] = str(data_dir)
    env.setdefault("SCHEDCP_LOG_FORMAT", "json")
    env.update(extra)
    return env


def start_stack(*, data_dir: Path, nats_port: int, progress: Progress, extra_env: dict[str, str] | None = None,
                services: tuple[str, ...] = START_ORDER, health_timeout: float = 300.0,
                llm: str = "none", llm_port: int = 8089) -> StackState:
    """Start nats-server and the services; on any failure stop what was started and raise."""
    path = state_path(data_dir)
    existing = StackState.load(path)
    if existing and any(process_matches(p) for p in existing.processes):
        raise SchedcpError(f"a schedcp stack is already running from {data_dir}",
                           hint="`schedcp status` shows it; `schedcp down` stops it")
    extra_env = dict(extra_env or {})
    env0 = dict(os.environ)
    env0.update(extra_env)
    addresses = {svc: settings.service_address(svc, env0) for svc in services}
    busy = []
    if not natsserver.port_is_free("127.0.0.1", nats_port):
        busy.append(f"NATS port {nats_port} (set SCHEDCP_NATS_PORT)")
    for svc, addr in addresses.items():
        host, _, port = addr.rpartition(":")
        if not natsserver.port_is_free(host, int(port)):
            busy.append(f"{svc} port {addr} (set SCHEDCP_{svc.upper()}_ADDR)")
    if llm == "local" and not natsserver.port_is_free("127.0.0.1", llm_port):
        busy.append(f"LLM port {llm_port} (set SCHEDCP_LLM_PORT or use --llm none)")
    if busy:
        raise SchedcpError("cannot start: these ports are already in use: " + "; ".join(busy),
                           hint="stop whatever holds them (`schedcp down` if it is an old stack) or choose other ports")
    natsserver.find_nats_server()  # fails early and clearly when missing

    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    state = StackState(data_dir=str(data_dir), nats_url="", started_at=time.time(), env=extra_env)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        progress(f"starting nats-server (JetStream, data in {data_dir / 'nats'})")
        nats = natsserver.start_nats_server(store_dir=data_dir / "nats", port=nats_port,
                                            log_path=logs / "nats-server.log", detach=True)
        state.nats_url = nats.url
        state.processes.append(Proc("nats-server", nats.process.pid, str(data_dir / "nats"),
                                    str(logs / "nats-server.log"), nats.url))
        state.save(path)
        if llm == "local":
            extra_env.update(_start_local_llm(state, logs, llm_port, progress, children))
            state.env = extra_env
            state.save(path)
        elif llm != "none":
            extra_env["SCHEDCP_LLM_URL"] = llm
        else:
            extra_env.setdefault("SCHEDCP_LLM_URL", "none")
        env = _service_env(env0, nats.url, data_dir, extra_env)
        for svc in services:
            log_path = logs / f"{svc}.log"
            progress(f"starting {svc} on {addresses[svc]}")
            with open(log_path, "ab") as log_file:
                proc = subprocess.Popen([sys.executable, "-m", f"services.{svc}"], env=env,
                                        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                        start_new_session=True, cwd=str(settings.REPO_ROOT))
            state.processes.append(Proc(svc, proc.pid, f"services.{svc}", str(log_path), addresses[svc]))
            children[svc] = proc
            state.save(path)
        asyncio.run(_wait_healthy(state, progress, health_timeout, children))
    except BaseException:
        progress("start-up failed; stopping what was started")
        stop_stack(state, progress=progress, timeout=10)
        # A child that had not exec'd yet does not match its recorded command
        # line; we still hold its handle, so make sure it is gone too.
        for child in children.values():
            if child.poll() is None:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.wait(10)
        path.unlink(missing_ok=True)
        raise
    return state


def _start_local_llm(state: StackState, logs: Path, port: int, progress: Progress,
                     children: dict[str, subprocess.Popen[bytes]]) -> dict[str, str]:
    """Start the bundled small model's OpenAI-compatible server; its URL for the services."""
    import urllib.error
    import urllib.request

    log_path = logs / "llm.log"
    progress(f"starting the local LLM (SmolLM2-135M on CPU) on 127.0.0.1:{port}")
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "schedcp.llm.server", "--port", str(port)],
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                start_new_session=True, cwd=str(settings.REPO_ROOT))
    entry = Proc("llm", proc.pid, "schedcp.llm.server", str(log_path), f"127.0.0.1:{port}")
    state.processes.append(entry)
    children["llm"] = proc
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # poll(), not the command line: right after fork the child still
        # shows our own command line until it execs.
        if proc.poll() is not None:
            raise SchedcpError(f"the local LLM exited during start-up:\n{_tail(log_path)}",
                               hint="or run `schedcp up --llm none` to plan without an LLM")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    progress("local LLM healthy")
                    return {"SCHEDCP_LLM_URL": f"http://127.0.0.1:{port}/v1", "SCHEDCP_LLM_MODEL": "smollm2"}
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise SchedcpError("the local LLM did not answer /health within 60s", hint=f"see {log_path}")


async def _wait_healthy(state: StackState, progress: Progress, limit_s: float,
                        children: dict[str, subprocess.Popen[bytes]]) -> None:
    pending = {p.name: p for p in state.processes if p.name not in ("nats-server", "llm")}
    deadline = time.monotonic() + limit_s
    while pending:
        for name, proc in list(pending.items()):
            if children[name].poll() is not None:
                tail = _tail(Path(proc.log))
                raise SchedcpError(f"{name} exited during start-up; last log lines:\n{tail}",
                                   hint=f"full log: {proc.log}")
            if await check_health(proc.address, deadline_s=1.0):
                total = sum(1 for p in state.processes if p.name not in ("nats-server", "llm"))
                progress(f"{name} healthy ({total - len(pending) + 1}/{total})")
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(pending)
            raise SchedcpError(f"not healthy after {limit_s:.0f}s: {names}",
                               hint=f"see the logs in {Path(state.data_dir) / 'logs'}")
        await asyncio.sleep(0.3)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
