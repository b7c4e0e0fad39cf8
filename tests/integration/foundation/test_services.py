"""Service processes and the `schedcp up/down/status` lifecycle."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from schedcp import settings
from schedcp.rpc import check_health

PY = sys.executable
SCHEDCP = [PY, "-m", "schedcp.cli.main"]


def _wait_healthy(address: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"service exited early with {proc.returncode}"
        if asyncio.run(check_health(address, deadline_s=1)):
            return
        time.sleep(0.2)
    raise AssertionError(f"{address} not healthy in {timeout}s")


def test_every_service_serves_health_and_stops_gracefully_on_sigterm(service_env: dict[str, str]) -> None:
    # The node trigger's first loop may be in flight at SIGTERM: a bounded
    # drain of 5 s (not 20) still shows the graceful path without the wait.
    env = dict(service_env, SCHEDCP_DRAIN_SECONDS="5")
    procs = {svc: subprocess.Popen([PY, "-m", f"services.{svc}"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for svc in settings.SERVICES}
    try:
        for svc, proc in procs.items():
            _wait_healthy(service_env[f"SCHEDCP_{svc.upper()}_ADDR"], proc)
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        outputs = {svc: proc.communicate(timeout=120)[0].decode() for svc, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for svc, proc in procs.items():
        assert proc.returncode == 0, f"{svc}: {outputs[svc]}"
        assert "stopping: draining" in outputs[svc], svc


def test_invalid_setting_fails_fast_naming_the_variable(service_env: dict[str, str]) -> None:
    env = dict(service_env, SCHEDCP_DRAIN_SECONDS="soon")
    proc = subprocess.run([PY, "-m", "services.planner"], env=env, capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"SCHEDCP_DRAIN_SECONDS" in proc.stderr and b"not a number" in proc.stderr


def _stack_env(tmp_path: Path, service_env: dict[str, str]) -> dict[str, str]:
    from tests.conftest import free_port  # noqa: PLC0415

    env = dict(service_env)
    env["SCHEDCP_DATA_DIR"] = str(tmp_path / "stack")
    env["SCHEDCP_NATS_PORT"] = str(free_port())
    env["SCHEDCP_LLM_PORT"] = str(free_port())
    env.pop("SCHEDCP_NATS_URL", None)
    return env


def _leftovers(data_dir: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "services\\.|nats-server"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(data_dir) in line or "services." in line
            and _env_of(line).get("SCHEDCP_DATA_DIR") == str(data_dir)]


def _env_of(line: str) -> dict[str, str]:
    pid = line.split()[0]
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_up_status_down_starts_and_stops_exactly_the_stack(tmp_path: Path, service_env: dict[str, str]) -> None:
    env = _stack_env(tmp_path, service_env)
    data_dir = Path(env["SCHEDCP_DATA_DIR"])
    up = subprocess.run([*SCHEDCP, "up"], env=env, capture_output=True, text=True, timeout=420)
    try:
        assert up.returncode == 0, up.stderr
        assert "observer healthy" in up.stderr and "schedcp is up" in up.stderr
        status = subprocess.run([*SCHEDCP, "status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("SERVING") == 6
        again = subprocess.run([*SCHEDCP, "up"], env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and "already running" in again.stderr
        assert len(_leftovers(data_dir)) == 7
    finally:
        down = subprocess.run([*SCHEDCP, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert _leftovers(data_dir) == []
    status = subprocess.run([*SCHEDCP, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 1 and "DOWN" in status.stdout


def test_up_with_a_port_taken_says_so_and_leaves_nothing_running(tmp_path: Path, service_env: dict[str, str]) -> None:
    env = _stack_env(tmp_path, service_env)
    host, port = env["SCHEDCP_VERIFIER_ADDR"].rsplit(":", 1)
    with socket.socket() as blocker:
        blocker.bind((host, int(port)))
        blocker.listen()
        up = subprocess.run([*SCHEDCP, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert up.returncode == 2
    assert f"verifier port {host}:{port}" in up.stderr
    assert _leftovers(Path(env["SCHEDCP_DATA_DIR"])) == []


def test_up_without_nats_server_says_so(tmp_path: Path, service_env: dict[str, str]) -> None:
    env = _stack_env(tmp_path, service_env)
    bare = tmp_path / "bin"
    bare.mkdir()
    # A Python without nats-server beside it and none on PATH.
    os.symlink(PY, bare / "python")
    env["PATH"] = "/usr/bin:/bin"
    env["PYTHONPATH"] = str(settings.REPO_ROOT) + os.pathsep + ":".join(p for p in sys.path if "site-packages" in p)
    up = subprocess.run([str(bare / "python"), "-m", "schedcp.cli.main", "up"], env=env, capture_output=True,
                        text=True, timeout=60)
    assert up.returncode == 2
    assert "nats-server is not installed" in up.stderr
    assert _leftovers(Path(env["SCHEDCP_DATA_DIR"])) == []
