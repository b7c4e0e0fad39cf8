"""Fixtures for the MCP gateway tests: real service processes on the test NATS."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from schedcp.rpc import check_health

REPO = Path(__file__).resolve().parents[3]


async def start_services(names: tuple[str, ...], env: dict[str, str], logs: Path,
                         timeout: float = 120.0) -> dict[str, subprocess.Popen[bytes]]:
    """Start ``python -m services.<name>`` for each name and wait until every one is healthy."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name in names:
        with open(logs / f"{name}.log", "wb") as log:
            procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=REPO, env=env,
                                           stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        for name in sorted(pending):
            proc = procs[name]
            if proc.poll() is not None:
                stop_services(procs)
                raise AssertionError(f"{name} exited with {proc.returncode}:\n"
                                     + (logs / f"{name}.log").read_text()[-3000:])
            if await check_health(env[f"SCHEDCP_{name.upper()}_ADDR"], deadline_s=1):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            stop_services(procs)
            raise AssertionError(f"not healthy in {timeout}s: {sorted(pending)}")
        await asyncio.sleep(0.2)
    return procs


def stop_services(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
async def services(service_env: dict[str, str], tmp_path: Path
                   ) -> AsyncIterator[Callable[[tuple[str, ...]], object]]:
    """``await services(("repository", ...))`` starts them; all are stopped after the test."""
    started: list[dict[str, subprocess.Popen[bytes]]] = []

    async def start(names: tuple[str, ...]) -> dict[str, subprocess.Popen[bytes]]:
        procs = await start_services(names, service_env, tmp_path)
        started.append(procs)
        return procs

    try:
        yield start
    finally:
        for procs in started:
            stop_services(procs)
