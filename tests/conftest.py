"""Fixtures shared by every test area.

Integration tests talk to the real ``nats-server`` (one per session, port 0,
its own JetStream directory); each test gets its own subject prefix and
stream, so tests never see each other's messages.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from schedcp.natsserver import NatsServer, start_nats_server


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_nats_server(store_dir=tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def subject_prefix() -> str:
    """A unique prefix: its own subjects and its own stream."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def bus(nats_server: NatsServer, subject_prefix: str) -> AsyncIterator[object]:
    from schedcp.bus import Bus

    b = await Bus.connect(url=nats_server.url, service="test", prefix=subject_prefix)
    try:
        yield b
    finally:
        await b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def service_env(nats_server: NatsServer, subject_prefix: str, tmp_path: Path) -> dict[str, str]:
    """Environment for starting service processes against the test NATS."""
    env = dict(os.environ)
    env.update({
        "SCHEDCP_NATS_URL": nats_server.url,
        "SCHEDCP_SUBJECT_PREFIX": subject_prefix,
        "SCHEDCP_DATA_DIR": str(tmp_path / "data"),
        "SCHEDCP_TRACE_FILE": str(tmp_path / "spans.jsonl"),
        "SCHEDCP_LOG_FORMAT": "text",
        # Tests read service logs ("stopping: draining", "planned profile"),
        # whatever level the caller's environment asks for.
        "SCHEDCP_LOG_LEVEL": "info",
        "SCHEDCP_LLM_URL": "none",
        # One breaker measurement a side is enough where the breaker's
        # accuracy is not what is tested (tests/integration/executor is).
        "SCHEDCP_EXECUTOR_PROBE_REPETITIONS": "1",
    })
    for svc in ("observer", "planner", "verifier", "executor", "learner", "repository"):
        env[f"SCHEDCP_{svc.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    return env
